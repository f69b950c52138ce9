"""Which page a path asks for, read from the store: the dashboard's routes.

/                              the backfills
/api/live                      that list (JSON), polled by its script
/backfills/NAME                one backfill: its grid of nodes x dates
/backfills/NAME?node=TEXT      ... its rows of the nodes whose name holds TEXT
/api/backfills/NAME/live       what changes on that page (JSON), polled by its script
/api/backfills/NAME/cells      that grid's cells (JSON)
/instances/ID                  one instance: why it waits, attempts, log tail
/instances/ID?attempt=N        ... with the log of its attempt N (an earlier one's)
/api/instances/ID/live         what changes on that page (JSON), its log's new end
/api/instances/ID/log          what its log gained after ?offset=N (JSON)
/static/NAME                   the pages' scripts (scripts.py)

A page polls while what it shows may still change: the list for as long as it is open
(a backfill may be applied any time), a backfill until the controller
recorded its end (or it was stopped, deleted, collected) and nothing of it runs; an
instance until it ended (succeeded, failed, cancelled), or its backfill did, and no
attempt of it runs. Each
answer is the page's parts as the page writes them, read as the page reads them.

A query parameter that is not understood is a 400 that says why (before the store is
read), what is not there a 404: `failure`, JSON for /api/ (the pages' scripts read it),
a page else.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from backfill_ctl.core.records import FINISHED, WAITING
from backfill_ctl.serve import dag, gantt, pages
from backfill_ctl.serve.answers import HTML, JSON, cut, failure, offset_of
from backfill_ctl.serve.log_tails import kept, log_of, since, tail
from backfill_ctl.serve.scripts import SCRIPTS
from backfill_ctl.usecases.access import access_of
from backfill_ctl.usecases.objects import backfill_object
from backfill_ctl.usecases.progress import blocked, date_groups, why_waiting

if TYPE_CHECKING:
    from collections.abc import Mapping

    from backfill_ctl.core.records import AttemptRecord, BackfillRecord, DateSpan, InstanceRecord
    from backfill_ctl.state import StateStore

# Above this, a backfill's grid is aggregated by month in the store: reading that many
# instances would take seconds of the process (the controller's, under --serve).
MAX_GRID_INSTANCES = 20_000
# The dry-run reasons that hold for a node on every date (the plan's scope decided them,
# DESIGN §5.2): the DAG marks them, as the PR comment's graph does.
NODE_DRY_RUN = ("blocklisted", "no-permission")


def _counts(store: StateStore, name: str | None = None) -> dict[str, dict[str, int]]:
    by: dict[str, dict[str, int]] = {}
    for (backfill, state), n in store.counts(name).items():
        by.setdefault(backfill, {})[state] = n
    return by


def _rows(store: StateStore) -> list[dict[str, Any]]:
    """The list's backfills, as objects (`backfill_object`), from two reads."""
    counts = _counts(store)
    return [backfill_object(r, counts.get(r.name, {})) for r in store.backfills()]


def route(store: StateStore, target: str) -> tuple[int, bytes, str]:
    path, _, query = target.partition("?")
    parts = tuple(unquote(p) for p in path.strip("/").split("/")) if path.strip("/") else ()
    if not parts:
        return 200, pages.backfills_page(_rows(store)).encode(), HTML
    match parts:
        case ("api", "live"):  # what changes on the list: all of it; it never ends
            answer = {"live": True, "list": pages.backfills_list(_rows(store))}
            return 200, json.dumps(answer, sort_keys=True).encode(), JSON
        case ("static", name) if name in SCRIPTS:
            return 200, SCRIPTS[name].encode(), "text/javascript; charset=utf-8"
        case ("backfills", name) | ("api", "backfills", name, "live"):
            return _backfill_view(store, name, parse_qs(query), target)
        case ("api", "backfills", name, "cells"):
            return _cells(store, name)
        case ("instances", ident):
            return _instance(store, ident, parse_qs(query).get("attempt", [""])[0], target)
        case ("api", "instances", ident, "live" | "log"):
            return _instance_api(store, ident, parse_qs(query), target)
    return failure(404, "nothing here: / lists the backfills", target)


def _backfill_view(
    store: StateStore, name: str, asked: Mapping[str, list[str]], target: str
) -> tuple[int, bytes, str]:
    """A backfill's page, or what changes on it (/api/.../live); ?state= checked first."""
    state = asked.get("state", [""])[0]
    if state and state not in pages.SEVERITY:
        why = f"state={cut(state)}: not a state; one of {', '.join(pages.SEVERITY)}"
        return failure(400, why, target)
    if target.startswith("/api/"):
        return _backfill_live(store, name, asked)
    return _backfill(store, name, asked)


def _instance_api(
    store: StateStore, ident: str, asked: Mapping[str, list[str]], target: str
) -> tuple[int, bytes, str]:
    """What changes on an instance's page (/live), or its log's new end (/log); ?offset=
    checked first."""
    offset = offset_of(asked.get("offset", ["0"])[0] or "0")
    if isinstance(offset, str):
        return failure(400, offset, target)
    if target.partition("?")[0].endswith("/live"):
        return _instance_live(store, ident, asked, offset)
    return _follow(store, ident, offset)


def _read(
    store: StateStore, name: str, counts: Mapping[str, int]
) -> tuple[pages.Grid, list[str], list[InstanceRecord]]:
    """The grid, the ids of failed or frozen instances and the waiting instances, from
    one read of every instance up to MAX_GRID_INSTANCES (exact: dependencies too); above
    it the grid is counted by month in the store, and waiting instances are not read."""
    if sum(counts.values()) > MAX_GRID_INSTANCES:
        held = counts.get("failed", 0) + counts.get("frozen", 0)
        stuck = store.instances(backfill=name, states=["failed", "frozen"]) if held else []
        return pages.month_cells(store.month_counts(name)), [i.id for i in stuck], []
    items = store.instances(backfill=name)
    stuck_ids = [i.id for i in items if i.state in ("failed", "frozen")]
    return pages.grid_cells(items), stuck_ids, [i for i in items if i.state in WAITING]


def _filtered(grid: pages.Grid, query: Mapping[str, list[str]]) -> pages.Grid:
    """The rows a link asks for: ?node=TEXT (nodes whose name holds it), ?state=STATE
    (nodes with a cell in that state, "blocked" included)."""
    nodes, columns, cells = grid
    text = query.get("node", [""])[0]
    state = query.get("state", [""])[0]
    kept = [
        n
        for n in nodes
        if text in n
        and (not state or any(cells.get(f"{n}|{c}", {}).get("state") == state for c in columns))
    ]
    return kept, columns, cells


@dataclass(frozen=True)
class _Shown:
    """What a backfill's page shows, from one read of the store."""

    obj: dict[str, Any]  # usecases.objects.backfill_object: phase, counts, times
    grid: pages.Grid  # the rows the page's query asks for
    below: str  # the date groups, conditions, Gantt and scope
    live: bool  # it may still change: the page's script polls


def _shown(store: StateStore, record: BackfillRecord, query: Mapping[str, list[str]]) -> _Shown:
    spans = store.date_spans(record.name)  # the Gantt, the dates' counts and the total
    dates = {(*key, state): n for key, s in spans.items() for state, n in s.states.items()}
    counts: dict[str, int] = {}
    for (*_, state), n in dates.items():
        counts[state] = counts.get(state, 0) + n
    grid, stuck, waiting = _read(store, record.name, counts)
    groups = date_groups(dates)  # describe's words, below
    below = (
        pages.lanes(groups, blocked(groups, waiting, stuck) if stuck else [])
        + gantt.gantt(spans, time.time())
        + _scope(store, record, grid, spans)
    )
    live = not _over(record) or bool(counts.get("running"))  # a stopped one's attempts end
    return _Shown(backfill_object(record, counts), _filtered(grid, query), below, live)


def _over(record: BackfillRecord) -> bool:
    """The controller recorded its end, or it was stopped, deleted or collected: what
    has not run will not by itself (an operator's rerun may)."""
    return record.finished_at is not None or record.status != "active"


def _backfill(
    store: StateStore, name: str, query: Mapping[str, list[str]]
) -> tuple[int, bytes, str]:
    record = store.backfill(name)
    if record is None:
        return _missing(f"no backfill {name} in the state store")
    shown = _shown(store, record, query)
    page = pages.backfill_page(shown.obj, shown.grid, shown.below, live=shown.live)
    return 200, page.encode(), HTML


def _backfill_live(
    store: StateStore, name: str, query: Mapping[str, list[str]]
) -> tuple[int, bytes, str]:
    """The parts of the backfill's page that change, as the page writes them: the grid's
    cells alone while its rows and columns are those the page shows (?shape=), else the
    whole grid (a re-apply added dates or nodes, a filter's rows changed)."""
    record = store.backfill(name)
    if record is None:
        return failure(404, f"no backfill {name} in the state store", "/api/")
    shown = _shown(store, record, query)
    answer: dict[str, Any] = {
        "live": shown.live,
        "phase": shown.obj["status"]["phase"],
        "status": pages.status_line(shown.obj),
        "below": shown.below,
    }
    nodes, _, cells = shown.grid
    if query.get("shape", [""])[0] == pages.grid_shape(shown.grid):
        rows = set(nodes)
        answer["cells"] = {k: c for k, c in cells.items() if k.split("|", 1)[0] in rows}
    else:
        answer["grid"] = pages.grid_table(record.name, shown.grid)
    return 200, json.dumps(answer, sort_keys=True).encode(), JSON


def _scope(
    store: StateStore,
    record: BackfillRecord,
    grid: pages.Grid,
    spans: Mapping[tuple[int, int, str], DateSpan],
) -> str:
    """The scope DAG: its nodes as apply recorded them (the access' nodes; else the
    grid's), each filled with the worst state of its cells, its edges and dry-run
    reasons from the instances of one date (the one with the most: every node's, as a
    rule), never every instance of a big backfill."""
    access = access_of(record)
    scope = sorted(access.operators) if access and access.operators else grid[0]
    sample = _fullest(spans)
    found = store.instances(backfill=record.name, bizdate=sample) if sample else []
    edges, marks = dag.drawn_from(found, NODE_DRY_RUN)
    if access:
        marks |= {n: marks.get(n, "dry-run") for n in access.dry_run}
    select = record.spec.get("spec", {}).get("select", {})
    left_out = [b for b in select.get("block", []) if b not in set(scope)]
    return dag.dag(record.name, scope, edges, _node_states(grid), marks, left_out=left_out)


def _node_states(grid: pages.Grid) -> dict[str, str]:
    """Each node's worst state in the grid (its row's colours)."""
    nodes, columns, cells = grid
    states = {}
    for n in nodes:
        held = {cells[f"{n}|{c}"]["state"] for c in columns if f"{n}|{c}" in cells}
        states[n] = next((s for s in pages.SEVERITY if s in held), "none")
    return states


def _fullest(spans: Mapping[tuple[int, int, str], DateSpan]) -> str | None:
    """The business date with the most instances (the earliest of those)."""
    per_date: dict[str, int] = {}
    for (_, _, bizdate), s in spans.items():
        per_date[bizdate] = per_date.get(bizdate, 0) + sum(s.states.values())
    return min(per_date, key=lambda d: (-per_date[d], d)) if per_date else None


def _cells(store: StateStore, name: str) -> tuple[int, bytes, str]:
    counts = _counts(store, name).get(name, {})
    if not counts and store.backfill(name) is None:  # (one with no instance left is there)
        return failure(404, f"no backfill {name} in the state store", "/api/")
    grid = _read(store, name, counts)[0]
    return 200, pages.cells_json(grid), JSON


def _instance(store: StateStore, ident: str, asked: str, target: str) -> tuple[int, bytes, str]:
    """The instance's page with its latest attempt's log (followed while it runs), or
    attempt `asked`'s (?attempt=N: an earlier one's, as it ended)."""
    if asked and not (asked.isascii() and asked.isdigit() and len(asked) <= 9):
        return failure(400, f"attempt={cut(asked)}: an attempt's number (1 or more)", target)
    return _instance_page(store, ident, asked)


def _instance_page(store: StateStore, ident: str, asked: str) -> tuple[int, bytes, str]:
    found = store.instances(ids=[ident])
    if not found:
        return _missing(f"no instance {ident} in the state store")
    i = found[0]
    attempts = store.attempts(i.id)
    latest = attempts[-1] if attempts else None
    shown = next((a for a in attempts if str(a.number) == asked), None) if asked else latest
    if asked and shown is None:
        return _missing(f"instance {i.id} has no attempt {asked}")
    ended = shown is None or shown.finished_at is not None
    log, size = tail(log_of(store, shown), ended) if shown else (None, 0)
    if shown is not None and log is None:  # not on this machine: the store's copy
        log, size = kept(store, shown)
    backfill = store.backfill(i.backfill)
    live = shown is latest and not _ended(i, latest, backfill)
    why = _why(store, i, backfill)
    page = pages.instance_page(i, why, attempts, log, size, live, shown=shown)
    return 200, page.encode(), HTML


def _why(store: StateStore, i: InstanceRecord, backfill: BackfillRecord | None) -> str | None:
    deps = store.instances(ids=list(i.depends_on)) if i.depends_on else []
    return why_waiting(i, backfill, deps, lambda: store.date_counts(i.backfill), time.time())


def _ended(
    i: InstanceRecord, latest: AttemptRecord | None, backfill: BackfillRecord | None
) -> bool:
    """Nothing on its page changes by itself any more (an operator's rerun may): no
    attempt of it runs, and it ended (succeeded, failed, cancelled) or its backfill did
    (one left waiting behind a failure)."""
    if latest is not None and latest.finished_at is None:
        return False
    return i.state in FINISHED or backfill is None or _over(backfill)


def _instance_live(
    store: StateStore, ident: str, query: Mapping[str, list[str]], offset: int
) -> tuple[int, bytes, str]:
    """The parts of the instance's page that change, as the page writes them, and what
    its latest attempt's log gained after ?offset=N when ?attempt= is that attempt
    (from its start else: `from` says where the text goes)."""
    found = store.instances(ids=[ident])
    if not found:
        return failure(404, f"no instance {ident} in the state store", "/api/")
    i = found[0]
    attempts = store.attempts(i.id)
    latest = attempts[-1] if attempts else None
    same = latest is not None and query.get("attempt", [""])[0] == str(latest.number)
    ended = latest is None or latest.finished_at is not None
    start, data, size = since(log_of(store, latest), offset if same else 0, ended)
    backfill = store.backfill(i.backfill)
    answer = {
        "live": not _ended(i, latest, backfill) or start + len(data) < size,
        "running": latest is not None and latest.finished_at is None,
        "fields": pages.instance_fields(i, _why(store, i, backfill)),
        "attempts": pages.attempts_rows(attempts),
        "attempt": str(latest.number) if latest else "",
        "from": start,
        "offset": start + len(data),
        "text": data.decode("utf-8", errors="replace"),
    }
    return 200, json.dumps(answer, sort_keys=True).encode(), JSON


def _follow(store: StateStore, ident: str, offset: int) -> tuple[int, bytes, str]:
    """What the latest attempt's log gained after ?offset=N (at most LOG_TAIL bytes), and
    whether it still runs: the instance page's script appends it."""
    attempts = store.attempts(ident)
    if not attempts and not store.instances(ids=[ident]):
        return failure(404, f"no instance {ident} in the state store", "/api/")
    if not attempts:
        return 200, json.dumps({"offset": 0, "text": "", "live": False}).encode(), JSON
    latest = attempts[-1]
    offset, data, size = since(log_of(store, latest), offset, latest.finished_at is not None)
    answer = {
        "offset": offset + len(data),
        "text": data.decode("utf-8", errors="replace"),
        "live": latest.finished_at is None or offset + len(data) < size,
    }
    return 200, json.dumps(answer).encode(), JSON


def _missing(text: str) -> tuple[int, bytes, str]:
    return failure(404, text, "/")
