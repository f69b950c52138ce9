"""The reconcile-and-schedule loop (DESIGN §7): the only writer of running attempts.

One controller drives a store at a time: it holds a lease in the store and renews it
every tick; a second controller waits for it (and says so), and takes it over at once
when the holder's process is gone from this host. Each tick:

1. picks up what others changed (operators, apply) from the event log;
2. asks the backend which attempts ended, and records each (retrying if tries are left);
3. cancels attempts that were asked to stop or ran past their timeout;
4. lets the scheduler decide, records why the rest waits, completes dry-runs, and starts
   attempts: the attempt is written *before* the process exists, so a crash can leave
   an attempt to settle but never a run nobody knows of;
5. marks backfills that can make no more progress as finished, and alerts.

On start it adopts what a previous controller left: attempts whose processes still run
are followed, finished ones are recorded, ones that never started are put back.
SIGTERM/SIGINT end the loop after the current tick; running attempts are left running
for the next controller to adopt.
"""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from backfill_ctl import alerts
from backfill_ctl.backends import AttemptSpec, BackendError, Handle, NotStarted, Outcome
from backfill_ctl.scheduler import Scheduler
from backfill_ctl.state.records import WAITING

if TYPE_CHECKING:
    from collections.abc import Callable

    from backfill_ctl.backends import Backend
    from backfill_ctl.spec.model import Smtp
    from backfill_ctl.state import StateStore
    from backfill_ctl.state.records import BackfillRecord, InstanceRecord, Lease

LEASE_TTL = 30.0
DEFAULT_CAPACITY = 4  # the resource group "default", for nodes that name none


@dataclass
class Running:
    backfill: str
    number: int
    handle: Handle
    started: float
    timeout: float | None
    tries_left: int
    cancelled: str | None = None  # why it is being stopped
    retry: bool = True  # a stop by an operator is final; a timeout may be retried


@dataclass
class Tick:
    started: int = 0
    ended: int = 0
    running: int = 0
    finished: tuple[str, ...] = ()


class Controller:
    def __init__(
        self,
        store: StateStore,
        backend: Backend,
        *,
        actor: str = "controller",
        clock: Callable[[], float] = time.time,
        say: Callable[[str], None] = lambda text: None,
        smtp: Smtp | None = None,
        reconcile: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.backend = backend
        self.actor = actor
        self.clock = clock
        self.say = say
        self.smtp = smtp
        self.reconcile = reconcile
        self.origin = f"controller:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.scheduler = Scheduler({}, DEFAULT_CAPACITY)
        self.running: dict[str, Running] = {}
        self.stopping = False
        self._watermark = 0
        self._renewed = 0.0
        self._held_until = 0.0  # the backend said "not now": nothing starts before this
        self._held_for = ""

    # -- the lease -----------------------------------------------------------------------

    def acquire(self, *, wait: bool = True, poll: float = 1.0) -> bool:
        """Take the lease; with `wait`, wait for it (saying so once) until stopping."""
        said = False
        while not self.stopping:
            lease = self._try_lease()
            if lease.holder == self.origin:
                return True
            if not wait:
                return False
            if not said:
                left = max(0.0, lease.expires_at - self.clock())
                self.say(
                    f"waiting for the lease: a controller (pid {lease.pid} on {lease.host})"
                    f" holds it for {left:.0f} s more unless it renews it"
                )
                said = True
            time.sleep(poll)
        return False

    def _try_lease(self) -> Lease:
        host, pid = socket.gethostname(), os.getpid()
        lease = self.store.acquire_lease(
            self.origin, pid=pid, host=host, at=self.clock(), ttl=LEASE_TTL
        )
        if lease.holder != self.origin and lease.host == host and not _alive(lease.pid):
            self.say(f"taking over the lease of a controller that is gone (pid {lease.pid})")
            self.store.take_over_lease(lease.holder)
            lease = self.store.acquire_lease(
                self.origin, pid=pid, host=host, at=self.clock(), ttl=LEASE_TTL
            )
        self._renewed = self.clock()
        return lease

    def release(self) -> None:
        self.store.release_lease(self.origin)

    # -- loading and adopting ------------------------------------------------------------

    def load(self) -> None:
        """Everything active, and the attempts a previous controller left behind."""
        self._watermark = self.store.last_event_id()
        self._capacities()
        active = [b for b in self.store.backfills() if b.finished_at is None]
        self.scheduler.load(active, self.store.task_rows([b.name for b in active]))
        for attempt in self.store.attempts(states=("starting", "running")):
            found = self.store.instances(ids=[attempt.instance])
            if not found:
                continue
            record = found[0]
            if record.backfill not in self.scheduler.gates:
                self._load_backfill(record.backfill)
            handle = attempt.handle or self.backend.recover(self._spec(record, attempt.number))
            if not handle:
                self._settle_unstarted(record, attempt.number)
                continue
            if not attempt.handle:
                self.store.set_attempt_handle(record.id, attempt.number, handle, attempt.log)
            self.running[record.id] = Running(
                record.backfill,
                attempt.number,
                handle,
                attempt.started_at,
                record.run.timeout,
                record.tries_left,
            )
            self.say(f"adopted attempt {attempt.number} of {record.id} ({record.node})")

    def _settle_unstarted(self, record: InstanceRecord, number: int) -> None:
        at = self.clock()
        self.store.end_attempt(
            record.id,
            number,
            attempt_state="lost",
            exit_code=None,
            message="the controller stopped before it started",
            instance_state="pending",
            at=at,
            actor=self.actor,
            origin=self.origin,
        )
        self.store.transition(
            [record.id],
            "pending",
            allowed=["pending"],
            at=at,
            actor=self.actor,
            origin=self.origin,
            kind="requeued",
            tries_left=record.tries_left + 1,
        )
        self.scheduler.set_state(record.id, "pending")

    def _capacities(self) -> None:
        self.scheduler.capacity = {n: c for n, (_, c) in self.store.resource_groups().items()}

    def _load_backfill(self, name: str) -> None:
        record = self.store.backfill(name)
        if record is None:
            return
        self.scheduler.set_backfill(record)
        for row in self.store.task_rows([name]):
            self.scheduler.upsert(row)

    # -- one tick ------------------------------------------------------------------------

    def tick(self) -> Tick:
        now = self.clock()
        if now - self._renewed > LEASE_TTL / 3:
            lease = self._try_lease()
            if lease.holder != self.origin:
                self.say(f"lost the lease to pid {lease.pid} on {lease.host}: stopping")
                self.stopping = True
                return Tick(running=len(self.running))
        if self.reconcile is not None:
            self.reconcile()
        self._sync()
        ended = self._poll()
        self._enforce(now)
        decision = self.scheduler.decide(now)
        self.store.set_waiting(decision.waiting, at=now, actor=self.actor, origin=self.origin)
        self._dry_runs(decision.dry_runs, now)
        starts = decision.start if now >= self._held_until else []
        records = {r.id: r for r in self.store.instances(ids=starts)} if starts else {}
        started = 0
        for instance in starts:
            if self._held_until > now:  # the backend refused one: leave the rest waiting
                break
            started += self._start(instance, records.get(instance))
        finished = self._finish(now)
        return Tick(started, ended, len(self.running), tuple(finished))

    def _sync(self) -> None:
        """Apply what operators and apply changed since the last tick."""
        events = self.store.events(after=self._watermark, not_from=self.origin)
        self._watermark = max([self._watermark, *(e.id for e in events)])
        if not events:
            return
        if any(e.kind == "applied" for e in events):
            self._capacities()
        reloaded = {e.backfill for e in events if e.backfill and e.instance is None}
        for name in reloaded:  # applied, stopped, deleted, suspended ...: read it whole
            self._load_backfill(name)
        ids = {e.instance for e in events if e.instance and e.backfill not in reloaded}
        for record in self.store.instances(ids=ids):
            if record.backfill not in self.scheduler.gates:
                self._load_backfill(record.backfill)
                reloaded.add(record.backfill)
                continue
            if record.backfill in reloaded:
                continue
            run = self.running.get(record.id)
            if run is not None and record.stop_requested and run.cancelled is None:
                actor = next(
                    (e.actor for e in reversed(events) if e.instance == record.id), "someone"
                )
                run.cancelled, run.retry = f"stopped by {actor}", False
                self.backend.cancel((record.id, run.number), run.handle, run.cancelled)
            if run is None:
                self.scheduler.upsert(record)

    def _poll(self) -> int:
        if not self.running:
            return 0
        handles = {(i, r.number): r.handle for i, r in self.running.items()}
        for (instance, _), outcome in self.backend.poll(handles).items():
            self._ended(instance, outcome)
        return len(handles) - len(self.running)

    def _ended(self, instance: str, outcome: Outcome) -> None:
        run = self.running.pop(instance)
        message = run.cancelled or outcome.message
        if outcome.state == "succeeded":
            state = "succeeded"
        elif run.retry and run.tries_left > 0:
            state, message = "pending", f"retrying after attempt {run.number}: {message}"
        else:
            state = "failed"
        self.store.end_attempt(
            instance,
            run.number,
            attempt_state=outcome.state,
            exit_code=outcome.exit_code,
            message=message,
            instance_state=state,
            at=self.clock(),
            actor=self.actor,
            origin=self.origin,
        )
        self.scheduler.set_state(instance, state, message)

    def _enforce(self, now: float) -> None:
        for instance, run in self.running.items():
            if run.cancelled is None and run.timeout and now - run.started > run.timeout:
                run.cancelled = f"timed out after {_duration(run.timeout)}"
                self.backend.cancel((instance, run.number), run.handle, run.cancelled)

    def _dry_runs(self, ids: list[str], now: float) -> None:
        if not ids:
            return
        done = self.store.transition(
            ids,
            "succeeded",
            allowed=WAITING,
            at=now,
            actor=self.actor,
            origin=self.origin,
            kind="dry-run",
            reason="dry-run: nothing was executed",
            finished_at=now,
        )
        for instance in done:
            self.scheduler.set_state(instance, "succeeded", "dry-run: nothing was executed")

    def _start(self, instance: str, record: InstanceRecord | None) -> bool:
        now = self.clock()
        number = self.store.begin_attempt(
            instance, self.backend.name, at=now, actor=self.actor, origin=self.origin
        )
        if number is None or record is None:  # changed by an operator meanwhile
            for changed in self.store.instances(ids=[instance]):
                self.scheduler.upsert(changed)
            return False
        tries_left = record.tries_left - 1  # read before begin_attempt took one
        self.scheduler.set_state(instance, "running")
        try:
            handle, log = self.backend.start(self._spec(record, number))
        except NotStarted as exc:
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
            self._held_until = now + exc.retry_after
            if str(exc) != self._held_for:  # say it once, not every retry
                self._held_for = str(exc)
                self.say(
                    f"the backend started nothing: {exc} (trying again in "
                    f"{_duration(exc.retry_after)})"
                )
            return False
        except BackendError as exc:
            self.running[instance] = Running(
                record.backfill, number, {}, now, record.run.timeout, tries_left
            )
            self._ended(instance, Outcome("failed", None, str(exc)))
            return False
        self._held_for = ""
        self.store.set_attempt_handle(instance, number, handle, log)
        self.running[instance] = Running(
            record.backfill, number, handle, now, record.run.timeout, tries_left
        )
        return True

    def _spec(self, record: InstanceRecord, number: int) -> AttemptSpec:
        gate = self.scheduler.gates.get(record.backfill)
        return AttemptSpec(
            record.id,
            number,
            record.backfill,
            record.node,
            record.bizdate,
            record.cyctime,
            record.run,
            record.timezone,
            gate.record.digest if gate else "",
        )

    def _finish(self, now: float) -> list[str]:
        """Mark backfills that can make no more progress; alert; note reopened ones."""
        done = []
        for name, gate in self.scheduler.gates.items():
            record = gate.record
            if record.status != "active":
                continue
            if gate.finished and record.finished_at is None:
                outcome = "succeeded" if gate.succeeded else "failed"
                counts = {k: v for k, v in gate.counts.items() if v}
                notified = self._alert(record, outcome, counts, now)
                self.store.update_backfill(
                    name,
                    at=now,
                    actor=self.actor,
                    origin=self.origin,
                    event=f"finished: {outcome}",
                    finished_at=now,
                    outcome=outcome,
                    notified_at=notified,
                )
                gate.record = replace(record, finished_at=now, outcome=outcome)
                done.append(name)
            elif not gate.finished and record.finished_at is not None:  # a rerun reopened it
                self.store.update_backfill(
                    name,
                    at=now,
                    actor=self.actor,
                    origin=self.origin,
                    event="running again",
                    finished_at=None,
                    outcome=None,
                    notified_at=None,
                )
                gate.record = replace(record, finished_at=None, outcome=None)
        return done

    def _alert(
        self, record: BackfillRecord, outcome: str, counts: dict[str, int], now: float
    ) -> float | None:
        """Notify as `alerts.when` asks; the time it was done, or None."""
        if not record.notify or not alerts.wanted(record.alert_when, outcome):
            return None
        failures = alerts.notify(record, alerts.event(record, outcome, counts, now), self.smtp)
        for failure in failures:
            self.say(f"alert for {record.name} failed: {failure}")
            self.store.update_backfill(
                record.name,
                at=now,
                actor=self.actor,
                origin=self.origin,
                event=f"alert failed: {failure}",
            )
        return now

    # -- the loop ------------------------------------------------------------------------

    def run(
        self,
        *,
        interval: float = 2.0,
        once: bool = False,
        until: Callable[[Tick], bool] | None = None,
        on_tick: Callable[[Tick], None] | None = None,
    ) -> Tick:
        """Tick until stopped (a signal), `until` says so, or once."""
        previous = {s: signal.signal(s, self._stop) for s in (signal.SIGTERM, signal.SIGINT)}
        tick = Tick()
        try:
            while not self.stopping:
                tick = self.tick()
                if on_tick is not None:
                    on_tick(tick)
                if once or (until is not None and until(tick)):
                    break
                if tick.started or tick.ended:
                    continue  # something moved: more may be ready at once
                if self.running:
                    self.backend.wait(min(interval, 0.5))  # until an attempt may have ended
                else:
                    time.sleep(interval)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return tick

    def _stop(self, signum: int, frame: object) -> None:
        self.say(
            f"received {signal.Signals(signum).name}: stopping after this tick; running "
            "attempts stay running for the next controller"
        )
        self.stopping = True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _duration(seconds: float) -> str:
    s = int(seconds)
    return (
        f"{s // 3600}h{s % 3600 // 60:02d}m"
        if s >= 3600
        else (f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s")
    )
