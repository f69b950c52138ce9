"""The compact scheduler (issue 15: a table of slots, rows loaded by column) decides as
the scheduler of objects did: the scheduler as it was at 16e5b3e, kept below verbatim
as `ReferenceScheduler`, and the new one are run side by side on a representative DAG
(diamonds and a join, two backfills in both date orders, date groups, two resource
groups, dry runs, reruns that ignore dependencies, retries, every state), loaded from
the same rows, then driven through the same starts, ends, reruns and clock: every
decision, blocker, count and state must be the same. The bulk load must also not
depend on the order the store gives the rows in.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest

from backfill_ctl.core.blocks import blocks_of
from backfill_ctl.core.gates import DONE, BackfillGate, Blocker, Clock, gate, resources
from backfill_ctl.core.records import WAITING, BackfillRecord, InstanceRecord, Run, TaskRow
from backfill_ctl.runtime.scheduler import Scheduler

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

# -- the reference: backfill_ctl/runtime/scheduler.py at 16e5b3e, verbatim but for the
# fix of its counts when a waiting, eligible instance was replaced (`_remove`) ----------

Waiting = tuple[str, str, "str | None", "dict[str, Any] | None"]  # id, state, reason, blocker


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
class ReferenceGate:
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


class _Decision(NamedTuple):
    start: list[str]  # instances to start now, in order
    dry_runs: list[str]  # dry-run instances to mark succeeded now
    waiting: list[Waiting]  # (id, state, reason, blocker as JSON) that changed
    queued: dict[str, int]  # by resource group: ready, left waiting for a slot


class ReferenceScheduler:
    def __init__(self, capacity: Mapping[str, int], default_capacity: int = 4) -> None:
        self.capacity = dict(capacity)
        self.default_capacity = default_capacity
        self.tasks: dict[str, Task] = {}
        self.gates: dict[str, ReferenceGate] = {}
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
            self.gates[record.name] = ReferenceGate(record)
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
        if t.id in self._eligible:  # the one change: the counts fix of 16e5b3e's upsert
            self._eligible.discard(t.id)
            self.gates[t.backfill].eligible -= 1
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

    def decide(self, now: float) -> _Decision:
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
        return _Decision(start, dry, waiting, queued)

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

    def running(self) -> int:
        return sum(self._running.values())

    def finished(self) -> list[str]:
        return [
            name
            for name, gate in self.gates.items()
            if gate.record.status == "active" and gate.finished
        ]


# -- the scenario -------------------------------------------------------------------------

T0 = datetime(2024, 3, 20, 1, 0, tzinfo=UTC).timestamp()
NODES = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c"), "e": (), "f": ("d", "e")}
STATES = ["pending"] * 12 + [
    "succeeded",
    "succeeded",
    "failed",
    "running",
    "waiting-for-time",
    "waiting-for-resources",
    "frozen",
    "cancelled",
]


def backfills() -> list[BackfillRecord]:
    return [
        BackfillRecord("up", "d", {"spec": {"order": "ascending"}}),
        BackfillRecord("down", "d", {"spec": {"order": "descending"}}, run_immediately=True),
        BackfillRecord("late", "d", {"spec": {}}, execution_window=("02:00", "05:00")),
    ]


def instances(rng: random.Random) -> list[InstanceRecord]:
    """Each backfill: the DAG over 8 dates in 2 date groups, states drawn at random."""
    out = []
    for b in ("up", "down", "late"):
        for day in range(1, 9):
            group, seq = divmod(day - 1, 4)
            for node, ups in NODES.items():
                state = rng.choice(STATES)
                out.append(
                    InstanceRecord(
                        f"{b}-{node}-{day}",
                        b,
                        node,
                        f"2024-03-{day:02d}",
                        "x",
                        T0 + rng.choice((-7200, -60, 0, 1800, 7200)) + day * 60,
                        rng.choice(("UTC", "UTC", "Asia/Tokyo")),
                        group,
                        seq,
                        rng.choice((1, 5, 5, 9)),
                        tuple(f"{b}-{u}-{day}" for u in ups),
                        Run(("true",)),
                        rng.choice(("rg", "rg", "rg2")),
                        dry_run_reason="blocklisted" if rng.random() < 0.1 else None,
                        state=state,  # type: ignore[arg-type]
                        reason=f"was {state}" if state != "pending" or rng.random() < 0.1 else None,
                        ignore_deps=rng.random() < 0.05,
                        not_before=T0 + 600 if rng.random() < 0.1 else None,
                    )
                )
    return out


def in_dag_order(records: list[InstanceRecord]) -> list[InstanceRecord]:
    """Each row after its earlier dates' and its dependencies' (none looks eligible for a
    moment: see runtime/loading.py)."""
    order = list(NODES)
    return sorted(records, key=lambda i: (i.backfill, i.group, i.sequence, order.index(i.node)))


def snapshot(s: Any, ids: Iterable[str]) -> dict[str, Any]:
    tasks = s.tasks
    return {
        "tasks": {
            i: (tasks[i].state, tasks[i].reason, tasks[i].unmet, tasks[i].blocker) for i in ids
        },
        "counts": {n: {k: v for k, v in g.counts.items() if v} for n, g in s.gates.items()},
        "eligible": {n: g.eligible for n, g in s.gates.items()},
        "running": s.running(),
        "finished": s.finished(),
    }


def drive(s: Any, rng: random.Random, records: dict[str, InstanceRecord]) -> list[Any]:
    """Ticks of decide() with starts, ends, reruns and a moving clock (the same draws
    for both schedulers: `rng` is seeded alike)."""
    seen = []
    now = T0 - 3600
    running = sorted(i for i, r in records.items() if r.state == "running")
    for _ in range(40):
        d = s.decide(now)
        seen.append((d.start, d.dry_runs, d.waiting, d.queued))
        for i in d.dry_runs:
            s.set_state(i, "succeeded", "dry-run: nothing was executed")
        for i in d.start:
            s.set_state(i, "running")
            running.append(i)
        rng.shuffle(running)
        for i in running[: rng.randint(1, 6)]:
            end = rng.choice(("succeeded", "succeeded", "succeeded", "failed"))
            retry = T0 + rng.randint(0, 3600) if end == "failed" and rng.random() < 0.3 else None
            s.set_state(i, "pending" if retry else end, "ended", not_before=retry)
            running.remove(i)
        if rng.random() < 0.3:  # an operator reruns a few, ignoring their dependencies
            for i in rng.sample(sorted(records), 3):
                if i not in running:
                    s.upsert(replace(records[i], state="pending", reason=None, ignore_deps=True))
        if rng.random() < 0.2:
            i = rng.choice(sorted(records))
            if i not in running:
                s.set_state(i, "frozen", "frozen by an operator")
        now += rng.choice((0, 60, 900, 3600))
        seen.append(snapshot(s, records))
    return seen


@pytest.mark.parametrize("seed", range(12))
def test_the_compact_scheduler_decides_as_the_reference(seed: int) -> None:
    records = instances(random.Random(seed))
    rows = in_dag_order(records)
    old, new = ReferenceScheduler({"rg": 3, "rg2": 2}), Scheduler({"rg": 3, "rg2": 2})
    old.load(backfills(), rows)
    new.load(backfills(), [TaskRow.of(i) for i in rows])
    by_id = {i.id: i for i in records}
    assert snapshot(new, by_id) == snapshot(old, by_id)
    assert drive(new, random.Random(seed), by_id) == drive(old, random.Random(seed), by_id)


@pytest.mark.parametrize("seed", range(6))
def test_the_bulk_load_does_not_depend_on_the_order_of_the_rows(seed: int) -> None:
    records = instances(random.Random(seed))
    rows = in_dag_order(records)
    shuffled = list(rows)
    random.Random(seed).shuffle(shuffled)
    ordered, any_order = Scheduler({"rg": 3}), Scheduler({"rg": 3})
    ordered.load(backfills(), rows)
    any_order.load(backfills(), [TaskRow.of(i) for i in shuffled])
    by_id = {i.id: i for i in records}
    assert snapshot(any_order, by_id) == snapshot(ordered, by_id)
    assert drive(any_order, random.Random(seed), by_id) == drive(
        ordered, random.Random(seed), by_id
    )


@pytest.mark.parametrize("seed", range(6))
def test_a_load_of_blocks_decides_as_a_load_of_rows(seed: int) -> None:
    """The controller loads a store's task_blocks (a date's rows by column): the same
    scheduler as from its rows, whatever the order of the dates and of each date's rows."""
    records = instances(random.Random(seed))
    shuffled = [TaskRow.of(i) for i in records]
    random.Random(seed).shuffle(shuffled)
    blocks = blocks_of(shuffled)
    random.Random(seed + 1).shuffle(blocks)
    assert max(len(b.ids) for b in blocks) > 1
    assert any(isinstance(b.state, list) for b in blocks)  # the rows of a date differ
    assert any(b.deps for b in blocks) and any(b.reason for b in blocks)
    by_rows, by_blocks = Scheduler({"rg": 3, "rg2": 2}), Scheduler({"rg": 3, "rg2": 2})
    by_rows.load(backfills(), in_dag_order(records))
    by_blocks.load(backfills(), blocks)
    by_id = {i.id: i for i in records}
    assert snapshot(by_blocks, by_id) == snapshot(by_rows, by_id)
    for i in records:
        new, old = by_blocks.tasks[i.id], by_rows.tasks[i.id]
        fields = ("rank", "cyctime", "priority", "timezone", "resource_group", "dry_run")
        fields += ("ignore_deps", "deps", "not_before", "group", "sequence")
        assert [getattr(new, f) for f in fields] == [getattr(old, f) for f in fields]
    assert drive(by_blocks, random.Random(seed), by_id) == drive(
        by_rows, random.Random(seed), by_id
    )


def test_blocks_given_to_a_loaded_scheduler_are_upserted_row_by_row() -> None:
    records = in_dag_order(instances(random.Random(7)))
    blocks, rows = Scheduler({"rg": 3}), Scheduler({"rg": 3})
    blocks.load(backfills(), records[:10])
    rows.load(backfills(), records[:10])
    changed = [replace(i, state="succeeded", reason=None) for i in records[5:40]]
    blocks.load([], blocks_of(TaskRow.of(i) for i in changed))
    rows.load([], changed)
    latest = {i.id: i for i in records[:10] + changed}
    assert snapshot(blocks, latest) == snapshot(rows, latest)


def test_a_block_whose_ids_are_not_all_new_is_taken_row_by_row() -> None:
    """A block repeating ids already loaded (a caller's, never a store's) is taken as its
    rows would be: the later row wins."""
    rows = in_dag_order(instances(random.Random(5)))
    changed = [replace(rows[1], state="succeeded", reason=None), replace(rows[30], priority=1)]
    twice, once = Scheduler({"rg": 3}), Scheduler({"rg": 3})
    twice.load(backfills(), blocks_of(TaskRow.of(i) for i in rows + changed))
    latest = {i.id: i for i in rows + changed}
    once.load(backfills(), in_dag_order(list(latest.values())))
    assert len(twice.tasks) == len(latest)
    assert snapshot(twice, latest) == snapshot(once, latest)
    assert drive(twice, random.Random(2), latest) == drive(once, random.Random(2), latest)


def test_a_scheduler_loaded_row_by_row_matches_the_bulk_load() -> None:
    records = in_dag_order(instances(random.Random(99)))
    bulk, one_by_one = Scheduler({"rg": 3}), Scheduler({"rg": 3})
    bulk.load(backfills(), records)
    for b in backfills():
        one_by_one.set_backfill(b)
    for i in records:
        one_by_one.upsert(i)
    by_id = {i.id: i for i in records}
    assert snapshot(bulk, by_id) == snapshot(one_by_one, by_id)
    assert drive(bulk, random.Random(1), by_id) == drive(one_by_one, random.Random(1), by_id)


@pytest.mark.parametrize("batch", [5, 10_000])
def test_a_row_given_twice_to_load_is_taken_as_its_last(
    batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store never gives an id twice (its key); a caller may: the later row wins, in
    the batch of its first or in a later one (TaskTable.extend goes row by row then)."""
    from backfill_ctl.runtime import tasks

    monkeypatch.setattr(tasks, "_BATCH", batch)
    rows = in_dag_order(instances(random.Random(5)))
    changed = [replace(rows[1], state="succeeded", reason=None), replace(rows[30], priority=1)]
    twice, once = Scheduler({"rg": 3}), Scheduler({"rg": 3})
    twice.load(backfills(), rows + changed)
    latest = {i.id: i for i in rows + changed}
    once.load(backfills(), in_dag_order(list(latest.values())))
    assert len(twice.tasks) == len(latest)
    assert snapshot(twice, latest) == snapshot(once, latest)
    assert drive(twice, random.Random(2), latest) == drive(once, random.Random(2), latest)
