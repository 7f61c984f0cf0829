/* streetlight dashboard: progress feedback for long actions. No framework, no build step.
 * Forms with data-busy show their message and a progress bar while the server works;
 * forms with data-upload send the file with XMLHttpRequest to show upload progress,
 * then show the answer (success page or the errors) in place. */
(function () {
  "use strict";

  function showBusy(form, message, value) {
    var busy = form.querySelector(".busy");
    if (!busy) return;
    busy.hidden = false;
    var text = busy.querySelector("span");
    if (text) text.textContent = message;
    var bar = busy.querySelector("progress");
    if (bar) {
      if (value === undefined) bar.removeAttribute("value");
      else bar.value = value;
    }
    form.setAttribute("aria-busy", "true");
  }

  function lock(form) {
    // Disable later, so the clicked button's name/formaction still goes with the form.
    window.setTimeout(function () {
      form.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
    }, 0);
  }

  function replaceMain(html, url) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var fresh = doc.querySelector("main");
    var main = document.querySelector("main");
    if (!fresh || !main) { document.location.href = url; return; }
    main.innerHTML = fresh.innerHTML;
    if (doc.title) document.title = doc.title;
    if (url && url !== document.location.href) history.replaceState(null, "", url);
    main.focus();
    wire(main);
  }

  function upload(form) {
    var xhr = new XMLHttpRequest();
    var message = form.getAttribute("data-busy") || "";
    xhr.open("POST", form.action);
    xhr.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) showBusy(form, message, Math.round((e.loaded / e.total) * 100));
    });
    xhr.upload.addEventListener("load", function () { showBusy(form, message); });
    xhr.addEventListener("load", function () { replaceMain(xhr.responseText, xhr.responseURL); });
    xhr.addEventListener("error", function () { form.submit(); });
    xhr.send(new FormData(form));
  }

  function wire(root) {
    root.querySelectorAll("form[data-busy]").forEach(function (form) {
      if (form.dataset.wired) return;
      form.dataset.wired = "1";
      form.addEventListener("submit", function (event) {
        if (form.dataset.sent) { event.preventDefault(); return; }
        form.dataset.sent = "1";
        if (form.hasAttribute("data-upload") && window.FormData && window.DOMParser) {
          event.preventDefault();
          showBusy(form, form.getAttribute("data-busy"), 0);
          lock(form);
          upload(form);
          return;
        }
        showBusy(form, form.getAttribute("data-busy"));
        lock(form);
      });
    });
    root.querySelectorAll("a[data-back]").forEach(function (a) {
      a.addEventListener("click", function (event) {
        if (window.history.length > 1) { event.preventDefault(); window.history.back(); }
      });
    });
  }

  // Pages restored from the back/forward cache must not keep a locked form.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    document.querySelectorAll("form[data-busy]").forEach(function (form) {
      delete form.dataset.sent;
      form.removeAttribute("aria-busy");
      form.querySelectorAll("button").forEach(function (b) { b.disabled = false; });
      var busy = form.querySelector(".busy");
      if (busy) busy.hidden = true;
    });
  });

  document.addEventListener("DOMContentLoaded", function () { wire(document); });
})();
