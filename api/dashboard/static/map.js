/* streetlight map: pan and zoom an SVG map, lay raster tiles under it when a tile server
 * is configured, and refresh marker colours from /map/state.json. Coordinates are Web
 * Mercator world pixels at the zoom in data-zoom (see api/dashboard/geo.py). */
(function () {
  "use strict";
  var svg = document.getElementById("map");
  if (!svg) return;

  var vb = svg.viewBox.baseVal;
  var home = { x: vb.x, y: vb.y, w: vb.width, h: vb.height };
  var view = { x: home.x, y: home.y, w: home.w, h: home.h };
  var r0 = parseFloat(svg.dataset.r) || 4;
  var zoom0 = parseInt(svg.dataset.zoom, 10) || 15;
  var tileUrl = svg.dataset.tileUrl || "";
  var tileMaxZoom = parseInt(svg.dataset.tileMaxZoom, 10) || 19;
  var maxK = Math.pow(2, Math.max(4, tileMaxZoom - zoom0 + 2));
  var tiles = document.getElementById("tiles");
  var labels = Array.prototype.map.call(svg.querySelectorAll(".labels"), function (g) {
    return { el: g, size: parseFloat(g.getAttribute("font-size")) || 10 };
  });
  var markers = Array.prototype.slice.call(svg.querySelectorAll(".marker"));
  var byId = {};
  markers.forEach(function (m) { byId[m.dataset.id] = m; });

  function scale() { return home.w / view.w; }

  function apply() {
    svg.setAttribute("viewBox", [view.x, view.y, view.w, view.h].join(" "));
    var k = scale();
    var r = (r0 / Math.pow(k, 0.7)).toFixed(3);
    markers.forEach(function (m) { m.setAttribute("r", r); });
    labels.forEach(function (l) {
      l.el.setAttribute("font-size", (l.size / Math.pow(k, 0.85)).toFixed(2));
    });
    if (tileUrl) scheduleTiles();
  }

  function zoomAt(factor, cx, cy) {
    var k = scale() * factor;
    if (k < 0.5 || k > maxK) return;
    var w = view.w / factor, h = view.h / factor;
    view.x = cx - (cx - view.x) / factor;
    view.y = cy - (cy - view.y) / factor;
    view.w = w; view.h = h;
    apply();
  }

  function centre() { return [view.x + view.w / 2, view.y + view.h / 2]; }

  function toSvg(clientX, clientY) {
    var ctm = svg.getScreenCTM();
    if (!ctm) return centre();
    var p = new DOMPoint(clientX, clientY).matrixTransform(ctm.inverse());
    return [p.x, p.y];
  }

  svg.addEventListener("wheel", function (e) {
    e.preventDefault();
    var p = toSvg(e.clientX, e.clientY);
    zoomAt(e.deltaY < 0 ? 1.25 : 0.8, p[0], p[1]);
  }, { passive: false });

  var drag = null;
  var moved = false;
  svg.addEventListener("pointerdown", function (e) {
    if (e.button !== 0) return;
    drag = { id: e.pointerId, start: toSvg(e.clientX, e.clientY), sx: e.clientX, sy: e.clientY };
    moved = false;
  });
  svg.addEventListener("pointermove", function (e) {
    if (!drag || e.pointerId !== drag.id) return;
    if (!moved && Math.abs(e.clientX - drag.sx) + Math.abs(e.clientY - drag.sy) < 5) return;
    if (!moved) { moved = true; svg.setPointerCapture(e.pointerId); svg.classList.add("dragging"); }
    var p = toSvg(e.clientX, e.clientY);
    view.x += drag.start[0] - p[0];
    view.y += drag.start[1] - p[1];
    apply();
  });
  function endDrag() { drag = null; svg.classList.remove("dragging"); }
  svg.addEventListener("pointerup", endDrag);
  svg.addEventListener("pointercancel", endDrag);
  svg.addEventListener("click", function (e) {
    if (moved) { e.preventDefault(); e.stopPropagation(); moved = false; }
  }, true);

  function reset() { view = { x: home.x, y: home.y, w: home.w, h: home.h }; apply(); }

  document.querySelectorAll(".map-tools button").forEach(function (b) {
    b.addEventListener("click", function () {
      var c = centre();
      if (b.dataset.zoom === "in") zoomAt(1.6, c[0], c[1]);
      else if (b.dataset.zoom === "out") zoomAt(1 / 1.6, c[0], c[1]);
      else reset();
    });
  });

  svg.addEventListener("keydown", function (e) {
    var c = centre(), step = view.w / 8;
    var handled = true;
    if (e.key === "+" || e.key === "=") zoomAt(1.6, c[0], c[1]);
    else if (e.key === "-" || e.key === "_") zoomAt(1 / 1.6, c[0], c[1]);
    else if (e.key === "0") reset();
    else if (e.key === "ArrowLeft") { view.x -= step; apply(); }
    else if (e.key === "ArrowRight") { view.x += step; apply(); }
    else if (e.key === "ArrowUp") { view.y -= step; apply(); }
    else if (e.key === "ArrowDown") { view.y += step; apply(); }
    else handled = false;
    if (handled) e.preventDefault();
  });

  // --- tiles ------------------------------------------------------------------------
  var tileTimer = null;
  var shown = {};
  function scheduleTiles() {
    if (tileTimer) window.clearTimeout(tileTimer);
    tileTimer = window.setTimeout(drawTiles, 60);
  }
  function visibleBox() {
    // With preserveAspectRatio "meet" the screen shows more than the viewBox: ask the CTM.
    var ctm = svg.getScreenCTM();
    var rect = svg.getBoundingClientRect();
    if (!ctm || !rect.width) return { x: view.x, y: view.y, w: view.w, h: view.h, k: 1 };
    var inv = ctm.inverse();
    var a = new DOMPoint(rect.left, rect.top).matrixTransform(inv);
    var b = new DOMPoint(rect.right, rect.bottom).matrixTransform(inv);
    return { x: a.x, y: a.y, w: b.x - a.x, h: b.y - a.y, k: ctm.a };
  }
  function drawTiles() {
    var box = visibleBox();
    var z = Math.round(zoom0 + Math.log2(box.k));
    z = Math.max(0, Math.min(tileMaxZoom, z));
    var size = 256 / Math.pow(2, z - zoom0);
    var n = Math.pow(2, z);
    var x0 = Math.max(0, Math.floor(box.x / size)), x1 = Math.min(n - 1, Math.floor((box.x + box.w) / size));
    var y0 = Math.max(0, Math.floor(box.y / size)), y1 = Math.min(n - 1, Math.floor((box.y + box.h) / size));
    if ((x1 - x0 + 1) * (y1 - y0 + 1) > 400) return;
    var wanted = {};
    for (var x = x0; x <= x1; x++) {
      for (var y = y0; y <= y1; y++) {
        var key = z + "/" + x + "/" + y;
        wanted[key] = true;
        if (shown[key]) continue;
        var img = document.createElementNS("http://www.w3.org/2000/svg", "image");
        img.setAttribute("href", tileUrl.replace("{z}", z).replace("{x}", x).replace("{y}", y)
          .replace("{s}", "abc".charAt((x + y) % 3)));
        img.setAttribute("x", x * size); img.setAttribute("y", y * size);
        img.setAttribute("width", size); img.setAttribute("height", size);
        img.setAttribute("preserveAspectRatio", "none");
        tiles.appendChild(img);
        shown[key] = img;
      }
    }
    Object.keys(shown).forEach(function (key) {
      if (!wanted[key]) { tiles.removeChild(shown[key]); delete shown[key]; }
    });
  }

  // --- live marker states -------------------------------------------------------------
  var pollMs = Math.max(1, parseFloat(svg.dataset.pollS) || 10) * 1000;
  var updated = document.getElementById("map-updated");
  var timer = null;
  function refresh() {
    fetch(svg.dataset.stateUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (r.status === 401) { window.clearInterval(timer); return null; }
        return r.ok ? r.json() : null;
      })
      .then(function (data) {
        if (!data) return;
        Object.keys(data.states).forEach(function (id) {
          var m = byId[id];
          var state = data.states[id];
          if (!m || m.dataset.state === state) return;
          m.classList.remove("m-" + m.dataset.state);
          m.classList.add("m-" + state);
          m.dataset.state = state;
          var title = m.querySelector("title");
          if (title) title.textContent = m.dataset.name + " — " + m.dataset.where + ": " + (data.labels[state] || state);
        });
        if (updated) updated.textContent = data.time;
        svg.dataset.refreshed = data.at;
      })
      .catch(function () { /* the next poll tries again */ });
  }
  timer = window.setInterval(function () { if (!document.hidden) refresh(); }, pollMs);
  document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(); });

  var focus = svg.dataset.focus && byId[svg.dataset.focus];
  if (focus) {
    var fx = parseFloat(focus.getAttribute("cx")), fy = parseFloat(focus.getAttribute("cy"));
    view.w = home.w / 6; view.h = home.h / 6;
    view.x = fx - view.w / 2; view.y = fy - view.h / 2;
  }
  apply();
})();
