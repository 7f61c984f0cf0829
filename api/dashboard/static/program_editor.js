/* streetlight dashboard: the program step editor. No framework, no build step.
 * Add, remove and move steps in place (the same buttons post the form without
 * JavaScript), and redraw the night's curve as the operator types: the unsaved form
 * goes to the server (data-preview), which evaluates it with the functions the API
 * uses and answers the curve, the field errors (steps.N.level) and the warnings. */
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var DELAY_MS = 250;

  function renumber(form) {
    var rows = form.querySelectorAll("#steps tbody tr.step-row");
    rows.forEach(function (row, i) {
      row.dataset.index = String(i);
      var no = row.querySelector(".step-no");
      if (no) no.textContent = String(i + 1);
      row.querySelectorAll("[name^='steps.']").forEach(function (el) {
        el.name = el.name.replace(/^steps\.\d+\./, "steps." + i + ".");
      });
      row.querySelectorAll("[data-error-for^='steps.']").forEach(function (el) {
        el.dataset.errorFor = el.dataset.errorFor.replace(/^steps\.\d+/, "steps." + i);
      });
      row.querySelectorAll("button[name=edit]").forEach(function (b) {
        b.value = b.value.replace(/:\d+$/, ":" + i);
      });
    });
  }

  function clearRow(row) {
    row.querySelectorAll("input").forEach(function (el) {
      el.value = el.name.endsWith(".offset_min") ? "0" : "";
      el.removeAttribute("aria-invalid");
    });
    row.querySelectorAll(".field-error").forEach(function (el) { el.textContent = ""; });
  }

  function text(parent, cls, x, y, label, anchor) {
    var el = document.createElementNS(SVG, "text");
    el.setAttribute("class", cls);
    el.setAttribute("x", String(x));
    el.setAttribute("y", String(y));
    if (anchor) el.setAttribute("text-anchor", anchor);
    el.textContent = label;
    parent.appendChild(el);
  }

  function showErrors(form, errors) {
    form.querySelectorAll("[data-error-for]").forEach(function (el) { el.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
    var general = form.querySelector("#general-errors");
    general.textContent = "";
    errors.forEach(function (e) {
      var spot = form.querySelector("[data-error-for='" + e.field + "']");
      var input = form.querySelector("[name='" + e.field + "']");
      if (input) input.setAttribute("aria-invalid", "true");
      if (spot) { spot.textContent = e.message; return; }
      var p = document.createElement("p");
      p.className = "field-error";
      p.dataset.field = e.field;
      p.textContent = e.field + ": " + e.message;
      general.appendChild(p);
    });
  }

  function draw(form, answer) {
    var line = form.querySelector("#curve-line");
    var area = form.querySelector("#curve-area");
    var invalid = form.querySelector("#curve-invalid");
    var ticks = form.querySelector("#curve-xticks");
    var markers = form.querySelector("#curve-markers");
    var curve = answer.curve;
    invalid.hidden = curve !== null;
    line.setAttribute("points", curve ? curve.points : "");
    area.setAttribute("points", curve ? curve.area : "");
    ticks.textContent = "";
    markers.textContent = "";
    if (curve) {
      var below = Number(form.querySelector("#curve").dataset.bottom) + 16;
      curve.x_ticks.forEach(function (k) { text(ticks, "tick", k.pos, below, k.label, "middle"); });
      var svg = form.querySelector("#curve");
      var top = Number(svg.dataset.top), bottom = Number(svg.dataset.bottom);
      curve.markers.forEach(function (m) {
        var rule = document.createElementNS(SVG, "line");
        rule.setAttribute("class", "sun");
        rule.setAttribute("x1", String(m.x));
        rule.setAttribute("x2", String(m.x));
        rule.setAttribute("y1", String(top));
        rule.setAttribute("y2", String(bottom));
        markers.appendChild(rule);
        text(markers, "sun-label", m.x + 3, top + 10, m.label);
      });
    }
    var holidays = form.querySelector("#holidays");
    var names = curve ? curve.holidays : [];
    holidays.hidden = names.length === 0;
    form.querySelector("#holiday-names").textContent = names.join(", ");
    var list = form.querySelector("#warning-list");
    list.textContent = "";
    answer.warnings.forEach(function (w) {
      var li = document.createElement("li");
      li.dataset.step = String(w.step);
      li.textContent = w.message;
      list.appendChild(li);
    });
    showErrors(form, answer.errors);
    form.dataset.previewed = String(Number(form.dataset.previewed || "0") + 1);
  }

  function wire(form) {
    var timer = null;
    var sequence = 0;
    function refresh() {
      var mine = ++sequence;
      var body = new URLSearchParams(new FormData(form));
      fetch(form.dataset.preview, {
        method: "POST", body: body, credentials: "same-origin",
        headers: { "Accept": "application/json" }
      }).then(function (r) { return r.ok ? r.json() : null; })
        .then(function (answer) { if (answer && mine === sequence) draw(form, answer); });
    }
    function later() {
      if (timer !== null) window.clearTimeout(timer);
      timer = window.setTimeout(refresh, DELAY_MS);
    }
    form.addEventListener("input", later);
    form.addEventListener("change", later);
    form.addEventListener("click", function (event) {
      var button = event.target.closest("button[name=edit]");
      if (!button) return;
      event.preventDefault();
      var tbody = form.querySelector("#steps tbody");
      var row = button.closest("tr.step-row");
      var move = button.value.split(":")[0];
      if (move === "add") {
        var last = tbody.querySelector("tr.step-row:last-child");
        if (!last) { form.requestSubmit(button); return; }
        var fresh = last.cloneNode(true);
        clearRow(fresh);
        tbody.appendChild(fresh);
      } else if (move === "remove" && row) {
        row.remove();
      } else if (move === "up" && row && row.previousElementSibling) {
        tbody.insertBefore(row, row.previousElementSibling);
      } else if (move === "down" && row && row.nextElementSibling) {
        tbody.insertBefore(row.nextElementSibling, row);
      }
      renumber(form);
      later();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("program-form");
    if (form && form.dataset.preview) wire(form);
  });
})();
