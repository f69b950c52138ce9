"""`stop --force`: an operator declares ended an attempt that runs where the controller
cannot reach it, once that place is gone (as `kubectl delete pod --force` for a pod of
a node that is gone).

A controller that adopts an attempt it can neither see nor signal (the local backend's,
started in another pid namespace or on another host) follows it only by what its shim
writes there; if that place died with its shim, nothing ever comes, and the attempt
would run for ever. Such a controller records that it cannot reach the attempt: an
event `out-of-reach` on its instance, from its origin (the lease's holder names it).

The operation is state in the store, like a stop: the instance's `stop_requested`, and
an event `force-stop` naming who asked. It is allowed on a running instance whose current
attempt the controller that holds the lease recorded out of its reach (in the same
transaction that stores it), and refused otherwise: where that controller sees the
processes, a stop ends them (and the attempt ends once none is left).

The controller carries it out (runtime/adoption.py): it asks the backend to report the
attempt ended (`Backend.declare_ended`), which reads the shim's code first; so exactly
one outcome is recorded, by the one writer of attempts' ends, whose first report wins
in the store: the code, if the shim wrote it before, else `lost` (the instance failed,
not retried, as after a stop). A code written after that is never read. A controller
that can see the attempt after all (a takeover since the check) stops it instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backfill_ctl.usecases.access import Guard
from backfill_ctl.usecases.operations import RULES, Result, select

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from backfill_ctl.core.records import EventRecord, InstanceRecord, Lease
    from backfill_ctl.state import OperationsStore
    from backfill_ctl.state.protocols import EventReads
    from backfill_ctl.usecases.operations import Selection

OUT_OF_REACH = "out-of-reach"  # the controller's event: it cannot follow the attempt's processes
FORCE_STOP = "force-stop"  # the operator's event: `stop --force`
# Events of an instance read back to find its current attempt's beginning: a running
# instance has few after it (a stop, a force-stop, a controller's out-of-reach each).
_LOOKBACK = 50


def since_begun(events: Sequence[EventRecord]) -> list[EventRecord]:
    """The events (oldest first) of a running instance since its current attempt began
    (its move from a waiting state to running), that move left out."""
    for at in range(len(events) - 1, -1, -1):
        e = events[at]
        if e.to_state == "running" and e.from_state not in (None, "running"):
            return list(events[at + 1 :])
    return list(events)


def current(store: EventReads, instance: str) -> list[EventRecord]:
    """The events of `instance` since its current attempt began."""
    return since_begun(store.events(instance=instance, limit=_LOOKBACK))


def forced_by(events: Sequence[EventRecord]) -> str | None:
    """Who asked for a `stop --force` among `events` (the newest), or None."""
    asked = [e.actor for e in events if e.kind == FORCE_STOP]
    return asked[-1] if asked else None


def refusal(events: Sequence[EventRecord], lease: Lease | None) -> str | None:
    """Why `stop --force` does not apply to a running instance whose current attempt's
    events are `events` while `lease` is the store's lease; None when it does."""
    if lease is not None and any(
        e.kind == OUT_OF_REACH and e.origin == lease.holder for e in events
    ):
        return None
    if lease is None:
        who = "no controller has found its attempt out of its reach"
    else:
        who = (
            f"the controller that drives the store (pid {lease.pid} on {lease.host}) follows "
            "its processes (it has not found them out of its reach)"
        )
    return f"cannot stop --force: {who}: stop it without --force"


def split(
    store: EventReads, lease: Lease | None, targets: Sequence[InstanceRecord]
) -> tuple[list[InstanceRecord], list[tuple[str, str]]]:
    """The running `targets` `stop --force` applies to, and the others with why."""
    kept: list[InstanceRecord] = []
    refused: list[tuple[str, str]] = []
    for i in targets:
        why = refusal(current(store, i.id), lease)
        if why is None:
            kept.append(i)
        else:
            refused.append((i.id, why))
    return kept, refused


def run(
    store: OperationsStore,
    selection: Selection,
    *,
    actor: str | None,
    by: Callable[[str | None], str],
    at: float,
) -> Result:
    """`stop --force` of the instances `selection` names, as `actor`, checked as every
    operation is (operations.run), then against what the controller recorded, in one
    transaction with the change it allows."""
    targets = select(store, selection)
    guard = Guard(store, actor)
    guard.require_actor(i.backfill for i in targets)
    with store.batch():
        return _stop(store, targets, by(guard.actor), at, guard)


def _stop(
    store: OperationsStore,
    targets: Sequence[InstanceRecord],
    actor: str,
    at: float,
    guard: Guard,
) -> Result:
    """A stop of the running targets whose attempt the controller recorded out of its
    reach, with an event saying so and who asked."""
    name, rule = "stop --force", RULES["stop"]
    targets, refused = guard.split(name, targets)
    chosen = [i for i in targets if i.state in rule.allowed]
    refused += [(i.id, rule.refusal(name, i.state)) for i in targets if i not in chosen]
    chosen, out_of_reach = split(store, store.lease(), chosen)
    done = store.transition(
        [i.id for i in chosen],
        rule.to,
        allowed=rule.allowed,
        at=at,
        actor=actor,
        origin="cli",
        reason=f"stop --force by {actor}",
        kind=FORCE_STOP,
        stop_requested=True,
    )
    raced = [
        (i.id, f"cannot {name}: its state changed meanwhile") for i in chosen if i.id not in done
    ]
    return Result(done, refused + out_of_reach + raced)
