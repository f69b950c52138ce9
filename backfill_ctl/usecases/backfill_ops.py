"""Operations on a whole backfill: `stop`, `resume` and `delete backfill/NAME`.

- stop: the backfill starts nothing new until it is resumed or an instance of it is
  rerun (its status becomes stopped), and its running instances are stopped
  (operations.py's `stop`);
- resume: a stopped backfill is active again: the controller starts what waits in it
  (the instances the stop killed stay failed: rerun them). Refused when it is not
  stopped. Without it, a backfill stopped before any instance finished could never
  run again (rerun takes only finished instances; applying keeps it stopped);
- delete: refused while an instance runs, and when it is deleted already; its instances
  that have not started are cancelled (gc ages them from then), and it is marked
  deleted, in one transaction with those checks. Applying its spec again brings it back.
  A collected one may be deleted (gc then removes it; applying its spec runs it again).

A deleted or collected backfill is neither stopped nor resumed (a stop would list it
again as stopped, and a resume then run it): applying its spec brings it back.

Each needs the actor's permission on every node the backfill runs (access.py); without
an actor nothing is checked unless the backfill was applied under `requireActor`.

A refusal, for permission or because of the backfill as it stands (its status, a running
instance), is an `Outcome` with the reason, as an instance operation's is (the CLI exits
1 and names each); a UsageError (exit 2) is for what cannot be used at all: an unknown
backfill, no actor where one is required. Every backfill named is checked before any
changes. The caller passes the clock (`clock`, read once per change, as each change is
its own transaction) and the name events are recorded under (`by`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from backfill_ctl.core.records import NOT_STARTED
from backfill_ctl.errors import UsageError
from backfill_ctl.usecases.access import Guard
from backfill_ctl.usecases.operations import GONE, operate

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from backfill_ctl.core.records import BackfillRecord
    from backfill_ctl.state import OperationsStore


@dataclass(frozen=True)
class Outcome:
    """What a backfill operation did: refused (why), or done to `count` instances (the
    running ones stopping, or the waiting ones cancelled)."""

    name: str
    refused: str | None = None
    count: int = 0


def refusals(
    store: OperationsStore, guard: Guard, names: Sequence[str], operation: str = "stop"
) -> list[Outcome]:
    """The backfills of `names` the guard's actor may not stop (or resume: `operation`),
    or that cannot be as they stand, with why; all must exist."""
    records = [_record(store, name) for name in names]
    guard.require_actor(names)
    return [
        Outcome(r.name, why)
        for r in records
        if (why := guard.backfill_refusal(operation, r.name) or status_refusal(operation, r))
    ]


def status_refusal(operation: str, record: BackfillRecord) -> str | None:
    """Why `operation` (stop, resume, delete) does not apply to the backfill as it
    stands (delete: see also its running instances, `delete_backfill`)."""
    status = record.status
    if operation == "delete":
        return "cannot delete: it is deleted already" if status == "deleted" else None
    if operation == "resume" and status != "stopped":
        instead = GONE.get(status, "only a stopped backfill is resumed")
        return f"cannot resume: it is {status} ({instead})"
    if status in GONE:
        return f"cannot {operation}: it is {status} ({GONE[status]})"
    return None


def _record(store: OperationsStore, name: str) -> BackfillRecord:
    record = store.backfill(name)
    if record is None:
        raise UsageError(f"no backfill {name!r} in {store.path}")
    return record


def stop_backfill(
    store: OperationsStore, name: str, *, guard: Guard, by: str, clock: Callable[[], float]
) -> Outcome:
    """Stop backfill `name` (checked with `refusals` first) and its running instances."""
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
    """Make stopped backfill `name` active again (checked with `refusals(..., "resume")`
    first; refused still if it changed meanwhile)."""
    refused = status_refusal("resume", _record(store, name))
    if refused:
        return Outcome(name, refused=refused)
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
    the actor may not, it is deleted already or an instance runs, a UsageError when it
    is unknown. The checks and the changes are one transaction (a batch): no instance
    starts, and no other delete lands, between them; `count` is what was cancelled."""
    with store.batch():
        record = _record(store, name)
        guard = Guard(store, actor)
        guard.require_actor([name])
        denied = guard.backfill_refusal("delete", name) or status_refusal("delete", record)
        if denied:
            return Outcome(name, refused=denied)
        running = store.instances(backfill=name, states=["running"])
        if running:
            return Outcome(
                name,
                refused=f"cannot delete: it has {len(running)} running instance(s) (stop it "
                f"first: backfillctl stop backfill/{name})",
            )
        actor_, at = by(guard.actor), clock()
        waiting = [i.id for i in store.instances(backfill=name, states=NOT_STARTED)]
        cancelled = store.transition(
            waiting,
            "cancelled",
            allowed=NOT_STARTED,
            at=at,
            actor=actor_,
            origin="cli",
            reason=f"backfill deleted by {actor_}",
            kind="delete",
            finished_at=at,  # gc ages it from here
        )
        store.update_backfill(
            name,
            at=at,
            actor=actor_,
            origin="cli",
            event=f"deleted by {actor_}",
            status="deleted",
        )
    return Outcome(name, count=len(cancelled))
