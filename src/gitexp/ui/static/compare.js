// Compare view: parallel coordinates, scatter, contour, box plots and overlaid metric histories.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("compare-data").textContent);
  var runs = data.runs;
  var fields = data.param_keys.map(function (k) { return { id: "params." + k, label: k, kind: "param" }; })
    .concat(data.metric_keys.map(function (k) { return { id: "metrics." + k, label: k, kind: "metric" }; }));
  var config = { responsive: true, displaylogo: false };

  function value(run, id) {
    var dot = id.indexOf(".");
    var group = id.slice(0, dot), key = id.slice(dot + 1);
    var v = run[group][key];
    return v === undefined ? null : v;
  }
  function numeric(id) {
    return runs.every(function (r) { var v = value(r, id); return v === null || (v !== "" && !isNaN(Number(v))); });
  }
  function column(id) {
    var isNum = numeric(id);
    return runs.map(function (r) { var v = value(r, id); return v === null ? null : (isNum ? Number(v) : String(v)); });
  }
  function fill(select, options, chosen) {
    options.forEach(function (f) {
      var o = document.createElement("option");
      o.value = f.id; o.textContent = (f.kind === "param" ? "param: " : "metric: ") + f.label;
      o.selected = chosen.indexOf(f.id) >= 0;
      select.appendChild(o);
    });
  }
  var params = fields.filter(function (f) { return f.kind === "param"; });
  var metrics = fields.filter(function (f) { return f.kind === "metric"; });
  var names = runs.map(function (r) { return r.name; });
  var firstMetric = metrics.length ? metrics[0].id : (fields[0] || {}).id;

  // Parallel coordinates
  var pcAxes = document.getElementById("pc-axes"), pcColor = document.getElementById("pc-color");
  fill(pcAxes, fields, params.slice(0, 6).map(function (f) { return f.id; }).concat(firstMetric ? [firstMetric] : []));
  fill(pcColor, metrics.length ? metrics : fields, firstMetric ? [firstMetric] : []);
  function parallel() {
    var chosen = Array.prototype.filter.call(pcAxes.options, function (o) { return o.selected; }).map(function (o) { return o.value; });
    var dims = chosen.map(function (id) {
      var col = column(id), label = id.replace(/^(params|metrics)\./, "");
      if (numeric(id)) { return { label: label, values: col.map(function (v) { return v === null ? NaN : v; }) }; }
      var cats = Array.from(new Set(col.map(String))).sort();
      return { label: label, values: col.map(function (v) { return cats.indexOf(String(v)); }),
               tickvals: cats.map(function (_, i) { return i; }), ticktext: cats };
    });
    var colorCol = pcColor.value && numeric(pcColor.value) ? column(pcColor.value) : null;
    var line = colorCol ? { color: colorCol.map(function (v) { return v === null ? NaN : v; }), colorscale: "Viridis", showscale: true } : {};
    Plotly.react("plot-parallel", [{ type: "parcoords", dimensions: dims, line: line }], { margin: { l: 60, r: 60, t: 50, b: 20 } }, config);
  }
  pcAxes.addEventListener("change", parallel); pcColor.addEventListener("change", parallel);

  // Scatter
  var sx = document.getElementById("scatter-x"), sy = document.getElementById("scatter-y");
  fill(sx, fields, [params.length ? params[0].id : (fields[0] || {}).id]);
  fill(sy, fields, [firstMetric]);
  function scatter() {
    Plotly.react("plot-scatter", [{ x: column(sx.value), y: column(sy.value), text: names, mode: "markers", type: "scatter",
      marker: { size: 10, color: "#2563eb" }, hovertemplate: "%{text}<br>x=%{x}<br>y=%{y}<extra></extra>" }],
      { margin: { l: 55, r: 15, t: 20, b: 45 }, xaxis: { title: { text: sx.value } }, yaxis: { title: { text: sy.value } } }, config);
  }
  sx.addEventListener("change", scatter); sy.addEventListener("change", scatter);

  // Contour
  var cx = document.getElementById("contour-x"), cy = document.getElementById("contour-y"), cz = document.getElementById("contour-z");
  fill(cx, fields, [params.length ? params[0].id : (fields[0] || {}).id]);
  fill(cy, fields, [params.length > 1 ? params[1].id : (fields[1] || fields[0] || {}).id]);
  fill(cz, metrics.length ? metrics : fields, [firstMetric]);
  function contour() {
    var x = column(cx.value), y = column(cy.value), z = column(cz.value);
    var div = document.getElementById("plot-contour");
    var points = new Set();
    x.forEach(function (v, i) { if (v !== null && y[i] !== null && typeof z[i] === "number") { points.add(v + "\u0000" + y[i]); } });
    if (points.size < 3) {  // plotly cannot draw contours through fewer points
      Plotly.purge(div);
      div.textContent = "A contour needs at least 3 runs with different " + cx.value + " / " + cy.value + " values and a numeric " + cz.value + ".";
      div.classList.add("plot-note");
      return;
    }
    div.classList.remove("plot-note");
    if (!div.classList.contains("js-plotly-plot")) { div.textContent = ""; }
    Plotly.react("plot-contour", [
      { type: "contour", x: x, y: y, z: z, colorscale: "Viridis", connectgaps: true, contours: { coloring: "heatmap" },
        colorbar: { title: { text: cz.value.replace(/^(params|metrics)\./, "") } } },
      { type: "scatter", mode: "markers", x: x, y: y, text: names, marker: { color: "#fff", line: { color: "#111", width: 1 } },
        hovertemplate: "%{text}<extra></extra>", showlegend: false }],
      { margin: { l: 55, r: 15, t: 20, b: 45 }, xaxis: { title: { text: cx.value } }, yaxis: { title: { text: cy.value } } }, config);
  }
  cx.addEventListener("change", contour); cy.addEventListener("change", contour); cz.addEventListener("change", contour);

  // Box plot
  var bx = document.getElementById("box-x"), by = document.getElementById("box-y");
  fill(bx, params.length ? params : fields, [params.length ? params[0].id : (fields[0] || {}).id]);
  fill(by, metrics.length ? metrics : fields, [firstMetric]);
  function box() {
    var groups = column(bx.value).map(function (v) { return v === null ? "(none)" : String(v); });
    var values = column(by.value);
    var cats = Array.from(new Set(groups)).sort();
    var traces = cats.map(function (c) {
      return { type: "box", name: c, y: values.filter(function (_, i) { return groups[i] === c; }), boxpoints: "all", jitter: 0.3 };
    });
    Plotly.react("plot-box", traces, { margin: { l: 55, r: 15, t: 20, b: 45 }, showlegend: false,
      xaxis: { title: { text: bx.value } }, yaxis: { title: { text: by.value } } }, config);
  }
  bx.addEventListener("change", box); by.addEventListener("change", box);

  // Overlaid metric histories (downsampled on the server, per run)
  var hk = document.getElementById("history-key"), hx = document.getElementById("history-x");
  fill(hk, metrics, [firstMetric]);
  function histories() {
    var key = hk.value.replace(/^metrics\./, "");
    if (!key) { return Promise.resolve(); }
    return Promise.all(runs.map(function (r, i) {
      if (value(r, "metrics." + key) === null) { return null; }
      return fetch(data.api[i] + "?" + new URLSearchParams({ key: key, x: hx.value, points: "1000" }).toString(), { credentials: "same-origin" })
        .then(function (resp) { return resp.json(); })
        .then(function (d) {
          if (d.error_code) { return null; }
          var x = hx.value === "time" ? d.x.map(function (v) { return new Date(v); }) : d.x;
          return { x: x, y: d.y, name: r.name, type: "scattergl", mode: d.total === 1 ? "markers" : "lines" };
        });
    })).then(function (traces) {
      Plotly.react("plot-history", traces.filter(Boolean), { margin: { l: 55, r: 15, t: 20, b: 45 },
        xaxis: { title: { text: hx.value }, type: hx.value === "time" ? "date" : "linear" }, yaxis: { title: { text: key } } }, config);
      document.getElementById("plot-history").setAttribute("data-ready", "1");
    });
  }
  hk.addEventListener("change", histories); hx.addEventListener("change", histories);

  if (fields.length) { parallel(); scatter(); contour(); box(); }
  histories().then(function () { document.getElementById("plots").setAttribute("data-ready", "1"); });
})();
