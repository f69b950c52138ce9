"""What starts now, and why the rest waits (DESIGN §7). Pure: `now` is an argument.

The scheduler keeps the instances of the active backfills in memory and updates them
incrementally, so a tick costs what is near the front, not what is stored:

- `unmet`: how many of an instance's dependencies have not succeeded, kept up to date
  as they change state (a cancelled dependency no longer holds anyone back);
- the date barrier: per (backfill, group), the lowest date sequence that still has an
  instance not succeeded; only that date's instances may start;
- `eligible`: the waiting instances whose dependencies and barrier are met (or that a
  rerun told to ignore them). Only these are looked at by `decide()`.

`decide()` then asks `core.gates.gate()` what else holds each eligible instance back (a
closed backfill, its scheduled time, a retry's delay, the execution window), gives the
free slots of each resource group by priority, then business date in the backfill's
order, then scheduled time (slots go first to the backfill that holds the fewest in that
group, so no backfill starves another; dry-run instances need no slot), and returns the
typed blocker of every instance that waits differently, to be stored with it. An
instance that is not eligible is stored as plain pending, with no blocker: see
`core.gates.held()` for why.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, NamedTuple

from backfill_ctl.core.gates import DONE, BackfillGate, Blocker, Clock, gate, resources
from backfill_ctl.core.records import WAITING, TaskRow

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from backfill_ctl.core.records import BackfillRecord, InstanceRecord

_SATISFIED = DONE  # lets dependents and the barrier go on
Waiting = tuple[str, str, "str | None", "dict[str, Any] | None"]  # id, state, reason, blocker


@dataclass(slots=True)
class Task:
    id: str
    backfill: str
    group: int
    sequence: int
    priority: int
    rank: int  # business date, signed by the backfill's order: smaller runs first
    cyctime: float
    timezone: str
    resource_group: str
    dry_run: bool
    deps: tuple[str, ...]
    ignore_deps: bool
    state: str
    reason: str | None
    unmet: int = 0
    not_before: float | None = None  # a retry waits until then
    blocker: Blocker | None = None  # what the scheduler last decided holds it back


@dataclass(slots=True)
class Gate:
    """What a backfill lets through: its settings as applied, and its counts."""

    record: BackfillRecord
    counts: Counter[str] = field(default_factory=Counter)  # instances by state
    eligible: int = 0
    _rules: tuple[BackfillRecord, BackfillGate] | None = None

    @property
    def rules(self) -> BackfillGate:
        """The record's rules for gates.gate(), rebuilt when the record is replaced."""
        if self._rules is None or self._rules[0] is not self.record:
            self._rules = (self.record, BackfillGate.of(self.record))
        return self._rules[1]

    @property
    def finished(self) -> bool:
        """Nothing runs, nothing can start, nothing is frozen: done, or stuck on a failure."""
        c = self.counts
        return not (c["running"] or c["frozen"] or self.eligible)

    @property
    def succeeded(self) -> bool:
        return sum(self.counts.values()) == self.counts["succeeded"] + self.counts["cancelled"]


class Decision(NamedTuple):
    start: list[str]  # instances to start now, in order
    dry_runs: list[str]  # dry-run instances to mark succeeded now
    waiting: list[Waiting]  # (id, state, reason, blocker as JSON) that changed
    queued: dict[str, int]  # by resource group: ready, left waiting for a slot


class Scheduler:
    def __init__(self, capacity: Mapping[str, int], default_capacity: int = 4) -> None:
        self.capacity = dict(capacity)
        self.default_capacity = default_capacity
        self.tasks: dict[str, Task] = {}
        self.gates: dict[str, Gate] = {}
        self._dependents: dict[str, list[str]] = defaultdict(list)
        self._remaining: dict[tuple[str, int], Counter[int]] = defaultdict(Counter)
        self._current: dict[tuple[str, int], int] = {}
        self._members: dict[tuple[str, int, int], list[str]] = defaultdict(list)
        self._eligible: set[str] = set()
        self._running: Counter[str] = Counter()  # by resource group
        self._running_by: Counter[tuple[str, str]] = Counter()  # by (backfill, group)
        self._demoted: list[str] = []  # no longer eligible: back to plain pending

    # -- loading -----------------------------------------------------------------------

    def set_backfill(self, record: BackfillRecord) -> None:
        gate = self.gates.get(record.name)
        if gate is None:
            self.gates[record.name] = Gate(record)
        else:
            gate.record = record

    def load(
        self, backfills: Iterable[BackfillRecord], rows: Iterable[TaskRow | InstanceRecord]
    ) -> None:
        for b in backfills:
            self.set_backfill(b)
        for row in rows:
            self.upsert(row)

    def upsert(self, row: TaskRow | InstanceRecord) -> None:
        """Add an instance, or replace what is known of it (a row that changed)."""
        i = row if isinstance(row, TaskRow) else TaskRow.of(row)
        if i.id in self.tasks:
            self._remove(self.tasks[i.id])
        gate = self.gates[i.backfill]
        descending = gate.record.spec.get("spec", {}).get("order") == "descending"
        ordinal = date.fromisoformat(i.bizdate).toordinal()
        t = Task(
            i.id,
            i.backfill,
            i.group,
            i.sequence,
            i.priority,
            -ordinal if descending else ordinal,
            i.cyctime,
            i.timezone,
            i.resource_group,
            i.dry_run,
            i.deps,
            i.ignore_deps,
            i.state,
            i.reason,
            not_before=i.not_before,
        )
        self.tasks[t.id] = t
        t.unmet = sum(
            1 for d in t.deps if d in self.tasks and self.tasks[d].state not in _SATISFIED
        )
        for d in t.deps:
            self._dependents[d].append(t.id)
        # Dependents loaded before this task counted it as satisfied: correct them.
        if t.state not in _SATISFIED:
            for child in self._dependents.get(t.id, ()):
                self._adjust(self.tasks[child], +1)
        self._members[t.backfill, t.group, t.sequence].append(t.id)
        self._count(t, t.state, +1)
        self._check(t)

    def _remove(self, t: Task) -> None:
        self._count(t, t.state, -1)
        if t.state not in _SATISFIED:
            for child in self._dependents.get(t.id, ()):
                if child in self.tasks:
                    self._adjust(self.tasks[child], -1)
        for d in t.deps:
            self._dependents[d].remove(t.id)
        self._members[t.backfill, t.group, t.sequence].remove(t.id)
        self._set_eligible(t, False)
        del self.tasks[t.id]

    # -- state changes -----------------------------------------------------------------

    def set_state(
        self,
        task_id: str,
        state: str,
        reason: str | None = None,
        *,
        ignore_deps: bool | None = None,
        not_before: float | None = None,
    ) -> None:
        """An instance changed state (we started or finished it, or an operator acted);
        `not_before`: it may not start before then (a retry's delay)."""
        t = self.tasks.get(task_id)
        if t is None:
            return
        t.not_before = not_before
        old = t.state
        if ignore_deps is not None:
            t.ignore_deps = ignore_deps
        if old != state:
            self._count(t, old, -1)
            t.state = state
            self._count(t, state, +1)
            if (old in _SATISFIED) != (state in _SATISFIED):
                for child in self._dependents.get(t.id, ()):
                    self._adjust(self.tasks[child], -1 if state in _SATISFIED else +1)
        t.reason, t.blocker = reason, None
        self._check(t)

    def _adjust(self, t: Task, delta: int) -> None:
        t.unmet += delta
        self._check(t)

    def _count(self, t: Task, state: str, delta: int) -> None:
        gate = self.gates[t.backfill]
        gate.counts[state] += delta
        if state == "running":
            self._running[t.resource_group] += delta
            self._running_by[t.backfill, t.resource_group] += delta
        if state not in _SATISFIED:
            self._barrier(t, delta)

    def _barrier(self, t: Task, delta: int) -> None:
        """Keep the lowest unfinished date sequence of (backfill, group) up to date."""
        key = (t.backfill, t.group)
        remaining = self._remaining[key]
        remaining[t.sequence] += delta
        before = self._current.get(key)
        if remaining[t.sequence] <= 0:
            del remaining[t.sequence]
        now = min(remaining) if remaining else None
        if now is None:
            self._current.pop(key, None)
        else:
            self._current[key] = now
        if before != now:
            for seq in {before, now} - {None}:
                assert seq is not None
                for member in self._members.get((t.backfill, t.group, seq), ()):
                    if member in self.tasks:
                        self._check(self.tasks[member])

    def _check(self, t: Task) -> None:
        ready = t.state in WAITING and (
            t.ignore_deps
            or (t.unmet <= 0 and self._current.get((t.backfill, t.group)) == t.sequence)
        )
        self._set_eligible(t, ready)

    def _set_eligible(self, t: Task, ready: bool) -> None:
        if ready and t.id not in self._eligible:
            self._eligible.add(t.id)
            self.gates[t.backfill].eligible += 1
        elif not ready and t.id in self._eligible:
            self._eligible.discard(t.id)
            self.gates[t.backfill].eligible -= 1
            if t.state in WAITING and (t.state != "pending" or t.reason is not None):
                # It waited for its time or a slot; now it waits for a dependency or an
                # earlier date again. All three states hold the barrier alike, so only
                # the counts by state move.
                counts = self.gates[t.backfill].counts
                counts[t.state] -= 1
                counts["pending"] += 1
                t.state, t.reason, t.blocker = "pending", None, None
                self._demoted.append(t.id)

    # -- deciding ----------------------------------------------------------------------

    def decide(self, now: float) -> Decision:
        waiting: list[Waiting] = [
            (i, "pending", None, None)
            for i in dict.fromkeys(self._demoted)
            if i in self.tasks and self.tasks[i].state == "pending" and i not in self._eligible
        ]
        self._demoted.clear()
        dry: list[str] = []
        candidates: dict[str, list[Task]] = defaultdict(list)
        clock = Clock(now)
        for task_id in sorted(self._eligible):
            t = self.tasks[task_id]
            rules = self.gates[t.backfill].rules
            blocker = gate(rules, t.cyctime, t.timezone, t.not_before, clock)
            if blocker is not None:
                self._note(t, blocker, waiting)
            elif t.dry_run:
                dry.append(t.id)
            else:
                candidates[t.resource_group].append(t)
        start: list[str] = []
        queued: dict[str, int] = {}
        for group, tasks in sorted(candidates.items()):
            cap = self.capacity.get(group, self.default_capacity)
            chosen = self._fair(group, tasks, cap - self._running[group])
            start += [t.id for t in chosen]
            picked = {t.id for t in chosen}
            taken = self._running[group] + len(chosen)  # those starting now hold slots too
            busy = resources(group, taken, cap)
            for t in tasks:
                if t.id not in picked:
                    self._note(t, busy, waiting)
            queued[group] = len(tasks) - len(chosen)
        return Decision(start, dry, waiting, queued)

    def _note(self, t: Task, blocker: Blocker, out: list[Waiting]) -> None:
        """A waiting instance waits differently: record it (waiting states all hold the
        date barrier alike, so only the counts by state move). The text is rendered only
        when the blocker changed; a stored reason that reads the same is not rewritten."""
        state = blocker.state
        if t.blocker == blocker and t.state == state:
            return
        t.blocker = blocker
        reason = blocker.text
        if (t.state, t.reason) != (state, reason):
            counts = self.gates[t.backfill].counts
            counts[t.state] -= 1
            counts[state] += 1
            t.state, t.reason = state, reason
            out.append((t.id, state, reason, blocker.to_json()))

    def _fair(self, group: str, tasks: list[Task], free: int) -> list[Task]:
        """Up to `free` tasks: the backfill holding the fewest slots of the group goes first;
        inside a backfill, priority, then business date, then scheduled time."""
        if free <= 0:
            return []
        queues: dict[str, list[Task]] = defaultdict(list)
        for t in tasks:
            queues[t.backfill].append(t)
        for queue in queues.values():
            queue.sort(key=lambda t: (-t.priority, t.rank, t.cyctime, t.id), reverse=True)
        held = {b: self._running_by[b, group] for b in queues}
        chosen: list[Task] = []
        while len(chosen) < free and queues:
            name = min(queues, key=lambda b: (held[b], -queues[b][-1].priority, b))
            chosen.append(queues[name].pop())
            held[name] += 1
            if not queues[name]:
                del queues[name]
        return chosen

    # -- what the loop needs to know -------------------------------------------------------

    def running(self) -> int:
        return sum(self._running.values())

    def finished(self) -> list[str]:
        """Active backfills where nothing runs or can start: done, or stuck on a failure."""
        return [
            name
            for name, gate in self.gates.items()
            if gate.record.status == "active" and gate.finished
        ]
