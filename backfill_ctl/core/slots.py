"""Which stored instance holds which planned slot: the reconciler's matching. Pure.

A planned instance's id names its *slot*: backfill, node, business date and "tick k of
the n a day" (see planner). The same slot planned again has the same id whatever its
scheduled time, so moving a cron time is an update of the instance, not a new one.

Two kinds of stored instances hold a planned slot under another id:

- instances applied by backfillctl before ids named slots (their id hashed the UTC
  scheduled time): a store from before the upgrade;
- instances of a node whose cron now fires a different number of times a day (k of
  another n), when the plan still has a tick at their time or as many ticks that day.

So after matching by id, the leftovers of one (node, business date) are matched by
scheduled instant, then the rest in time order when both sides have as many. A pair
is one instance: the store keeps its id (its attempts, logs and events stay with it)
and the plan's instance is applied under that id. A backfill therefore never holds two
instances of one slot, and a store written by an earlier version runs nothing twice.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections import Counter
    from collections.abc import Iterable, Sequence

    from backfill_ctl.core.records import InstanceRecord

Move = tuple[str, str, str]  # node, the time of day its instances had, the one planned now


def match(
    planned: Sequence[InstanceRecord], stored: Iterable[InstanceRecord]
) -> tuple[dict[str, InstanceRecord], list[InstanceRecord]]:
    """For each planned id, the stored instance of its slot (if one is stored); and the
    stored instances that hold no planned slot, in store order."""
    left = {i.id: i for i in stored}
    found: dict[str, InstanceRecord] = {}
    loose: dict[tuple[str, str], list[InstanceRecord]] = defaultdict(list)
    for i in planned:
        have = left.pop(i.id, None)
        if have is None:
            loose[i.node, i.bizdate].append(i)
        else:
            found[i.id] = have
    if loose and left:
        unclaimed: dict[tuple[str, str], list[InstanceRecord]] = defaultdict(list)
        for have in left.values():
            unclaimed[have.node, have.bizdate].append(have)
        for key, wanted in loose.items():
            for want, have in _pairs(wanted, unclaimed.get(key, [])):
                found[want.id] = have
                del left[have.id]
    return found, list(left.values())


def _pairs(
    wanted: list[InstanceRecord], held: list[InstanceRecord]
) -> list[tuple[InstanceRecord, InstanceRecord]]:
    """Planned and stored instances of one node and date that no id matched: the same
    instant first, then the rest in time order if both sides have as many."""
    held = sorted(held, key=_order)
    at: dict[float, InstanceRecord] = {}
    for have in held:
        at.setdefault(have.cyctime_epoch, have)
    pairs: list[tuple[InstanceRecord, InstanceRecord]] = []
    rest: list[InstanceRecord] = []
    for want in sorted(wanted, key=_order):
        same = at.pop(want.cyctime_epoch, None)
        if same is None:
            rest.append(want)
        else:
            pairs.append((want, same))
    taken = {have.id for _, have in pairs}
    others = [have for have in held if have.id not in taken]
    if rest and len(rest) == len(others):
        pairs += zip(rest, others, strict=True)
    return pairs


def _order(i: InstanceRecord) -> tuple[float, str]:
    return i.cyctime_epoch, i.id


def move(node: str, before: str, after: str) -> Move:
    """The times of day of two ISO scheduled times, with their offsets when only the
    offset differs (the workspace's timezone changed)."""
    if before[11:16] != after[11:16]:
        return node, before[11:16], after[11:16]
    return node, before[11:], after[11:]


def moves_text(moves: Counter[Move], *, ran: bool = False) -> list[str]:
    """`4 of a move 02:30->02:45`; of instances that ran: `4 of a ran at 02:30 (planned
    now at 02:45)`."""
    if ran:
        return [
            f"{n} of {node} ran at {before} (planned now at {after})"
            for (node, before, after), n in sorted(moves.items())
        ]
    return [
        f"{n} of {node} move {before}->{after}"
        for (node, before, after), n in sorted(moves.items())
    ]
