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

The instances are kept in a `tasks.TaskTable` (parallel arrays by slot number, not an
object each: issue 15), and the rows are read as the store streams them.
"""

from __future__ import annotations

import gc
from array import array
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from backfill_ctl.core.blocks import TaskBlock
from backfill_ctl.core.gates import DONE, BackfillGate, Blocker, Clock, gate, resources
from backfill_ctl.core.records import WAITING, TaskRow
from backfill_ctl.runtime.loading import Loading
from backfill_ctl.runtime.tasks import ABSENT, Tasks, TaskTable

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from backfill_ctl.core.records import BackfillRecord, InstanceRecord, TaskTuple

_SATISFIED = DONE  # lets dependents and the barrier go on
Waiting = tuple[str, str, "str | None", "dict[str, Any] | None"]  # id, state, reason, blocker


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
    def descending(self) -> bool:
        return bool(self.record.spec.get("spec", {}).get("order") == "descending")

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


class Scheduler(Loading):
    def __init__(self, capacity: Mapping[str, int], default_capacity: int = 4) -> None:
        self.capacity = dict(capacity)
        self.default_capacity = default_capacity
        self.table = TaskTable()
        self.tasks = Tasks(self.table)
        self.gates: dict[str, Gate] = {}
        self._dependents: dict[int, list[int]] = {}
        self._remaining: dict[tuple[str, int], Counter[int]] = defaultdict(Counter)
        self._current: dict[tuple[str, int], int] = {}
        # The slots of each date, 4 bytes each (a list would hold an int object each).
        self._members: dict[tuple[str, int, int], array[int]] = defaultdict(lambda: array("i"))
        self._eligible: set[int] = set()
        self._running: Counter[str] = Counter()  # by resource group
        self._running_by: Counter[tuple[str, str]] = Counter()  # by (backfill, group)
        self._demoted: list[int] = []  # no longer eligible: back to plain pending

    # -- loading -----------------------------------------------------------------------

    def set_backfill(self, record: BackfillRecord) -> None:
        gate = self.gates.get(record.name)
        if gate is None:
            self.gates[record.name] = Gate(record)
        else:
            gate.record = record

    def load(
        self,
        backfills: Iterable[BackfillRecord],
        rows: Iterable[TaskTuple | TaskRow | InstanceRecord] | Iterable[TaskBlock],
    ) -> None:
        """The active backfills and their instances (rows, or blocks of a date's rows: a
        store's task_blocks): into an empty scheduler, they go in by column and what
        follows from them is worked out once (runtime/loading.py)."""
        for b in backfills:
            self.set_backfill(b)
        if self.table.ids:
            for row in rows:
                for one in row.rows() if isinstance(row, TaskBlock) else (row,):
                    self.upsert(one)
            return
        tb = self.table
        # A million rows and slots, none in a reference cycle: the collector would
        # rescan them all at each full collection (a quarter of the load's time).
        enabled = gc.isenabled()
        gc.disable()
        try:
            self._resolve(tb.extend(rows, lambda name: self.gates[name].descending))
            self._derive()
        finally:
            if enabled:
                gc.enable()

    def upsert(self, row: TaskTuple | TaskRow | InstanceRecord) -> None:
        """Add an instance, or replace what is known of it (a row that changed). A row is
        laid out as a `TaskRow` (a store's plain tuple, or the named one)."""
        i = row if isinstance(row, tuple) else TaskRow.of(row)
        descending = self.gates[i[1]].descending  # an unknown backfill changes nothing
        tb = self.table
        k = tb.slot(i[0])
        if tb.state[k] != ABSENT:
            self._remove(k)
        tb.put(k, i, descending)
        if i[10]:
            tb.deps[k] = tuple(tb.slot(d) for d in i[10])
        else:
            tb.deps.pop(k, None)
        deps = tb.deps.get(k, ())
        unmet = 0
        for d in deps:
            code = tb.state[d]
            if code != ABSENT and tb.states.names[code] not in _SATISFIED:
                unmet += 1
            self._dependents.setdefault(d, []).append(k)
        tb.unmet[k] = unmet
        state = tb.state_of(k)
        # Dependents loaded before this task counted it as satisfied: correct them.
        if state not in _SATISFIED:
            for child in self._dependents.get(k, ()):
                self._adjust(child, +1)
        self._members[tb.backfill_of(k), tb.group[k], tb.sequence[k]].append(k)
        self._count(k, state, +1)
        self._check(k)

    def _remove(self, k: int) -> None:
        tb = self.table
        state = tb.state_of(k)
        self._count(k, state, -1)
        if state not in _SATISFIED:
            for child in self._dependents.get(k, ()):
                if tb.state[child] != ABSENT:
                    self._adjust(child, -1)
        for d in tb.deps.get(k, ()):
            self._dependents[d].remove(k)
        self._members[tb.backfill_of(k), tb.group[k], tb.sequence[k]].remove(k)
        if k in self._eligible:  # (not `_set_eligible`: its state, counted off above,
            self._eligible.discard(k)  # would be demoted and counted off again)
            self.gates[tb.backfill_of(k)].eligible -= 1
        tb.state[k] = ABSENT

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
        tb = self.table
        k = tb.find(task_id)
        if k is None:
            return
        if not_before is None:
            tb.not_before.pop(k, None)
        else:
            tb.not_before[k] = not_before
        old = tb.state_of(k)
        if ignore_deps is not None:
            tb.set_ignore_deps(k, ignore_deps)
        if old != state:
            self._count(k, old, -1)
            tb.set_state(k, state)
            self._count(k, state, +1)
            if (old in _SATISFIED) != (state in _SATISFIED):
                for child in self._dependents.get(k, ()):
                    self._adjust(child, -1 if state in _SATISFIED else +1)
        tb.set_reason(k, reason)
        tb.blocker.pop(k, None)
        self._check(k)

    def _adjust(self, k: int, delta: int) -> None:
        self.table.unmet[k] += delta
        self._check(k)

    def _count(self, k: int, state: str, delta: int) -> None:
        tb = self.table
        backfill = tb.backfill_of(k)
        self.gates[backfill].counts[state] += delta
        if state == "running":
            group = tb.group_of(k)
            self._running[group] += delta
            self._running_by[backfill, group] += delta
        if state not in _SATISFIED:
            self._barrier(backfill, tb.group[k], tb.sequence[k], delta)

    def _barrier(self, backfill: str, group: int, sequence: int, delta: int) -> None:
        """Keep the lowest unfinished date sequence of (backfill, group) up to date."""
        key = (backfill, group)
        remaining = self._remaining[key]
        remaining[sequence] += delta
        before = self._current.get(key)
        now: int | None
        if remaining[sequence] > 0:  # the lowest is this one, or stays
            now = sequence if before is None or sequence < before else before
        elif sequence != before:  # another sequence is lower: it stays
            del remaining[sequence]
            now = before
        else:
            del remaining[sequence]
            now = min(remaining) if remaining else None
        if now is None:
            self._current.pop(key, None)
        else:
            self._current[key] = now
        if before != now:
            for seq in {before, now} - {None}:
                assert seq is not None
                for member in self._members.get((backfill, group, seq), ()):
                    if self.table.state[member] != ABSENT:
                        self._check(member)

    def _check(self, k: int) -> None:
        tb = self.table
        ready = tb.state_of(k) in WAITING and (
            tb.ignore_deps(k)
            or (
                tb.unmet[k] <= 0
                and self._current.get((tb.backfill_of(k), tb.group[k])) == tb.sequence[k]
            )
        )
        self._set_eligible(k, ready)

    def _set_eligible(self, k: int, ready: bool) -> None:
        if ready and k not in self._eligible:
            self._eligible.add(k)
            self.gates[self.table.backfill_of(k)].eligible += 1
        elif not ready and k in self._eligible:
            tb = self.table
            self._eligible.discard(k)
            gate = self.gates[tb.backfill_of(k)]
            gate.eligible -= 1
            state = tb.state_of(k)
            if state in WAITING and (state != "pending" or k in tb.reason):
                # It waited for its time or a slot; now it waits for a dependency or an
                # earlier date again. All three states hold the barrier alike, so only
                # the counts by state move.
                gate.counts[state] -= 1
                gate.counts["pending"] += 1
                tb.set_state(k, "pending")
                tb.reason.pop(k, None)
                tb.blocker.pop(k, None)
                self._demoted.append(k)

    # -- deciding ----------------------------------------------------------------------

    def decide(self, now: float) -> Decision:
        tb = self.table
        waiting: list[Waiting] = [
            (tb.ids[k], "pending", None, None)
            for k in dict.fromkeys(self._demoted)
            if tb.state_of(k) == "pending" and k not in self._eligible
        ]
        self._demoted.clear()
        dry: list[str] = []
        candidates: dict[str, list[int]] = defaultdict(list)
        clock = Clock(now)
        for k in sorted(self._eligible, key=tb.ids.__getitem__):
            rules = self.gates[tb.backfill_of(k)].rules
            blocker = gate(rules, tb.cyctime[k], tb.zone_of(k), tb.not_before.get(k), clock)
            if blocker is not None:
                self._note(k, blocker, waiting)
            elif tb.dry_run(k):
                dry.append(tb.ids[k])
            else:
                candidates[tb.group_of(k)].append(k)
        start: list[str] = []
        queued: dict[str, int] = {}
        for group, tasks in sorted(candidates.items()):
            cap = self.capacity.get(group, self.default_capacity)
            chosen = self._fair(group, tasks, cap - self._running[group])
            start += [tb.ids[k] for k in chosen]
            picked = set(chosen)
            taken = self._running[group] + len(chosen)  # those starting now hold slots too
            busy = resources(group, taken, cap)
            for k in tasks:
                if k not in picked:
                    self._note(k, busy, waiting)
            queued[group] = len(tasks) - len(chosen)
        return Decision(start, dry, waiting, queued)

    def _note(self, k: int, blocker: Blocker, out: list[Waiting]) -> None:
        """A waiting instance waits differently: record it (waiting states all hold the
        date barrier alike, so only the counts by state move). The text is rendered only
        when the blocker changed; a stored reason that reads the same is not rewritten."""
        tb = self.table
        state = blocker.state
        old = tb.state_of(k)
        if tb.blocker.get(k) == blocker and old == state:
            return
        tb.blocker[k] = blocker
        reason = blocker.text
        if (old, tb.reason.get(k)) != (state, reason):
            counts = self.gates[tb.backfill_of(k)].counts
            counts[old] -= 1
            counts[state] += 1
            tb.set_state(k, state)
            tb.set_reason(k, reason)
            out.append((tb.ids[k], state, reason, blocker.to_json()))

    def _fair(self, group: str, tasks: list[int], free: int) -> list[int]:
        """Up to `free` tasks: the backfill holding the fewest slots of the group goes first;
        inside a backfill, priority, then business date, then scheduled time."""
        if free <= 0:
            return []
        tb = self.table
        queues: dict[str, list[int]] = defaultdict(list)
        for k in tasks:
            queues[tb.backfill_of(k)].append(k)
        for queue in queues.values():
            queue.sort(
                key=lambda k: (-tb.priority[k], tb.rank[k], tb.cyctime[k], tb.ids[k]),
                reverse=True,
            )
        held = {b: self._running_by[b, group] for b in queues}
        chosen: list[int] = []
        while len(chosen) < free and queues:
            name = min(queues, key=lambda b: (held[b], -tb.priority[queues[b][-1]], b))
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
