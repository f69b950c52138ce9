"""The dashboard's scripts, served as /static/NAME (no inline script: the CSP is 'self').

The backfill page's follows it while what it shows may still change, then stops after
one last poll: /api/backfills/NAME/live answers with the parts of the page that change,
as HTML the server wrote with the page's own functions (every value escaped there),
which the script puts in place of the old. The grid is recoloured cell by cell while
its rows and dates stay the same (a tab open on a big grid neither redraws it nor loses
the cell under the pointer), and redrawn when they changed (a re-apply added dates, a
filter's rows changed). The instance page's follows a running attempt's log, appended
as text, never as markup.
"""

from __future__ import annotations

BACKFILL_JS = """\
// Live backfill page: its status, grid, lanes, conditions, Gantt and scope (no reload).
(function () {
  var root = document.getElementById("grid");
  if (!root || root.dataset.live !== "1") return;
  var query = new URLSearchParams(location.search);  // the page's filters, kept
  var url = "/api/backfills/" + encodeURIComponent(root.dataset.backfill) + "/live?";
  var shown = {};  // each part's HTML as last put in: unchanged parts are left alone
  function put(id, html) {
    if (typeof html !== "string" || shown[id] === html) return;
    document.getElementById(id).innerHTML = html;
    shown[id] = html;
  }
  function recolour(cells) {
    root.querySelectorAll("a[data-cell]").forEach(function (a) {
      var c = cells[a.dataset.cell];
      if (!c) return;
      var cls = "cell s-" + c.state + (c.dry ? " dry" : "");
      if (a.className !== cls) { a.className = cls; }
      a.title = c.title;
      a.href = "/instances/" + encodeURIComponent(c.id);
    });
  }
  // The next poll waits ten times as long as this one took (at least 2 s): a tab left
  // open on a backfill of 800,000 instances costs the server a tenth of a core at most.
  var took = 0;
  function refresh() {
    var asked = Date.now();
    var table = root.querySelector("table.grid");
    query.set("shape", table ? table.dataset.shape : "");
    fetch(url + query, {cache: "no-store"}).then(function (r) {
      // a 4xx: asking again will not help (a 5xx, a lost connection: it may)
      if (r.status >= 400 && r.status < 500) { root.dataset.live = "0"; }
      if (!r.ok) { throw new Error(String(r.status)); }
      return r.json();
    }).then(function (got) {
      took = Date.now() - asked;
      put("status", got.status);
      put("grid", got.grid);  // only when its rows or dates changed
      if (got.cells) { recolour(got.cells); }
      put("below", got.below);
      root.dataset.live = got.live ? "1" : "0";  // ended: this was the last poll
    }).catch(function () {}).then(function () {
      if (root.dataset.live === "1") { setTimeout(refresh, Math.max(2000, 10 * took)); }
    });
  }
  setTimeout(refresh, 2000);
})();
"""

LOG_JS = """\
// Follow a running attempt's log: append what it writes (as text, never markup).
(function () {
  var pre = document.getElementById("log");
  if (!pre || pre.dataset.live !== "1") return;
  var offset = Number(pre.dataset.offset);
  var url = "/api/instances/" + encodeURIComponent(pre.dataset.instance) + "/log?offset=";
  function more() {
    fetch(url + offset, {cache: "no-store"}).then(function (r) { return r.json(); })
      .then(function (got) {
        if (got.offset < offset) { pre.textContent = ""; }
        if (got.text) { pre.append(document.createTextNode(got.text)); }
        offset = got.offset;
        pre.dataset.offset = String(offset);
        pre.dataset.live = got.live ? "1" : "0";
        if (got.live) { setTimeout(more, 1000); }
      }).catch(function () { setTimeout(more, 2000); });
  }
  setTimeout(more, 1000);
})();
"""

SCRIPTS = {"backfill.js": BACKFILL_JS, "log.js": LOG_JS}
