/* /work: "near me" asks the browser for its position and reloads the page with ?lat=&lon=
 * (the server computes the distances). Without geolocation the button stays hidden. */
(function () {
  "use strict";
  var button = document.getElementById("near-me");
  var status = document.getElementById("near-status");
  if (!button || !navigator.geolocation) return;
  button.hidden = false;
  button.addEventListener("click", function () {
    status.textContent = button.getAttribute("data-locating") || "";
    button.disabled = true;
    navigator.geolocation.getCurrentPosition(function (position) {
      var url = "/work?lat=" + position.coords.latitude.toFixed(6) +
        "&lon=" + position.coords.longitude.toFixed(6);
      window.location.assign(url);
    }, function (error) {
      button.disabled = false;
      status.textContent = (button.getAttribute("data-failed") || "") + " " + error.message;
    }, { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 });
  });
})();
