"""Operations on a whole backfill: `stop`, `resume` and `delete backfill/NAME`.

- stop: the backfill starts nothing new until it is resumed or an instance of it is
  rerun (its status becomes stopped), and its running instances are stopped
  (operations.py's `stop`);
- resume: a stopped backfill is active again: the controller starts what waits in it
  (the instances the stop killed stay failed: rerun them). Refused when it is not
  stopped. Without it, a backfill stopped before any instance finished could never
  run again (rerun takes only finished instances; applying keeps it stopped);
- delete: refused while an instance runs; its instances that have not started are
  cancelled (gc ages them from then), and it is marked deleted. Applying its spec again
  brings it back.

Each needs the actor's permission on every node the backfill runs (access.py); without
an actor nothing is checked unless the backfill was applied under `requireActor`. The
caller passes the clock (`clock`, read once per change, as each change is its own
transaction) and the name events are recorded under (`by`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from backfill_ctl.core.records import NOT_STARTED
from backfill_ctl.errors import UsageError
from backfill_ctl.usecases.access import Guard
from backfill_ctl.usecases.operations import operate

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from backfill_ctl.state import OperationsStore


@dataclass(frozen=True)
class Outcome:
    """What a backfill operation did: refused (why), or done to `count` instances (the
    running ones stopping, or the waiting ones cancelled)."""

    name: str
    refused: str | None = None
    count: int = 0


def stop_refusals(
    store: OperationsStore, guard: Guard, names: Sequence[str], operation: str = "stop"
) -> list[Outcome]:
    """The backfills of `names` the guard's actor may not stop (or resume: `operation`);
    all must exist."""
    for name in names:
        if store.backfill(name) is None:
            raise UsageError(f"no backfill {name!r} in {store.path}")
    guard.require_actor(names)
    return [Outcome(n, why) for n in names if (why := guard.backfill_refusal(operation, n))]


def stop_backfill(
    store: OperationsStore, name: str, *, guard: Guard, by: str, clock: Callable[[], float]
) -> Outcome:
    """Stop backfill `name` (checked with `stop_refusals` first) and its running instances."""
    store.update_backfill(
        name, at=clock(), actor=by, origin="cli", event=f"stopped by {by}", status="stopped"
    )
    running = store.instances(backfill=name, states=["running"])
    if running:
        operate(store, "stop", running, actor=by, at=clock(), guard=guard)
    return Outcome(name, count=len(running))


def resume_backfill(
    store: OperationsStore, name: str, *, by: str, clock: Callable[[], float]
) -> Outcome:
    """Make stopped backfill `name` active again (checked with `stop_refusals(...,
    "resume")` first); a UsageError when it is not stopped."""
    record = store.backfill(name)
    if record is None:
        raise UsageError(f"no backfill {name!r} in {store.path}")
    if record.status != "stopped":
        hints = {
            "deleted": "apply its spec again to bring it back",
            "collected": "apply its spec again to run it again",
        }
        raise UsageError(
            f"backfill/{name} is not stopped (it is {record.status}): nothing to resume",
            hint=hints.get(record.status, "only a stopped backfill is resumed"),
        )
    store.update_backfill(
        name, at=clock(), actor=by, origin="cli", event=f"resumed by {by}", status="active"
    )
    return Outcome(name)


def delete_backfill(
    store: OperationsStore,
    name: str,
    *,
    actor: str | None,
    by: Callable[[str | None], str],
    clock: Callable[[], float],
) -> Outcome:
    """Delete backfill `name` as `actor`, recorded as done by `by(actor)`: refused when
    the actor may not (exit 1), a UsageError when it is unknown or an instance runs."""
    if store.backfill(name) is None:
        raise UsageError(f"no backfill {name!r} in {store.path}")
    guard = Guard(store, actor)
    guard.require_actor([name])
    denied = guard.backfill_refusal("delete", name)
    if denied:
        return Outcome(name, refused=denied)
    running = store.instances(backfill=name, states=["running"])
    if running:
        raise UsageError(
            f"backfill/{name} has {len(running)} running instance(s)",
            hint=f"stop it first: backfillctl stop backfill/{name}",
        )
    actor_ = by(guard.actor)
    waiting = [i.id for i in store.instances(backfill=name, states=NOT_STARTED)]
    store.transition(
        waiting,
        "cancelled",
        allowed=NOT_STARTED,
        at=clock(),
        actor=actor_,
        origin="cli",
        reason=f"backfill deleted by {actor_}",
        kind="delete",
        finished_at=clock(),  # gc ages it from here
    )
    store.update_backfill(
        name,
        at=clock(),
        actor=actor_,
        origin="cli",
        event=f"deleted by {actor_}",
        status="deleted",
    )
    return Outcome(name, count=len(waiting))
