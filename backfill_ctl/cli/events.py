"""`backfillctl events [backfill/NAME | instance/ID] [--actor A] [-w] [-o json|yaml]`.

kubectl-like: what happened, newest last, read from the store's events (every
transition and operation writes one). A backfill's events include its instances'.
`-w` prints the events, then polls the store every second for events with a higher id
and prints them as they come, until interrupted. The rows and data are made in
usecases.events; the output formats are `get`'s (reports.listing).
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from backfill_ctl.cli.console import Terminal
from backfill_ctl.cli.get import WatchLimitOpt, find_backfill, find_instance
from backfill_ctl.cli.state import StateOpt, open_state
from backfill_ctl.reports.listing import GET, Columns, Item
from backfill_ctl.usecases import events as events_

if TYPE_CHECKING:
    from collections.abc import Sequence

    from backfill_ctl.core.records import EventRecord
    from backfill_ctl.state import ReadStore

WATCH_INTERVAL = 1.0  # seconds between two polls of the store under -w
_sleep = time.sleep  # tests replace it to change the store between polls
clock = time.time  # tests pin it


class Format(StrEnum):
    json = "json"
    yaml = "yaml"


def _filter(store: ReadStore, target: str | None, actor: str | None) -> events_.EventFilter:
    """backfill/NAME, instance/ID, or a bare name: a backfill's if there is one."""
    if target is None:
        return events_.EventFilter(actor=actor)
    if target.startswith("instance/") or (
        not target.startswith("backfill/") and store.backfill(target) is None
    ):
        return events_.EventFilter(instance=find_instance(store, target).id, actor=actor)
    return events_.EventFilter(backfill=find_backfill(store, target).name, actor=actor)


def _items(found: Sequence[EventRecord]) -> list[Item]:
    now = clock()
    return [Item(events_.subject(e), events_.row(e, now), (), events_.data(e)) for e in found]


def events_command(
    target: Annotated[
        str | None,
        typer.Argument(
            metavar="backfill/NAME|instance/ID",
            help="Only the events of this backfill (its instances' too) or instance.",
            show_default=False,
        ),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option(
            "--actor",
            metavar="ACTOR",
            help="Only the events this actor caused.",
            show_default=False,
        ),
    ] = None,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            "-w",
            help="After the events, print new ones as they come (polled every second).",
        ),
    ] = False,
    output: Annotated[
        Format | None,
        typer.Option(
            "--output", "-o", help="json, yaml: every field of each event.", show_default=False
        ),
    ] = None,
    watch_limit: WatchLimitOpt = None,
    state: StateOpt = None,
) -> None:
    """List what happened to backfills and instances, newest last.

    LAST SEEN is how long ago; KIND is what happened (transition, apply, rerun, stop,
    ...); MESSAGE is the change of state (from -> to) and its reason.

    \b
    Examples:
      backfillctl events                          # everything, newest last
      backfillctl events backfill/fix-orders-2024-03   # one backfill and its instances
      backfillctl events instance/ID -o yaml      # one instance, every field
      backfillctl events --actor alice -w         # what alice does, as it happens
    """
    store = open_state(state)
    wanted = _filter(store, target, actor)
    columns = Columns("events", events_.HEADER, ())
    report = GET["table" if output is None else output.value](columns, Terminal(flush=True))
    last = store.last_event_id()  # read first: what comes after is watched, not lost
    found = events_.select(store, wanted)
    report.listing(_items(found))
    if not watch:
        return
    after = max(last, found[-1].id if found else 0)
    for new in events_.follow(store, wanted, after, lambda: _sleep(WATCH_INTERVAL), watch_limit):
        if new:
            report.changes(_items(new))
