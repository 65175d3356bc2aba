// Metric history charts of a run: server-side downsampling, re-fetched on zoom.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("chart-config").textContent);
  var xAxis = document.getElementById("x-axis");
  var smoothing = document.getElementById("smoothing");
  var smoothingValue = document.getElementById("smoothing-value");
  var logY = document.getElementById("log-y");
  var charts = {};

  function url(key, range) {
    var q = new URLSearchParams({ key: key, x: xAxis.value, points: "2000", smoothing: smoothing.value });
    if (range) { q.set("xmin", String(range[0])); q.set("xmax", String(range[1])); }
    return config.api + "?" + q.toString();
  }

  function toX(values) {
    if (xAxis.value !== "time") { return values; }
    return values.map(function (v) { return new Date(v); });
  }

  function fromX(v) {
    if (xAxis.value !== "time") { return Number(v); }
    return new Date(v).getTime();
  }

  function note(key, data) {
    var el = document.querySelector('[data-note-for="' + CSS.escape(key) + '"]');
    if (!el) { return; }
    var total = data.total.toLocaleString();
    if (data.downsampled) {
      el.textContent = data.shown.toLocaleString() + " of " + data.in_range.toLocaleString() + " points in view shown (" + total + " logged); zoom in for detail";
    } else if (data.in_range < data.total) {
      el.textContent = "all " + data.in_range.toLocaleString() + " points in view (" + total + " logged)";
    } else {
      el.textContent = total + " point" + (data.total === 1 ? "" : "s");
    }
  }

  function draw(key, div, range) {
    var seq = (charts[key] = (charts[key] || 0) + 1);
    return fetch(url(key, range), { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (data) {
      if (seq !== charts[key]) { return; }  // a newer request for this chart is on its way
      if (data.error_code) { div.textContent = data.message; return; }
      if (data.total === 1 && !range) {  // one value: a number, not a chart
        Plotly.purge(div);
        div.classList.add("single");
        div.textContent = "";
        var title = document.createElement("div"); title.textContent = key;
        var big = document.createElement("div"); big.className = "big"; big.textContent = data.y[0] === null ? "NaN" : String(Number(data.y[0].toPrecision(6)));
        var at = document.createElement("div"); at.className = "muted"; at.textContent = "one value, at " + xAxis.value + " " + (xAxis.value === "time" ? new Date(data.x[0]).toLocaleString() : data.x[0]);
        div.appendChild(title); div.appendChild(big); div.appendChild(at);
        div.setAttribute("data-points", "1"); div.setAttribute("data-total", "1"); div.setAttribute("data-loaded", "1");
        note(key, data);
        return;
      }
      div.classList.remove("single");
      var smoothed = data.smoothed !== null;
      var traces = [{ x: toX(data.x), y: data.y, type: "scattergl", mode: data.total === 1 ? "markers" : "lines",
                      name: key, line: { color: "#2563eb", width: 1.5 }, opacity: smoothed ? 0.3 : 1 }];
      if (smoothed) {
        traces.push({ x: toX(data.x), y: data.smoothed, type: "scattergl", mode: "lines", name: key + " (smoothed)",
                      line: { color: "#2563eb", width: 2 } });
      }
      var titles = { step: "step", time: "time", relative: "seconds since the first point" };
      var layout = {
        title: { text: key, font: { size: 14 } }, margin: { l: 50, r: 15, t: 35, b: 40 }, showlegend: false,
        xaxis: { title: { text: titles[xAxis.value] }, type: xAxis.value === "time" ? "date" : "linear" },
        yaxis: { type: logY.checked ? "log" : "linear" }, uirevision: xAxis.value + logY.checked
      };
      if (range) { layout.xaxis.range = xAxis.value === "time" ? [new Date(range[0]), new Date(range[1])] : range; layout.xaxis.autorange = false; }
      Plotly.react(div, traces, layout, { responsive: true, displaylogo: false });
      if (!div.hasAttribute("data-zoomable")) { attach(div); div.setAttribute("data-zoomable", "1"); }
      div.setAttribute("data-points", String(data.shown));
      div.setAttribute("data-total", String(data.total));
      div.setAttribute("data-loaded", "1");
      note(key, data);
    });
  }

  function attach(div) {
    var key = div.getAttribute("data-metric");
    div.on("plotly_relayout", function (ev) {
      if (ev["xaxis.range[0]"] !== undefined) {
        draw(key, div, [fromX(ev["xaxis.range[0]"]), fromX(ev["xaxis.range[1]"])]);
      } else if (ev["xaxis.autorange"]) {
        draw(key, div, null);
      }
    });
  }

  function drawAll() {
    return Promise.all(Array.prototype.map.call(document.querySelectorAll(".chart[data-metric]"), function (div) {
      return draw(div.getAttribute("data-metric"), div, null);
    }));
  }

  drawAll().then(function () {
    document.getElementById("metric-charts").setAttribute("data-ready", "1");
  });
  xAxis.addEventListener("change", drawAll);
  logY.addEventListener("change", drawAll);
  var timer = null;
  smoothing.addEventListener("input", function () {
    smoothingValue.textContent = smoothing.value;
    clearTimeout(timer);
    timer = setTimeout(drawAll, 150);
  });
})();
