"""The dashboard's pages: HTML written here, every value escaped, nothing from elsewhere.

Pure functions of what the store holds (the server reads it): the backfills, one
backfill's grid of nodes x business dates (coloured by state; by month past a size),
one instance with its attempts and the tail of its log. The parts of a page that change
while its backfill runs (the list's table; status line, grid, lanes; an instance's fields
and attempts) are functions of their own: the page's script polls them again (views, scripts).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from backfill_ctl.serve import dag, gantt
from backfill_ctl.usecases.progress import log_removed, utc

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from backfill_ctl.core.records import AttemptRecord, InstanceRecord
    from backfill_ctl.usecases.progress import DateGroup

# Worst first: the colour of a cell that holds several instances (hourly nodes, months).
SEVERITY = (
    "failed",
    "blocked",  # waiting behind a failed date of its group, or a failed dependency
    "running",
    "waiting-for-resources",
    "waiting-for-time",
    "waiting-for-upstream",
    "frozen",
    "pending",
    "cancelled",
    "succeeded",
)
MAX_CELLS = 40_000  # above this many node x date cells, the grid shows months
STYLE = (
    """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
a{color:#0b57d0;text-decoration:none}a:hover{text-decoration:underline}
table{border-collapse:collapse}th,td{padding:2px 8px;text-align:left;vertical-align:top}
table.list td,table.list th{border-bottom:1px solid #ddd}
.bar{display:inline-block;width:160px;height:10px;background:#eee;vertical-align:middle}
.bar span{display:block;height:10px;background:#2e7d32}
.grid td{padding:0}.grid th{font-weight:normal;font-size:11px;white-space:nowrap}
.grid th.date{writing-mode:vertical-rl;transform:rotate(180deg);height:70px}
.cell{display:block;width:12px;height:12px;margin:1px;border-radius:2px;background:#ccc}
.s-succeeded{background:#2e7d32}.s-failed{background:#c62828}.s-running{background:#1565c0}
.s-pending{background:#bdbdbd}.s-frozen{background:#6a1b9a}.s-cancelled{background:#616161}
.s-waiting-for-upstream,.s-waiting-for-time,.s-waiting-for-resources{background:#f9a825}
.s-blocked{background:repeating-linear-gradient(45deg,#c62828 0 2px,#ffcdd2 2px 5px)}
.dry{opacity:.45}
pre{background:#f6f8fa;padding:8px;overflow:auto;max-height:40em;white-space:pre-wrap}
.legend span{margin-right:1em}.legend .cell{display:inline-block;vertical-align:middle}
"""
    + gantt.STYLE
    + dag.STYLE
)  # the SVG pictures' classes


def page(title: str, body: str, *, script: str | None = None) -> str:
    tag = f'<script src="{escape(script)}" defer></script>' if script else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(title)} · backfillctl</title><style>{STYLE}</style>{tag}</head>"
        f'<body><p><a href="/">backfills</a></p>{body}</body></html>'
    )


def _counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{escape(s)} {n}" for s, n in sorted(counts.items()) if n)


def _bar(done: int, total: int) -> str:
    width = round(100 * done / total) if total else 0
    return f'<span class=bar title="{done} of {total}"><span style="width:{width}%"></span></span>'


def backfills_page(rows: Sequence[Mapping[str, Any]]) -> str:
    """`rows`: backfill objects (usecases.objects.backfill_object). The list follows
    them for as long as it is open (its script polls /api/live: `backfills_list`): a
    backfill may be applied any time."""
    body = f"<h1>Backfills</h1><div id=backfills data-live=1>{backfills_list(rows)}</div>"
    return page("Backfills", body, script="/static/backfills.js")


def backfills_list(rows: Sequence[Mapping[str, Any]]) -> str:
    """The list's table: a row per backfill, its phase, progress, counts and times."""
    lines = []
    for obj in rows:
        status = obj["status"]
        counts = status["counts"]
        total = status["instances"]
        done = counts.get("succeeded", 0)
        name = obj["metadata"]["name"]
        lines.append(
            "<tr>"
            f'<td><a href="/backfills/{quote(name)}">{escape(name)}</a></td>'
            f"<td>{escape(str(status['phase']))}</td>"
            f"<td>{_bar(done, total)} {done}/{total}</td>"
            f"<td>{_counts_text(counts)}</td>"
            f"<td>{escape(status['appliedAt'] or '')}</td>"
            f"<td>{escape(status['finishedAt'] or '')}</td>"
            f"<td>{escape(status['appliedBy'] or '')}</td>"
            "</tr>"
        )
    head = (
        "<tr><th>BACKFILL</th><th>PHASE</th><th>PROGRESS</th><th>COUNTS</th>"
        "<th>APPLIED</th><th>FINISHED</th><th>APPLIED BY</th></tr>"
    )
    return f"<table class=list>{head}{''.join(lines)}</table>" if lines else "<p>No backfill."


def grid_cells(instances: Iterable[InstanceRecord]) -> tuple[list[str], list[str], dict[str, Any]]:
    """(nodes, columns, cells): a column per business date, or per month when the grid
    would exceed MAX_CELLS; a cell is keyed "node|column", its state the worst of its
    instances."""
    items = list(instances)
    shown = _blocked(items)
    nodes = sorted({i.node for i in items})
    dates = sorted({i.bizdate for i in items})
    by_month = len(nodes) * len(dates) > MAX_CELLS
    groups: dict[str, list[InstanceRecord]] = defaultdict(list)
    for i in items:
        groups[f"{i.node}|{i.bizdate[:7] if by_month else i.bizdate}"].append(i)
    columns = sorted({k.split("|", 1)[1] for k in groups})
    cells = {key: _cell(members, shown) for key, members in groups.items()}
    return nodes, columns, cells


def month_cells(
    counts: Mapping[tuple[str, str, str, bool, bool], tuple[int, str]],
) -> tuple[list[str], list[str], dict[str, Any]]:
    """The grid by month from the store's aggregate (state.month_counts): for a backfill
    too big to read instance by instance. A waiting instance behind a failed date of its
    group is shown blocked (one behind a failed dependency only is not: that needs every
    instance)."""
    per: dict[str, dict[str, list[Any]]] = defaultdict(dict)  # cell -> state -> [n, id, dry]
    for (node, month, state, dry, behind), (n, least) in counts.items():
        waits = state == "pending" or state.startswith("waiting-for")
        shown = "blocked" if waits and behind else state
        slot = per[f"{node}|{month}"].setdefault(shown, [0, least, True])
        slot[0] += n
        slot[1] = min(slot[1], least)
        slot[2] = slot[2] and dry
    cells = {}
    for key, states in per.items():
        worst = next((s for s in SEVERITY if s in states), next(iter(states)))
        node, month = key.split("|", 1)
        cells[key] = {
            "state": worst,
            "dry": all(v[2] for v in states.values()),
            "id": states[worst][1],
            "title": f"{node} {month}: "
            + ", ".join(f"{s} {v[0]}" for s, v in sorted(states.items())),
        }
    nodes = sorted({k.split("|", 1)[0] for k in cells})
    columns = sorted({k.split("|", 1)[1] for k in cells})
    return nodes, columns, cells


def _blocked(items: list[InstanceRecord]) -> dict[str, str]:
    """The state each instance is shown in: "blocked" for one that waits while an
    earlier date of its date group has failed, or a dependency failed or is blocked
    itself (the date order and the dependencies hold it: the controller stores no
    blocker for those)."""
    failed = {i.id for i in items if i.state == "failed"}
    waiting = [
        i
        for i in items
        if (i.state == "pending" or i.state.startswith("waiting-for")) and not i.ignore_deps
    ]
    held = _behind(items, waiting)
    dependents: dict[str, list[str]] = defaultdict(list)
    for i in waiting:
        for d in i.depends_on:
            dependents[d].append(i.id)
    todo = [*failed, *held]
    while todo:  # what waits on a failed or held instance is held too
        for child in dependents.get(todo.pop(), ()):
            if child not in held:
                held.add(child)
                todo.append(child)
    return {i.id: "blocked" if i.id in held else i.state for i in items}


def _behind(items: list[InstanceRecord], waiting: list[InstanceRecord]) -> set[str]:
    """The waiting instances of a date after a failed date of their date group."""
    first_failed: dict[tuple[str, int], int] = {}
    for i in items:
        if i.state == "failed":
            key = (i.backfill, i.group)
            first_failed[key] = min(first_failed.get(key, i.sequence), i.sequence)
    return {
        i.id for i in waiting if i.sequence > first_failed.get((i.backfill, i.group), i.sequence)
    }


def _cell(members: list[InstanceRecord], shown: Mapping[str, str]) -> dict[str, Any]:
    states = {shown[i.id] for i in members}
    worst = next((s for s in SEVERITY if s in states), shown[members[0].id])
    first = next(i for i in members if shown[i.id] == worst)
    counts: dict[str, int] = defaultdict(int)
    for i in members:
        counts[shown[i.id]] += 1
    title = f"{first.node} {first.bizdate}: " + ", ".join(
        f"{s} {n}" for s, n in sorted(counts.items())
    )
    return {
        "state": worst,
        "dry": all(i.dry_run for i in members),
        "id": first.id,
        "title": title,
    }


Grid = tuple[list[str], list[str], dict[str, Any]]  # nodes, columns, cells


def lanes(groups: Sequence[DateGroup], conditions: Sequence[str]) -> str:
    """The date groups as lanes with their progress, and what is stuck (as describe)."""
    rows = "".join(
        "<tr>"
        f"<td>group {g.group}</td><td>{_bar(g.done, g.instances)} {g.done}/{g.instances}</td>"
        f"<td>{escape(g.bizdate or 'all done')}</td>"
        f"<td>date {g.position} of {g.dates}</td>"
        f"<td>{_counts_text(g.at_current) if g.current is not None else ''}</td>"
        "</tr>"
        for g in groups
    )
    table = (
        "<h2>Date groups</h2><table class=list><tr><th>GROUP</th><th>DONE</th>"
        f"<th>CURRENT DATE</th><th>PROGRESS</th><th>AT THE CURRENT DATE</th></tr>{rows}</table>"
        if groups
        else ""
    )
    stuck = "".join(f"<li>{escape(text)}</li>" for text in conditions)
    return table + (f"<h2>Conditions</h2><ul class=conditions>{stuck}</ul>" if stuck else "")


def status_line(obj: Mapping[str, Any]) -> str:
    """The backfill's phase, progress, counts and times: the page's <p id=status>."""
    status = obj["status"]
    return (
        f"{escape(str(status['phase']))} · "
        f"{_bar(status['counts'].get('succeeded', 0), status['instances'])}"
        f" {_counts_text(status['counts'])} · applied {escape(status['appliedAt'] or '')}"
        + (f" by {escape(status['appliedBy'])}" if status["appliedBy"] else "")
        + (f" · finished {escape(status['finishedAt'])}" if status["finishedAt"] else "")
    )


def grid_shape(grid: Grid) -> str:
    """Its rows and columns in a word: the page's script redraws the grid when it changed."""
    nodes, columns, _ = grid
    text = "\n".join(nodes) + "\n\n" + "\n".join(columns)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def grid_table(name: str, grid: Grid) -> str:
    """The grid of nodes x columns, a cell a link to its (worst) instance."""
    nodes, columns, cells = grid
    head = "".join(f'<th class=date title="{escape(c)}">{escape(c)}</th>' for c in columns)
    rows = []
    for node in nodes:
        tds = []
        for column in columns:
            cell = cells.get(f"{node}|{column}")
            if cell is None:
                tds.append("<td></td>")
                continue
            classes = f"cell s-{cell['state']}" + (" dry" if cell["dry"] else "")
            key = escape(f"{node}|{column}")
            tds.append(
                f'<td><a class="{escape(classes)}" data-cell="{key}" '
                f'href="/instances/{quote(cell["id"])}" title="{escape(cell["title"])}"></a></td>'
            )
        rows.append(f"<tr><th>{escape(node)}</th>{''.join(tds)}</tr>")
    return (
        f'<table class=grid data-backfill="{escape(name)}" data-shape="{grid_shape(grid)}">'
        f"<tr><th></th>{head}</tr>{''.join(rows)}</table>"
    )


def backfill_page(
    obj: Mapping[str, Any], grid: Grid, below: str = "", *, live: bool = False
) -> str:
    """The backfill's summary, the grid, then `below` (lanes(): groups, conditions; the
    Gantt, the scope). `live`: it may still change, and the page's script follows it."""
    name = obj["metadata"]["name"]
    legend = "".join(  # each a link to paste: the rows with a cell in that state
        f'<span><a href="?state={quote(s)}"><i class="cell s-{s}"></i> {escape(s)}</a></span>'
        for s in SEVERITY
    )
    legend += '<span><a href="?">all</a></span>'
    body = (
        f"<h1>Backfill {escape(name)}</h1>"
        f"<p id=status>{status_line(obj)}</p>"
        f"<p class=legend>{legend} (faded: dry-run)</p>"
        f'<div id=grid data-backfill="{escape(name)}" data-live="{int(live)}">'
        f"{grid_table(name, grid)}</div><div id=below>{below}</div>"
    )
    return page(f"Backfill {name}", body, script="/static/backfill.js")


def cells_json(grid: Grid) -> bytes:
    """The grid's cells: each cell's state, dry-run and title."""
    return json.dumps(grid[2], sort_keys=True).encode()


def instance_fields(i: InstanceRecord, why: str | None) -> str:
    """Its fields as table rows (the page's <table id=fields>): state and why it waits
    among them."""
    fields = [
        ("backfill", f'<a href="/backfills/{quote(i.backfill)}">{escape(i.backfill)}</a>'),
        ("node", escape(i.node)),
        ("business date", escape(i.bizdate)),
        ("scheduled time", escape(i.cyctime)),
        ("state", escape(i.state) + (" (dry-run)" if i.dry_run else "")),
        ("reason", escape(i.reason or "")),
        ("why it waits", escape(why or "")),
        ("resource group", escape(i.resource_group)),
        ("command", escape(_command(i))),
    ]
    return "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in fields)


def attempts_rows(attempts: Sequence[AttemptRecord]) -> str:
    """The attempts as table rows under their heading (the page's <table id=attempts>),
    each number a link to its page with that attempt's log."""
    return (
        "<tr><th>#</th><th>STATE</th><th>EXIT</th><th>STARTED</th><th>FINISHED</th>"
        "<th>DURATION</th><th>MESSAGE</th></tr>"
    ) + "".join(
        "<tr>"
        f'<td><a href="/instances/{quote(a.instance)}?attempt={a.number}">{a.number}</a></td>'
        f"<td>{escape(a.state)}</td>"
        f"<td>{'' if a.exit_code is None else a.exit_code}</td>"
        f"<td>{escape(utc(a.started_at) or '')}</td><td>{escape(utc(a.finished_at) or '')}</td>"
        f"<td>{_seconds(a)}</td><td>{escape(a.message or '')}</td>"
        "</tr>"
        for a in attempts
    )


def instance_page(
    i: InstanceRecord,
    why: str | None,
    attempts: Sequence[AttemptRecord],
    log: str | None,
    size: int = 0,
    live: bool = False,
    *,
    shown: AttemptRecord | None = None,
) -> str:
    """`log`: the tail of the log of attempt `shown` (default: the latest), `size` bytes
    long in all; `live`: the instance may still change (it has not ended, or its attempt
    runs), and the page's script follows its fields, attempts and log from there."""
    env = "".join(
        f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in sorted(i.run.env.items())
    )
    latest = attempts[-1] if attempts else None
    shown = shown or latest
    heading = "Log"
    if shown is not None and shown is not latest:
        heading = (
            f"Log of attempt {shown.number} of {len(attempts)} "
            f'(<a href="/instances/{quote(i.id)}">the latest</a>)'
        )
    attempt, gone = (str(shown.number), log_removed(shown)) if shown else ("", None)
    body = (
        f"<h1>Instance {escape(i.id)}</h1><table class=list id=fields>"
        + instance_fields(i, why)
        + "</table><h2>Parameters</h2><table class=list>"
        + (env or "<tr><td>none</td></tr>")
        + "</table><h2>Attempts</h2><table class=list id=attempts>"
        + attempts_rows(attempts)
        + f"</table><h2>{heading}</h2>"
        + f'<pre id=log data-instance="{escape(i.id)}" data-attempt="{attempt}" '
        f'data-offset="{size}" data-live="{int(live)}">{escape(log or "")}</pre>'
        + ("" if log or live else f"<p>{'The log was ' + escape(gone) if gone else 'No output'}.")
    )
    return page(f"Instance {i.id}", body, script="/static/instance.js")


def _command(i: InstanceRecord) -> str:
    command = i.run.command
    return command if isinstance(command, str) else " ".join(command)


def _seconds(a: AttemptRecord) -> str:
    if a.finished_at is None:
        return ""
    return f"{a.finished_at - a.started_at:.1f} s"
