"""The dashboard's two scripts, served as /static/NAME (no inline script: the CSP is 'self').

Each follows its page while what it shows may still change, then stops after one last
poll: the backfill page polls /api/backfills/NAME/live, the instance page
/api/instances/ID/live. Both answers hold the parts of the page that change as HTML
the server wrote with the page's own functions (every value escaped there), which the
script puts in place of the old; a log is appended as text, never as markup. The grid
is recoloured cell by cell while its rows and dates stay the same (a tab open on a big
grid neither redraws it nor loses the cell under the pointer), and redrawn when they
changed (a re-apply added dates, a filter's rows changed).
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

INSTANCE_JS = """\
// Live instance page: its fields, attempts and what its log gained (as text, never markup).
(function () {
  var pre = document.getElementById("log");
  if (!pre || pre.dataset.live !== "1") return;
  var url = "/api/instances/" + encodeURIComponent(pre.dataset.instance) + "/live?";
  var shown = {};
  function put(id, html) {
    if (typeof html !== "string" || shown[id] === html) return;
    document.getElementById(id).innerHTML = html;
    shown[id] = html;
  }
  function more() {
    var asked = new URLSearchParams({attempt: pre.dataset.attempt, offset: pre.dataset.offset});
    fetch(url + asked, {cache: "no-store"}).then(function (r) {
      if (r.status >= 400 && r.status < 500) { pre.dataset.live = "0"; }
      if (!r.ok) { throw new Error(String(r.status)); }
      return r.json();
    }).then(function (got) {
      put("fields", got.fields);
      put("attempts", got.attempts);
      // Another attempt's log, or this one cut shorter: it starts again.
      if (got.from !== Number(pre.dataset.offset)) { pre.textContent = ""; }
      if (got.text) { pre.append(document.createTextNode(got.text)); }
      pre.dataset.attempt = got.attempt;
      pre.dataset.offset = String(got.offset);
      pre.dataset.live = got.live ? "1" : "0";  // ended: this was the last poll
      if (got.live) { setTimeout(more, got.running ? 1000 : 2000); }
    }).catch(function () {
      if (pre.dataset.live === "1") { setTimeout(more, 2000); }
    });
  }
  setTimeout(more, 1000);
})();
"""

SCRIPTS = {"backfill.js": BACKFILL_JS, "instance.js": INSTANCE_JS}
