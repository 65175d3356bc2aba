// gitexp web UI: small behaviours shared by every page (no framework, no inline scripts).
(function () {
  "use strict";

  // Confirm destructive actions.
  document.addEventListener("click", function (ev) {
    var el = ev.target.closest("[data-confirm]");
    if (el && !window.confirm(el.getAttribute("data-confirm"))) { ev.preventDefault(); }
    var back = ev.target.closest("[data-back]");
    if (back) { ev.preventDefault(); history.back(); }
  });

  // Forms post back to the page they were sent from, unless they say otherwise.
  // (Forms marked data-no-next go where the action says: a new or deleted thing's page.)
  document.querySelectorAll("form[method=post]:not([data-no-next])").forEach(function (form) {
    if (!form.querySelector("input[name=next]")) {
      var next = document.createElement("input");
      next.type = "hidden"; next.name = "next";
      next.value = location.pathname + location.search;
      form.appendChild(next);
    }
  });

  // Runs table: selection, compare/diff/delete buttons, nested rows.
  var table = document.getElementById("runs-table");
  if (table) {
    var boxes = function () { return Array.prototype.slice.call(table.querySelectorAll(".run-select")); };
    var selected = function () { return boxes().filter(function (b) { return b.checked; }).map(function (b) { return b.value; }); };
    var compare = document.getElementById("compare-selected");
    var diff = document.getElementById("diff-selected");
    var del = document.getElementById("delete-selected");
    var actionForm = document.getElementById("runs-action");
    var refresh = function () {
      var ids = selected();
      compare.disabled = ids.length < 2;
      diff.disabled = ids.length !== 2;
      del.disabled = ids.length < 1;
      actionForm.querySelectorAll("input[name=run_ids]").forEach(function (i) { i.remove(); });
      ids.forEach(function (id) {
        var i = document.createElement("input"); i.type = "hidden"; i.name = "run_ids"; i.value = id; actionForm.appendChild(i);
      });
    };
    table.addEventListener("change", refresh);
    document.getElementById("select-all").addEventListener("change", function (ev) {
      boxes().forEach(function (b) { if (b.closest("tr").offsetParent !== null || !ev.target.checked) { b.checked = ev.target.checked; } });
      refresh();
    });
    compare.addEventListener("click", function () {
      var q = selected().map(function (id) { return "runs=" + encodeURIComponent(id); }).join("&");
      location.href = compare.getAttribute("data-url") + "?" + q;
    });
    diff.addEventListener("click", function () {
      var ids = selected();
      location.href = diff.getAttribute("data-url") + "?a=" + encodeURIComponent(ids[0]) + "&b=" + encodeURIComponent(ids[1]);
    });
    var setOpen = function (id, open) {
      table.querySelectorAll('tr[data-parent="' + CSS.escape(id) + '"]').forEach(function (tr) {
        tr.classList.toggle("collapsed", !open);
        if (!open) { setOpen(tr.getAttribute("data-run-id"), false); var t = tr.querySelector(".toggle"); if (t) { t.setAttribute("aria-expanded", "false"); t.textContent = t.textContent.replace("▾", "▸"); } }
      });
    };
    table.addEventListener("click", function (ev) {
      var t = ev.target.closest(".toggle");
      if (!t) { return; }
      var open = t.getAttribute("aria-expanded") !== "true";
      t.setAttribute("aria-expanded", open ? "true" : "false");
      t.textContent = t.textContent.replace(open ? "▸" : "▾", open ? "▾" : "▸");
      setOpen(t.getAttribute("data-toggle"), open);
    });
    refresh();
  }

  // Column chooser: "all"/"none" links, and remember the choice per experiment set.
  document.querySelectorAll("[data-check-all],[data-check-none]").forEach(function (b) {
    b.addEventListener("click", function () {
      var on = b.hasAttribute("data-check-all");
      b.closest("fieldset").querySelectorAll("input[type=checkbox]").forEach(function (c) { c.checked = on; });
    });
  });
  var chooser = document.querySelector("[data-remember-columns]");
  if (chooser && window.localStorage) {
    var storeKey = "gitexp.columns." + chooser.getAttribute("data-remember-columns");
    chooser.addEventListener("submit", function () {
      var cols = Array.prototype.slice.call(chooser.querySelectorAll("input[name=c]:checked")).map(function (c) { return c.value; });
      localStorage.setItem(storeKey, JSON.stringify(cols));
    });
    var params = new URLSearchParams(location.search);
    var saved = localStorage.getItem(storeKey);
    if (saved && !params.has("c") && !params.has("cols")) {
      try {
        var cols = JSON.parse(saved);
        params.set("cols", "1");
        cols.forEach(function (c) { params.append("c", c); });
        location.replace(location.pathname + "?" + params.toString());
      } catch (e) { localStorage.removeItem(storeKey); }
    }
  }

  // Compare table: "show differences only".
  var diffOnly = document.getElementById("diff-only");
  if (diffOnly) {
    diffOnly.addEventListener("change", function () {
      document.getElementById("compare-table").classList.toggle("diff-only", diffOnly.checked);
    });
  }
})();
