"""What `backfillctl events` shows: the store's events, filtered, in order, and followed.

Every change the store makes writes events in its own transaction (state.protocols):
a transition's from and to state, an operation's kind and message. Here they are
selected (by backfill, instance and actor), turned into rows and data, and followed
by polling for ids above the last one seen. Pure apart from the store: the clock and
the sleep are arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from backfill_ctl.usecases.progress import age, utc

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from backfill_ctl.core.records import EventRecord
    from backfill_ctl.state.protocols import EventReads

HEADER = ("LAST SEEN", "ACTOR", "KIND", "OBJECT", "MESSAGE")


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events: of one backfill (its instances' too), of one instance, by one actor."""

    backfill: str | None = None
    instance: str | None = None
    actor: str | None = None

    def keeps(self, event: EventRecord) -> bool:
        return self.actor is None or event.actor == self.actor


def select(store: EventReads, wanted: EventFilter, after: int = 0) -> list[EventRecord]:
    """The events `wanted` keeps with an id above `after`, oldest first."""
    found = store.events(backfill=wanted.backfill, instance=wanted.instance, after=after)
    return [e for e in found if wanted.keeps(e)]


def follow(
    store: EventReads,
    wanted: EventFilter,
    after: int,
    sleep: Callable[[], None],
    polls: int | None = None,
) -> Iterator[list[EventRecord]]:
    """After each `sleep()`, the new events `wanted` keeps (maybe none), polling by id
    from `after`; forever, or `polls` times."""
    done = 0
    while polls is None or done < polls:
        sleep()
        done += 1
        found = store.events(backfill=wanted.backfill, instance=wanted.instance, after=after)
        if found:
            after = found[-1].id
        yield [e for e in found if wanted.keeps(e)]


def subject(event: EventRecord) -> str:
    """What the event is about: `instance/ID`, else `backfill/NAME`, else `-`."""
    if event.instance:
        return f"instance/{event.instance}"
    if event.backfill:
        return f"backfill/{event.backfill}"
    return "-"


def message(event: EventRecord) -> str:
    """`pending -> running: the reason` (`-> pending` when created), or the message."""
    moved = ""
    if event.to_state is not None:
        moved = f"{event.from_state + ' ' if event.from_state else ''}-> {event.to_state}"
    return ": ".join(part for part in (moved, event.message or "") if part) or "-"


def row(event: EventRecord, now: float) -> tuple[str, ...]:
    """The table's cells (HEADER): how long ago, who, what kind, about what, what."""
    return (age(now - event.at), event.actor, event.kind, subject(event), message(event))


def data(event: EventRecord) -> dict[str, Any]:
    """Every field of the event, its time in UTC, for -o json|yaml."""
    return {
        "id": event.id,
        "time": utc(event.at),
        "actor": event.actor,
        "origin": event.origin,
        "kind": event.kind,
        "object": subject(event),
        "backfill": event.backfill,
        "instance": event.instance,
        "from": event.from_state,
        "to": event.to_state,
        "message": event.message,
    }
