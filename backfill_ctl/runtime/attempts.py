"""The controller's attempts: starting them (fenced by the lease), following them through
the backend, stopping them (a stop asked for, a timeout), and recording how they ended.

An attempt is written to the store *before* its process exists, so a crash can leave an
attempt to settle but never a run nobody knows of. What is known but cannot be written
yet (a full disk: a handle, an outcome) is kept in memory and written on the next try;
its instance stays running meanwhile, so nothing starts twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from backfill_ctl.backends import AttemptSpec, BackendError, Handle, NotStarted, Outcome
from backfill_ctl.runtime.stopping import Stopping, duration
from backfill_ctl.state.protocols import AttemptEnd
from backfill_ctl.usecases.attempt_logs import log_copy

if TYPE_CHECKING:
    from collections import Counter
    from collections.abc import Callable, Sequence

    from backfill_ctl.backends import Backend
    from backfill_ctl.core.records import InstanceRecord
    from backfill_ctl.runtime.retries import RetryWaits
    from backfill_ctl.runtime.scheduler import Scheduler
    from backfill_ctl.state.protocols import Begun


class Pending(NamedTuple):
    """What a tick writes of its attempts: the handles of the last tick's starts and the
    ends learnt, at `at`."""

    handles: list[tuple[str, tuple[int, Handle, str | None]]]
    ends: list[AttemptEnd]
    at: float


@dataclass
class Running:
    """An attempt this controller follows (started or adopted), until its end is stored."""

    backfill: str
    number: int
    handle: Handle
    deadline: float | None  # when its timeout is up, on the controller's timer (`_deadline`)
    timeout: float | None
    tries_left: int
    cancelled: str | None = None  # why it is being stopped
    refused: str | None = None  # a stop the backend cannot carry out from here (said once)
    retry: bool = True  # a stop by an operator is final; a timeout may be retried
    retry_delay: float = 0.0  # seconds before the retry may start (run.retryDelay)
    log: str | None = None  # where the backend writes its log


# Ends that make nothing ready wait this long at most for the next end of their
# backfill, to share its commit (`AttemptRunner._due`): a join's first upstream waits for
# the other, and what they make ready starts one commit sooner.
SHARE_COMMIT = 0.02


class AttemptRunner(Stopping):
    """Attempts, for `Controller` (which sets these attributes)."""

    backend: Backend
    scheduler: Scheduler
    actor: str
    clock: Callable[[], float]
    running: dict[str, Running]
    _held_until: float  # the backend said "not now": nothing starts before this (timer)
    _held_for: str  # what the backend said, said once
    retry_waits: RetryWaits  # a retry's delay, measured on the timer
    # Known but not yet in the store (it could not be written): kept until it is.
    _outcomes: dict[str, tuple[Running, Outcome]]
    _handles: dict[str, tuple[int, Handle, str | None]]
    ended_by: Counter[str]  # recorded ends, by outcome (for /metrics)
    _more: bool  # the scheduler was told something the last decision did not know
    stopping: bool
    _unwritten_since: float | None = None  # (monotonic) since when ends are kept: `_due`
    _unstarted_said: str = ""  # why attempts did not start, said (`_requeue_unstarted`)

    def _settle_unstarted(self, record: InstanceRecord, number: int) -> None:
        self._requeue(
            record.id, number, record.tries_left, "the controller stopped before it started"
        )

    def _requeue(self, instance: str, number: int, tries_left: int, message: str) -> None:
        """An attempt that never ran: recorded as lost, its instance pending again with
        the try it took given back."""
        at = self.clock()
        if not self.store.end_attempt(
            instance,
            number,
            attempt_state="lost",
            exit_code=None,
            message=message,
            instance_state="pending",
            at=at,
            actor=self.actor,
            origin=self.origin,
        ):
            self._reread(instance)
            return
        self.store.transition(
            [instance],
            "pending",
            allowed=["pending"],
            at=at,
            actor=self.actor,
            origin=self.origin,
            kind="requeued",
            tries_left=tries_left + 1,
        )
        self.scheduler.set_state(instance, "pending")

    def _poll(self, *, record: bool = True) -> int:
        """Ask the backend which attempts ended; keep each outcome, then record them."""
        handles = {
            (i, r.number): r.handle for i, r in self.running.items() if i not in self._outcomes
        }
        if not handles:
            return 0
        ended = self.backend.poll(handles)
        for (instance, _), outcome in ended.items():
            self._outcomes[instance] = (self.running[instance], outcome)
        if record:
            self._record_pending()
        return len(ended)

    def _record_pending(self) -> None:
        """Write what is known but not yet stored, handles and ends, in one transaction
        (one commit per tick, not one per attempt); if it fails, all of it stays for the
        next try. Attempts that never ran are put back one by one (rare)."""
        self._requeue_unstarted()
        pending = self._pending()
        if pending.handles or pending.ends:
            with self.store.batch():
                won = self._write_pending(pending)
            self._pending_written(pending, won)

    def _pending(self) -> Pending:
        """The handles and ends known but not stored yet, as they are to be written: the
        handle of an attempt that also ended, with its end."""
        ends, with_end = [], set()
        for instance, (run, outcome) in self._outcomes.items():
            if not outcome.started:
                continue
            end = self._end_of(instance, run, outcome)
            number, handle, log = self._handles.get(instance, (None, {}, None))
            if number == end.number:  # started and ended since the last write
                end = end._replace(handle=(handle, log))
                with_end.add(instance)
            ends.append(end)
        alone = [(i, h) for i, h in self._handles.items() if i not in with_end]
        return Pending(alone, ends, self.clock())

    def _write_pending(self, pending: Pending) -> list[bool]:
        """Write `pending` (in the caller's transaction); for each end, whether this
        report was the first."""
        self.store.set_attempt_handles([(i, *rest) for i, rest in pending.handles])
        return self.store.end_attempts(
            pending.ends, at=pending.at, actor=self.actor, origin=self.origin
        )

    def _pending_written(self, pending: Pending, won: Sequence[bool]) -> None:
        """`pending` is in the store: forget it, and the scheduler follows."""
        self._unwritten_since = None
        for instance, _ in pending.handles:
            del self._handles[instance]
        for end, first in zip(pending.ends, won, strict=True):
            if end.handle is not None:
                del self._handles[end.instance]
            self._recorded(end, first)

    def _due(self, pending: Pending) -> bool:
        """Is `pending` (ends and handles, with no start in this tick) to be written now?
        Its ends are kept back while each of their backfills has an attempt still
        running, for SHARE_COMMIT s at most: that attempt's end comes to share the commit
        (the store shows these ends that much later; their backfill cannot finish before
        they are written). Handles alone are written at once, as a controller that
        follows needs them."""
        if not pending.ends:  # (none kept: all written, or forgotten with the lease)
            self._unwritten_since = None
            return bool(pending.handles)
        now = time.monotonic()
        if self._unwritten_since is None:
            self._unwritten_since = now
        if self.stopping or now - self._unwritten_since >= SHARE_COMMIT:
            return True
        running = {r.backfill for i, r in self.running.items() if i not in self._outcomes}
        return any(self.running[e.instance].backfill not in running for e in pending.ends)

    def _unwritten_for(self) -> float:
        """How long the ends kept back (`_due`) may wait yet; else for ever."""
        if self._unwritten_since is None:
            return float("inf")
        return max(0.0, self._unwritten_since + SHARE_COMMIT - time.monotonic())

    def _foresee(self, pending: Pending) -> None:
        """The scheduler told of `pending`'s ends before they are written, so that what
        they make ready is started in the same transaction (`Controller._tick`); if the
        write fails they stay pending, and are told again, as often, until written."""
        for end in pending.ends:
            self.scheduler.set_state(
                end.instance, end.instance_state, end.message, not_before=end.not_before
            )

    def _requeue_unstarted(self) -> None:
        for instance, (run, outcome) in list(self._outcomes.items()):  # never ran
            if outcome.started:
                continue
            why = outcome.message or ""
            self._requeue(instance, run.number, run.tries_left, why)
            self._held_until = self.timer() + 5.0  # a full disk does not pass at once
            self._forget_attempt(instance)
            if why != self._unstarted_said:  # once, until an attempt has run again
                self._unstarted_said = why
                self.say(f"attempt {run.number} of {instance}: {why}; nothing starts for 5s")

    def _forget_attempt(self, instance: str) -> None:
        del self._outcomes[instance]
        self.running.pop(instance, None)

    def _end_of(self, instance: str, run: Running, outcome: Outcome) -> AttemptEnd:
        """How an attempt that ran ended, and what its instance becomes."""
        message = run.cancelled or outcome.message
        not_before = None
        if outcome.state == "succeeded":
            state = "succeeded"
        elif run.retry and run.tries_left > 0:
            state, message = "pending", f"retrying after attempt {run.number}: {message}"
            if run.retry_delay > 0:
                not_before = self.clock() + run.retry_delay
                self.retry_waits.began(instance, not_before, run.retry_delay)
        else:
            state = "failed"
        log = log_copy(self.store, run.log)  # a shared store keeps the log's end
        return AttemptEnd(
            instance, run.number, outcome.state, outcome.exit_code, message, state, not_before, log
        )

    def _recorded(self, end: AttemptEnd, first: bool) -> None:
        """An end is in the store: the scheduler follows (`first`: this report won)."""
        self._forget_attempt(end.instance)
        self._unstarted_said = ""  # an attempt ran: a start that fails again is said
        if not first:
            self._reread(end.instance)
            return
        self.ended_by[end.attempt_state] += 1
        self.scheduler.set_state(
            end.instance, end.instance_state, end.message, not_before=end.not_before
        )

    def _reread(self, instance: str) -> None:
        """Another controller recorded how the attempt ended (it held the lease while
        this one could not write): take the store's word for the instance."""
        for record in self.store.instances(ids=[instance]):
            self.scheduler.upsert(record)
        self._more = True

    def _follow_only(self) -> int:
        """While the store cannot be written: follow and stop running attempts, keeping
        their outcomes in memory; start nothing. How many ended."""
        ended = self._poll(record=False)
        self._enforce()
        return ended

    def _begin(self, starts: Sequence[str], now: float) -> dict[str, Begun]:
        """Begin the attempts of `starts` in one transaction, fenced: each one begun, with
        what starting it needs of its instance."""
        if not starts:
            return {}
        return self.store.begin_attempts(
            starts,
            self.backend.name,
            at=now,
            actor=self.actor,
            origin=self.origin,
            fence=self.fence,
            handle=self.backend.unstarted_handle(),
        )

    def _start_begun(self, starts: Sequence[str], begun: dict[str, Begun], now: float) -> int:
        """Start the attempts begun, in the scheduler's order; how many started. Their
        handles are written with the next tick's ends (`_record_pending`): until then an
        attempt is `starting`, which a controller that adopts it settles (`recover`)."""
        changed = [i for i in starts if i not in begun]  # by an operator meanwhile
        for record in self.store.instances(ids=changed) if changed else ():
            self.scheduler.upsert(record)
        started, refused = 0, None
        for instance in (i for i in starts if i in begun):
            if refused is None:
                try:
                    started += self._start(begun[instance], now)
                    continue
                except NotStarted as exc:  # the backend has no room: the rest waits too
                    refused = exc
            self._not_started(instance, begun[instance].number, refused, now)
        return started

    def _start(self, begun: Begun, now: float) -> bool:
        """Start the attempt `begun` (its instance is running); NotStarted when the backend
        has no room for it now."""
        instance, number, run = begun.id, begun.number, begun.run
        self.scheduler.set_state(instance, "running")
        try:
            handle, log = self.backend.start(self._spec(begun, number, now))
        except NotStarted:
            raise  # (a BackendError too) for `_start_all`, which holds the rest back
        except BackendError as exc:
            failed = self.running[instance] = Running(
                begun.backfill,
                number,
                {},
                None,
                run.timeout,
                begun.tries_left,
                retry_delay=run.retry_delay,
            )
            self._outcomes[instance] = (failed, Outcome("failed", None, str(exc)))
            return False
        self._held_for = ""
        self.running[instance] = Running(
            begun.backfill,
            number,
            handle,
            self._deadline(run.timeout),
            run.timeout,
            begun.tries_left,
            retry_delay=run.retry_delay,
            log=log,
        )
        self._handles[instance] = (number, handle, log)  # kept until it is written
        return True

    def _not_started(self, instance: str, number: int, exc: NotStarted, now: float) -> None:
        """The backend refused to start the attempt for now: it is abandoned, its instance
        waits, and nothing starts before the backend's `retry_after`."""
        self.store.abandon_attempt(
            instance,
            number,
            state=exc.state,
            reason=str(exc),
            at=now,
            actor=self.actor,
            origin=self.origin,
        )
        self.scheduler.set_state(instance, exc.state, str(exc))
        self._held_until = self.timer() + exc.retry_after
        if str(exc) != self._held_for:  # say it once, not every retry
            self._held_for = str(exc)
            self.say(
                f"the backend started nothing: {exc} (trying again in {duration(exc.retry_after)})"
            )

    def _spec(
        self, i: InstanceRecord | Begun, number: int, now: float | None = None
    ) -> AttemptSpec:
        # `now`: when it starts, on our clock (`$gmtdate` is its date)
        gate = self.scheduler.gates.get(i.backfill)
        digest = gate.record.digest if gate else ""
        return AttemptSpec(
            i.id, number, i.backfill, i.node, i.bizdate, i.cyctime, i.run, i.timezone, digest, now
        )
