/* workload's additions to Locust 2.47's bundled web UI, loaded by a <script> tag that
   workload/engine/webui.py adds to the index page.  Locust offers no supported hook for
   any of these three (custom fields always sit in the collapsed "Custom parameters" panel,
   a field's choices cannot follow another field, extended tabs are tables only), so this
   script does the least it can, by watching the page:
   1. opens the "Custom parameters" panel once per form, so Scenario and Policy show, and
      puts Policy after Scenario (Locust lists the fields alphabetically) with CSS `order`;
   2. keeps only the chosen scenario's policies selectable in the Policy <select> (the map
      comes from window.templateArgs.workload_form.policies), its default chosen when the
      scenario changes;
   3. draws the Connections tab's charts (SVG) under its table from
      ./workload/connections/history.json, every 2 s like Locust's own charts. */
(function () {
  "use strict";
  var TAB_TITLE = "Connections", HISTORY = "./workload/connections/history.json", POLL_MS = 2000;
  var COLORS = ["#00ca5a", "#ff6d6d", "#4f8ff7", "#eeb300"];
  var opened = new WeakSet(), timer = null;
  var form = (window.templateArgs || {}).workload_form || {};

  function openCustomParameters() {
    document.querySelectorAll('[aria-expanded="false"]').forEach(function (el) {
      if (el.textContent.trim() === "Custom parameters" && !opened.has(el)) {
        opened.add(el);  // once: a user who closes it again keeps it closed
        el.click();
      }
    });
  }

  function followScenario(keepValid) {
    var scenario = document.querySelector('select[name="scenario"]');
    var policy = document.querySelector('select[name="policy"]');
    if (!scenario || !policy) return;
    var allowed = (form.policies || {})[scenario.value] || [];
    Array.prototype.forEach.call(policy.options, function (option) {
      var off = allowed.length > 0 && allowed.indexOf(option.value) < 0;
      option.hidden = off;
      option.disabled = off;
    });
    if (allowed.length && !(keepValid && allowed.indexOf(policy.value) >= 0)) policy.value = allowed[0];
  }

  function watchForm() {
    var policy = document.querySelector('select[name="policy"]');
    if (policy && !opened.has(policy)) {
      opened.add(policy);
      var field = policy.closest(".MuiFormControl-root");
      if (field) field.style.order = 1;  // after Scenario, without moving a node React owns
      followScenario(true);  // a new form: keep the policy it was given when the scenario has it
    }
  }

  function svg(tag, attrs) {
    var el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    Object.keys(attrs).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    return el;
  }

  function chart(spec, labels, points) {
    var W = 640, H = 180, L = 50, B = 20, box = document.createElement("div");
    var tMax = Math.max(1, points.length ? points[points.length - 1].t : 1), yMax = 1;
    spec.series.forEach(function (key) {
      points.forEach(function (p) { if (p[key] != null) yMax = Math.max(yMax, p[key]); });
    });
    var title = document.createElement("h3");
    title.textContent = spec.title + " (" + spec.unit + ")";
    var plot = svg("svg", {viewBox: "0 0 " + W + " " + H, width: "100%", "data-chart": spec.title, role: "img",
                           "aria-label": spec.title});
    plot.style.maxWidth = W + "px";
    plot.appendChild(svg("line", {x1: L, y1: H - B, x2: W, y2: H - B, stroke: "currentColor"}));
    plot.appendChild(svg("line", {x1: L, y1: 0, x2: L, y2: H - B, stroke: "currentColor"}));
    [[0, L], [tMax, W]].forEach(function (tick) {
      var text = svg("text", {x: tick[1], y: H - 4, "text-anchor": tick[0] ? "end" : "start", "font-size": 11,
                              fill: "currentColor"});
      text.textContent = Math.round(tick[0]) + " s";
      plot.appendChild(text);
    });
    [[yMax, 10], [0, H - B]].forEach(function (tick) {
      var text = svg("text", {x: L - 4, y: tick[1] + 4, "text-anchor": "end", "font-size": 11, fill: "currentColor"});
      text.textContent = String(Math.round(tick[0] * 100) / 100);
      plot.appendChild(text);
    });
    var legend = document.createElement("div");
    spec.series.forEach(function (key, i) {
      var shown = points.filter(function (p) { return p[key] != null; });
      var coords = shown.map(function (p) {
        return (L + (W - L) * p.t / tMax).toFixed(1) + "," + (H - B - (H - B - 10) * p[key] / yMax).toFixed(1);
      });
      plot.appendChild(svg("polyline", {points: coords.join(" "), fill: "none", stroke: COLORS[i % COLORS.length],
                                        "stroke-width": 2, "data-series": key, "data-count": coords.length}));
      var item = document.createElement("span");
      var last = shown.length ? shown[shown.length - 1][key] : "not observable";
      item.textContent = "\u25A0 " + (labels[key] || key) + ": " + last + "   ";
      item.style.color = COLORS[i % COLORS.length];
      legend.appendChild(item);
    });
    box.append(title, plot, legend);
    return box;
  }

  function draw(host) {
    fetch(HISTORY).then(function (r) { return r.json(); }).then(function (doc) {
      var note = document.createElement("p");
      note.textContent = doc.points.length ? "Over the run, sampled every 2 s (seconds since its start)."
                                           : "No run yet: the charts start with the next run.";
      host.replaceChildren(note);
      doc.charts.forEach(function (spec) { host.appendChild(chart(spec, doc.labels, doc.points)); });
    }).catch(function () { /* the next poll retries */ });
  }

  function connectionsTabShown() {
    var tab = document.querySelector('[role="tab"][aria-selected="true"]');
    return !!tab && tab.textContent.trim() === TAB_TITLE;
  }

  function placeCharts() {
    var host = document.getElementById("workload-charts");
    var table = document.querySelector(".MuiTableContainer-root");
    if (!connectionsTabShown() || !table) {
      if (host) host.remove();  // React does not know this node: remove it when the tab goes
      if (timer) { clearInterval(timer); timer = null; }
      return;
    }
    if (host && host.previousElementSibling === table) return;
    if (host) host.remove();
    host = document.createElement("div");
    host.id = "workload-charts";
    host.style.padding = "16px 0";
    table.insertAdjacentElement("afterend", host);
    draw(host);
    if (!timer) timer = setInterval(function () {
      var current = document.getElementById("workload-charts");
      if (current) draw(current);
    }, POLL_MS);
  }

  function enhance() { openCustomParameters(); watchForm(); placeCharts(); }

  document.addEventListener("change", function (event) {
    if (event.target && event.target.name === "scenario") followScenario(false);
  }, true);
  new MutationObserver(enhance).observe(document.documentElement, {childList: true, subtree: true});
  document.addEventListener("DOMContentLoaded", enhance);
})();
