"""The dashboard's scripts, served as /static/NAME (no inline script: the CSP is 'self').

Each follows its page while what it shows may still change, then stops after one last
poll: the list polls /api/live (for as long as it is open: a backfill may be applied
any time), the backfill page /api/backfills/NAME/live, the instance page
/api/instances/ID/live. How they poll is one piece of code, `FOLLOW`, which each script
holds (a page loads one script): `follow` asks again while the answer says `live`, not
after a 4xx (asking again will not help; after a 5xx or a lost connection it may), and
`placer` puts a part of the page in place of the old when it changed. The answers hold
the parts of the page that change as HTML the server wrote with the page's own
functions (every value escaped there); a log is appended as text, never as markup. The
grid is recoloured cell by cell while its rows and dates stay the same (a tab open on a
big grid neither redraws it nor loses the cell under the pointer), and redrawn when they
changed (a re-apply added dates, a filter's rows changed).
"""

from __future__ import annotations

FOLLOW = """\
  // Poll ask() while root.dataset.live is "1", from `first` ms on: each answer goes to
  // show(), and its `live` says whether this was the last poll; after(took, got) says
  // how many ms until the next one (got: undefined after a failed poll).
  function follow(root, first, ask, show, after) {
    function poll() {
      var asked = Date.now(), got;
      fetch(ask(), {cache: "no-store"}).then(function (r) {
        // a 4xx: asking again will not help (a 5xx, a lost connection: it may)
        if (r.status >= 400 && r.status < 500) { root.dataset.live = "0"; }
        if (!r.ok) { throw new Error(String(r.status)); }
        return r.json();
      }).then(function (answer) {
        got = answer;
        show(got);
        root.dataset.live = got.live ? "1" : "0";  // ended: this was the last poll
      }).catch(function () {}).then(function () {
        if (root.dataset.live === "1") { setTimeout(poll, after(Date.now() - asked, got)); }
      });
    }
    setTimeout(poll, first);
  }
  // The next poll waits ten times as long as this one took (at least 2 s): a tab left
  // open on a backfill of 800,000 instances costs the server a tenth of a core at most.
  function patient(took) { return Math.max(2000, 10 * took); }
  // put(id, html): the element `id`'s content, replaced when `html` is new.
  function placer() {
    var shown = {};  // each part's HTML as last put in: unchanged parts are left alone
    return function (id, html) {
      if (typeof html !== "string" || shown[id] === html) return;
      document.getElementById(id).innerHTML = html;
      shown[id] = html;
    };
  }
"""


def _script(what: str, body: str) -> str:
    """A page's script: `FOLLOW`, then `body`, in a function of its own."""
    return f"// {what}\n(function () {{\n{FOLLOW}{body}}})();\n"


BACKFILLS_JS = _script(
    "Live list of backfills: each one's phase, progress and counts, and new ones.",
    """\
  var root = document.getElementById("backfills");
  if (!root || root.dataset.live !== "1") return;
  var put = placer();
  follow(root, 2000, function () { return "/api/live"; }, function (got) {
    put("backfills", got.list);
  }, patient);
""",
)

BACKFILL_JS = _script(
    "Live backfill page: its status, grid, lanes, conditions, Gantt and scope (no reload).",
    """\
  var root = document.getElementById("grid");
  if (!root || root.dataset.live !== "1") return;
  var query = new URLSearchParams(location.search);  // the page's filters, kept
  var url = "/api/backfills/" + encodeURIComponent(root.dataset.backfill) + "/live?";
  var put = placer();
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
  function ask() {
    var table = root.querySelector("table.grid");
    query.set("shape", table ? table.dataset.shape : "");
    return url + query;
  }
  follow(root, 2000, ask, function (got) {
    put("status", got.status);
    put("grid", got.grid);  // only when its rows or dates changed
    if (got.cells) { recolour(got.cells); }
    put("below", got.below);
  }, patient);
""",
)

INSTANCE_JS = _script(
    "Live instance page: its fields, attempts and what its log gained (as text, never markup).",
    """\
  var pre = document.getElementById("log");
  if (!pre || pre.dataset.live !== "1") return;
  var url = "/api/instances/" + encodeURIComponent(pre.dataset.instance) + "/live?";
  var put = placer();
  function ask() {
    return url + new URLSearchParams({attempt: pre.dataset.attempt, offset: pre.dataset.offset});
  }
  follow(pre, 1000, ask, function (got) {
    put("fields", got.fields);
    put("attempts", got.attempts);
    // Another attempt's log, or this one cut shorter: it starts again.
    if (got.from !== Number(pre.dataset.offset)) { pre.textContent = ""; }
    if (got.text) { pre.append(document.createTextNode(got.text)); }
    pre.dataset.attempt = got.attempt;
    pre.dataset.offset = String(got.offset);
  }, function (took, got) { return got && got.running ? 1000 : 2000; });
""",
)

SCRIPTS = {"backfills.js": BACKFILLS_JS, "backfill.js": BACKFILL_JS, "instance.js": INSTANCE_JS}
