"""The reconcile-and-schedule loop (DESIGN §7): the only writer of running attempts.

One controller drives a store at a time: it holds a lease in the store and renews it
every third of its duration; a second controller waits for it (and says so), and takes
it when it expires, or at once when the holder's process is gone from this host. Each
tick:

1. picks up what others changed (operators, apply) from the event log;
2. asks the backend which attempts ended, and records each (retrying if tries are left);
3. cancels attempts that were asked to stop or ran past their timeout;
4. lets the scheduler decide, records why the rest waits, completes dry-runs, and starts
   attempts: the attempts are written *before* their processes exist, so a crash can
   leave an attempt to settle but never a run nobody knows of (the ends, the last tick's
   handles, why the rest waits and the starts begun: one commit, all or nothing);
5. marks backfills that can make no more progress as finished, and alerts.

On start it adopts what a previous controller left: attempts whose processes still run
are followed, finished ones are recorded, ones that never started are put back, and a
stop an operator asked for meanwhile is carried out (operations are state in the store,
not only events). SIGTERM/SIGINT/SIGHUP end the loop after the current tick; running attempts
are left running for the next controller to adopt.

Under faults:
- every start is fenced: `begin_attempt` checks, in its transaction, that this
  controller still holds the lease in the epoch it took it in; a controller paused past
  its lease and replaced starts nothing more (the local backend's pid-file race settles
  an attempt caught between the check and the spawn), lets go of what it followed (the
  new holder adopted it) and waits for the lease again as a standby;
- a store that cannot be written (a full disk, an I/O error, a read-only file) does not
  stop the loop: outcomes and handles that could not be recorded are kept in memory and
  written when the store can be written again (their instances stay running meanwhile,
  so nothing starts twice), nothing new starts, and the loop retries with backoff, saying
  what is wrong once.

Here: loading, the tick, finishing backfills and the loop. The lease, waiting and the
signals are in `lease.py`; stopping attempts (a stop, a timeout) in `stopping.py`;
starting, following and recording them in `attempts.py` (`AttemptRunner`), a retry's delay
in `retries.py`; adopting a previous controller's attempts in `adoption.py` (`Adoption`);
`Controller` is all of them.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from backfill_ctl.core.records import WAITING
from backfill_ctl.runtime import alerts
from backfill_ctl.runtime.adoption import Adoption
from backfill_ctl.runtime.lease import waitable
from backfill_ctl.runtime.retries import RetryWaits
from backfill_ctl.runtime.scheduler import Scheduler
from backfill_ctl.state import LeaseLost, StateError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from backfill_ctl.backends import Backend, Handle, Outcome
    from backfill_ctl.core.records import BackfillRecord, EventRecord, InstanceRecord, Lease
    from backfill_ctl.runtime.attempts import Running
    from backfill_ctl.spec.model import Smtp
    from backfill_ctl.state import RunStore

LEASE_TTL = 30.0
DEFAULT_CAPACITY = 4  # the resource group "default", for nodes that name none


@dataclass
class Tick:
    """What one tick did: attempts started, ended, running; backfills finished."""

    started: int = 0
    ended: int = 0
    running: int = 0
    finished: tuple[str, ...] = ()
    seconds: float = 0.0  # how long the tick took (wall, monotonic)
    more: bool = False  # something may be ready at once that this tick did not start


class Controller(Adoption):
    def __init__(
        self,
        store: RunStore,
        backend: Backend,
        *,
        actor: str = "controller",
        clock: Callable[[], float] = time.time,
        timer: Callable[[], float] = time.monotonic,  # what timeouts are measured on
        say: Callable[[str], None] = lambda text: None,
        smtp: Smtp | None = None,
        root: str | None = None,
        reconcile: Callable[[], None] | None = None,
        lease_ttl: float = LEASE_TTL,
        beat: Callable[[str, str], None] = lambda state, detail: None,
    ) -> None:
        self.store = store
        self.backend = backend
        self.actor = actor
        self.clock, self.timer = clock, timer
        self.say = say
        self.smtp, self.root = smtp, root  # alert commands run in the spec root
        self.reconcile = reconcile
        self.origin = f"controller:{os.uname().nodename}:{os.getpid()}:{os.urandom(4).hex()}"
        self.scheduler = Scheduler({}, DEFAULT_CAPACITY)
        self.running: dict[str, Running] = {}
        self.stopping = False
        self.lost = False  # the lease was lost: back to standby after this tick
        self._watermark = 0
        self._renewed = 0.0
        self._held_until, self._held_for = 0.0, ""  # (timer) the backend said "not now"
        self.retry_waits = RetryWaits(timer)  # a retry's delay, on the timer
        self.lease_ttl = lease_ttl
        self.epoch = 0  # of the lease while we hold it: fences every start
        self.held_by: Lease | None = None  # another's lease, when acquire found one
        # Known but not yet in the store (it could not be written): kept until it is.
        self._outcomes: dict[str, tuple[Running, Outcome]] = {}
        self._handles: dict[str, tuple[int, Handle, str | None]] = {}
        self._store_retry_at, self._store_backoff, self._store_problem = 0.0, 0.0, ""
        # Attempts begun but not recorded as started, which the backend could not tell
        # of yet (`_adopt`): instance -> attempt number.
        self._unsettled: dict[str, int] = {}
        self._more = False  # the store said otherwise of an end (`_reread`): decide again
        # What a health endpoint and /metrics read: told at each tick and while waiting.
        self.beat = beat  # (state: active | degraded | standby | store, detail)
        self.started_total = 0
        self.ended_by: Counter[str] = Counter()  # recorded ends, by outcome
        self.queued: dict[str, int] = {}  # by resource group, at the last decision

    # -- loading and adopting ------------------------------------------------------------

    def load(self, *, wait: bool = False, poll: float = 1.0) -> None:
        """Everything active, and the attempts a previous controller left behind; with
        `wait`, a store that cannot be written yet (a full disk) is waited for."""
        while True:
            try:
                self._load()
                return
            except StateError as exc:
                if not wait or not waitable(exc):
                    raise
                with self._signals():
                    self._wait_for_store(exc, poll)
                if self.stopping:  # a signal while waiting: the loop will not run
                    return

    def _load(self) -> None:
        self._watermark = self.store.last_event_id()
        self._capacities()
        active = [b for b in self.store.backfills() if b.finished_at is None]
        self.scheduler.load(active, self.store.task_blocks([b.name for b in active]))
        for attempt in self.store.attempts(states=("starting", "running")):
            self._adopt(attempt)

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
        began = time.monotonic()
        tick = self._tick_or_follow()
        tick.seconds = time.monotonic() - began
        if self._store_problem:
            self.beat("degraded", self._store_problem)
        elif not self.stopping:
            self.beat("active", "")
        return tick

    def _tick_or_follow(self) -> Tick:
        now = self.clock()
        try:
            if time.monotonic() < self._store_retry_at:
                return Tick(ended=self._follow_only(), running=len(self.running))
            tick = self._tick(now)
        except LeaseLost as exc:
            self.say(f"{exc}: starting nothing more; back to standby")
            self.lost = True
            self.beat("standby", str(exc))
            return Tick(running=len(self.running))
        except StateError as exc:
            self._store_failed(exc)
            return Tick(ended=self._follow_only(), running=len(self.running))
        if self._store_problem:
            self.say("the state store can be written again: carrying on")
            self._store_problem, self._store_backoff = "", 0.0
        return tick

    def _tick(self, now: float) -> Tick:
        self._renew_if_due()
        if self.reconcile is not None:
            self.reconcile()
        self._sync()
        if self._unsettled:
            self._settle_later()
        ended = self._poll(record=False)
        self._requeue_unstarted()
        pending = self._pending()
        self._foresee(pending)  # what these ends make ready starts in this tick
        self._enforce()
        self.retry_waits.hold(self.scheduler, self.store, now)
        decision = self.scheduler.decide(now)
        self.queued = decision.queued
        self._dry_runs(decision.dry_runs, now)
        starts = decision.start if self.timer() >= self._held_until else []
        at = self.clock()  # (not `now`: after the ends' time, which a retry must follow)
        writes = bool(starts) or self._due(pending)
        with self.store.batch() if writes else contextlib.nullcontext():
            # The ends and the last tick's handles, why the rest waits, the starts
            # begun: one commit, all or nothing (no start is stored without the ends it
            # follows; none of it, and the ends are written again next time).
            won = self._write_pending(pending) if writes else None
            self.store.set_waiting(decision.waiting, at=at, actor=self.actor, origin=self.origin)
            begun = self._begin(starts, at)
        if won is not None:
            self._pending_written(pending, won)
        started = self._start_begun(starts, begun, at)
        self.started_total += started
        finished = self._finish(now)
        # Ends were told to the scheduler before it decided: what they made ready was
        # started. Dry runs, and ends another controller recorded first, were not.
        more, self._more = self._more or bool(decision.dry_runs), False
        return Tick(started, ended, len(self.running), tuple(finished), more=more)

    def _news(self) -> list[EventRecord]:
        """The events others wrote since the last tick (the watermark moves past our own
        too: `StateStore.news`)."""
        news, self._watermark = self.store.news(self._watermark, self.origin)
        return news

    def _sync(self) -> None:
        """Apply what operators and apply changed since the last tick."""
        events = self._news()
        if not events:
            return
        if any(e.kind == "applied" for e in events):
            self._capacities()
        reloaded = {e.backfill for e in events if e.backfill and e.instance is None}
        for name in reloaded:  # applied, stopped, deleted, suspended ...: read it whole
            self._load_backfill(name)
        # What the store says of each instance an event names, and of every running one
        # of a backfill read whole: a stop is state (stop_requested), whatever the batch.
        ids = {e.instance for e in events if e.instance} | {
            i for i, r in self.running.items() if r.backfill in reloaded
        }
        for record in self.store.instances(ids=ids):
            self._sync_instance(record, events, reloaded)

    def _sync_instance(
        self, record: InstanceRecord, events: Sequence[EventRecord], reloaded: set[str]
    ) -> None:
        """What the store says of one instance an event named (`reloaded`: the backfills
        read whole, to which one whose backfill was not loaded yet is added)."""
        if record.backfill not in self.scheduler.gates:
            self._load_backfill(record.backfill)
            reloaded.add(record.backfill)
            return
        run = self.running.get(record.id)
        if run is not None and record.stop_requested and run.cancelled is None:
            self._stop_asked(record.id, run, events)
        if run is None and record.backfill not in reloaded:
            self.scheduler.upsert(record)

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
        payload = alerts.event(record, outcome, counts, now)
        failures = alerts.notify(record, payload, self.smtp, self.root)
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
        tick = Tick()
        with self._signals():
            while not self.stopping:
                tick = self.tick()
                if on_tick is not None:
                    on_tick(tick)
                if once or (until is not None and until(tick)):
                    break
                if self.lost and not self._rejoin(poll=min(1.0, interval)):
                    break
                if self._again(tick):
                    continue
                if self.running:  # until an attempt may have ended, or ends are due
                    self.backend.wait(min(interval, 0.5, self._unwritten_for()))
                else:
                    self._rest(interval)
        with contextlib.suppress(StateError):  # the handles of the last tick's starts
            self._record_pending()
        return tick

    def _again(self, tick: Tick) -> bool:
        """Tick again at once, not wait for an attempt to end? If something may be ready
        that the tick did not start, an outcome is to be written, or something moved and
        nothing runs to wake the wait (a tick that started attempts waits for them)."""
        moved = tick.started or tick.ended
        unwritten = self._outcomes and self._unwritten_since is None  # (not kept: `_due`)
        return tick.more or bool(unwritten) or bool(moved and not self.running)

    def _forget(self) -> None:
        """The lease was lost: what this controller followed is the new holder's now.
        Ends it knows but could not write yet are written if the store lets it (the
        first report of an end wins, so that is harmless); the rest is left to the
        backend's own record (status files, Jobs), which the new holder reads."""
        with contextlib.suppress(StateError):
            self._record_pending()
        self.lost = False
        self.running.clear()
        self._outcomes.clear()
        self._handles.clear()
        self._unsettled.clear()
        self.scheduler = Scheduler({}, DEFAULT_CAPACITY)
        self._store_problem, self._store_backoff, self._store_retry_at = "", 0.0, 0.0
