// The dashboard's script (a file, not inline: the Content-Security-Policy allows no inline
// script or style).

// "Scan queued." says what the last click did: a reload (by hand, or on a state change)
// must not say it again
(function () {
  var url = new URL(window.location.href);
  if (url.searchParams.has("queued") || url.searchParams.has("cancelled")) {
    url.searchParams.delete("queued");
    url.searchParams.delete("cancelled");
    history.replaceState(null, "", url.pathname + url.search);
  }
})();

// progress bars: their width from data-percent (no inline style), then live every 15 s
(function () {
  var table = document.getElementById("scans");
  if (!table) return;
  table.querySelectorAll("[data-percent]").forEach(function (el) {
    el.style.width = el.getAttribute("data-percent") + "%";
  });
  var page = table.getAttribute("data-page") || "1";
  var phases = JSON.parse(table.getAttribute("data-phases") || "{}");  // in the page's language
  function refresh() {
    fetch("/scans/progress.json?page=" + encodeURIComponent(page), {credentials: "same-origin"}).then(function (r) {
      return r.ok ? r.json() : null;
    }).then(function (list) {
      if (!list) return;
      var reload = false;
      list.forEach(function (s) {
        var row = table.querySelector('tr[data-scan="' + s.id + '"]');
        if (!row) { reload = true; return; }
        if (row.getAttribute("data-state") !== s.state) { reload = true; return; }
        row.querySelectorAll("[data-f]").forEach(function (el) {
          var f = el.getAttribute("data-f");
          if (f === "percent") { el.style.width = s.percent + "%"; }
          else if (f === "phase") { el.textContent = s.phase ? (phases[s.phase] || s.phase) : "\u2014"; }
          else if (f === "state") { /* a new state reloads the page: the badge keeps its words */ }
          else { el.textContent = s[f]; }
        });
      });
      if (reload) window.location.reload();
    }).catch(function () {});
  }
  setInterval(refresh, 15000);
})();
