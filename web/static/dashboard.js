// The dashboard's live progress (a static file: the pages allow no inline script).
// "Scan queued." says what the last click did: a reload must not say it again.
(function () {
  var url = new URL(window.location.href);
  ["queued", "cancelled", "deleted"].forEach(function (name) { url.searchParams.delete(name); });
  if (url.search !== window.location.search) {
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
  var table = document.getElementById("scans");
  if (!table) return;
  // progress bars: their width from data-percent (the CSP allows no inline style)
  table.querySelectorAll("[data-percent]").forEach(function (el) {
    el.style.width = el.getAttribute("data-percent") + "%";
  });
  var page = table.getAttribute("data-page") || "1";
  var phases = JSON.parse(table.getAttribute("data-phases") || "{}");  // in the page's language
  // every 15 s; every 2 s while a scan waits to start or is starting, so that its start (and
  // a quick failure) shows at once rather than up to 15 s later
  var SLOW = 15000, FAST = 2000;
  function waiting() {
    return table.querySelector('tr[data-state="queued"], tr[data-phase="starting"]') !== null;
  }
  function refresh() {
    fetch("/scans/progress.json?page=" + encodeURIComponent(page), {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (list) {
        if (!list) return schedule();
        var reload = false;
        list.forEach(function (s) {
          var row = table.querySelector('tr[data-scan="' + s.id + '"]');
          if (!row || row.getAttribute("data-state") !== s.state) { reload = true; return; }
          row.setAttribute("data-phase", s.phase || "");
          row.querySelectorAll("[data-f]").forEach(function (el) {
            var f = el.getAttribute("data-f");
            if (f === "percent") { el.style.width = s.percent + "%"; }
            else if (f === "phase") { el.textContent = s.phase ? (phases[s.phase] || s.phase) : "\u2014"; }
            else if (f === "state") { /* a new state reloads the page: the badge keeps its words */ }
            else { el.textContent = s[f]; }
          });
        });
        if (reload) { window.location.reload(); return; }
        schedule();
      })
      .catch(schedule);
  }
  function schedule() { setTimeout(refresh, waiting() ? FAST : SLOW); }
  schedule();
})();
