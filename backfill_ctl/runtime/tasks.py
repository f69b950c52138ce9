"""The scheduler's instances, stored compactly (issue 15: 1,000,000 in memory).

A Python object per instance (a slotted dataclass of 17 fields, its own float, int and
strings, the row it was read from) cost about 540 bytes; here an instance is a slot
number `k` in parallel arrays of machine values, and what most instances share is
stored once:

- its id (the one string kept per instance) and `index`, the id's slot number;
- numbers in `array`s (date group, sequence, priority, rank, scheduled time, unmet
  dependencies), flags and state as bytes; backfill, time zone and resource group as
  codes into small tables of names;
- what few instances have (a reason, a retry's delay, a blocker, dependencies) in dicts
  by slot; a reason is interned (`sys.intern`), as thousands read the same;
- dependencies as slot numbers: a dependency not loaded yet gets a slot of its own, not
  present (`ABSENT`) until its row arrives, so its id is stored once.

A slot, once given, stays: the scheduler replaces what it knows of an instance, never
forgets one (a lost lease builds a new scheduler). `Tasks` is the read-only mapping of
id to a `TaskView` that tests and callers read (`scheduler.tasks[id].state`).
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterator, Mapping
from datetime import date
from functools import lru_cache
from itertools import islice, repeat
from typing import TYPE_CHECKING, Any

from backfill_ctl.core.blocks import DRY_RUN, IGNORE_DEPS, TaskBlock
from backfill_ctl.core.records import TaskRow

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from backfill_ctl.core.gates import Blocker
    from backfill_ctl.core.records import InstanceRecord, TaskTuple

ABSENT = 255  # the state code of a slot whose instance is not loaded (a dependency's)
_DRY, _IGNORE = DRY_RUN, IGNORE_DEPS  # flag bits (a TaskBlock's flags as they are)
_BATCH = 10_000  # rows taken at a time by TaskTable.extend
_IGNORING = bytes(f & _IGNORE for f in range(256))  # flags -> their ignore bit


@lru_cache(maxsize=65536)
def ordinal(bizdate: str) -> int:
    return date.fromisoformat(bizdate).toordinal()


class Names:
    """A small table of names (backfills, time zones, resource groups, states): code <-> name."""

    __slots__ = ("code", "names")

    def __init__(self) -> None:
        self.names: list[str] = []
        self.code: dict[str, int] = {}

    def of(self, name: str) -> int:
        code = self.code.get(name)
        if code is None:
            code = self.code[name] = len(self.names)
            self.names.append(sys.intern(name))
        return code

    def codes(self, names: Sequence[str]) -> Iterable[int]:
        """The codes of a column of names: one name throughout (a batch of one backfill,
        time zone, resource group) is compared, not hashed, row by row."""
        if names.count(names[0]) == len(names):
            return [self.of(names[0])] * len(names)
        for name in set(names).difference(self.code):
            self.of(name)
        return map(self.code.__getitem__, names)


def _codes(names: Names, values: str | list[str], n: int, typecode: str = "I") -> array[int]:
    """A block's column of names as their codes, `n` of them."""
    if isinstance(values, list):
        return array(typecode, names.codes(values))
    return array(typecode, (names.of(values),)) * n


class TaskTable:
    """The instances' fields by slot number (see the module docstring)."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.index: dict[str, int] = {}
        self.backfills, self.zones, self.groups, self.states = Names(), Names(), Names(), Names()
        self.backfill = array("I")
        self.group = array("i")
        self.sequence = array("i")
        self.priority = array("i")
        self.rank = array("i")  # business date, signed by the backfill's order
        self.cyctime = array("d")
        self.timezone = array("I")
        self.resource_group = array("I")
        self.flags = bytearray()
        self.state = bytearray()
        self.unmet = array("i")
        self.reason: dict[int, str] = {}
        self.not_before: dict[int, float] = {}  # a retry waits until then
        self.blocker: dict[int, Blocker] = {}  # what the scheduler last decided holds it back
        self.deps: dict[int, tuple[int, ...]] = {}

    def slot(self, task_id: str) -> int:
        """The slot of `task_id`, given (not present yet) if it has none."""
        k = self.index.get(task_id)
        if k is None:
            k = self.index[task_id] = len(self.ids)
            self.ids.append(task_id)
            for column in (self.backfill, self.timezone, self.resource_group):
                column.append(0)
            for column2 in (self.group, self.sequence, self.priority, self.rank, self.unmet):
                column2.append(0)
            self.cyctime.append(0.0)
            self.flags.append(0)
            self.state.append(ABSENT)
        return k

    def put(self, k: int, i: TaskTuple, descending: bool) -> None:
        """Store the fields of row `i` in slot `k`, but its dependencies."""
        rank = ordinal(i[2])
        self.backfill[k] = self.backfills.of(i[1])
        self.group[k], self.sequence[k], self.priority[k] = i[3], i[4], i[5]
        self.rank[k] = -rank if descending else rank
        self.cyctime[k] = i[6]
        self.timezone[k] = self.zones.of(i[7])
        self.resource_group[k] = self.groups.of(i[8])
        self.set_flags(k, i[9], i[11])
        self.set_state(k, i[12])
        self.set_reason(k, i[13])
        if i[14] is None:
            self.not_before.pop(k, None)
        else:
            self.not_before[k] = i[14]
        self.blocker.pop(k, None)

    def extend(
        self,
        rows: Iterable[TaskTuple | InstanceRecord | TaskBlock],
        descending: Callable[[str], bool],
    ) -> dict[int, Sequence[str] | None]:
        """Store `rows` (or blocks of them: core/blocks.py) a batch at a time, column by
        column; their dependencies are returned (by slot) for the caller to resolve once
        every row is in. A batch whose ids are not all new (a dependency's slot, a row
        given twice) goes row by row."""
        deps: dict[int, Sequence[str] | None] = {}
        it = iter(rows)
        while found := list(islice(it, _BATCH)):
            if isinstance(found[0], TaskBlock):
                for block in found:
                    assert isinstance(block, TaskBlock)
                    self._append_block(block, descending(block.backfill), deps)
                continue
            batch: list[TaskTuple] = (
                found  # type: ignore[assignment]
                if all(map(isinstance, found, repeat(tuple)))
                else [r if isinstance(r, tuple) else TaskRow.of(r) for r in found]  # type: ignore[arg-type]
            )
            cols = list(zip(*batch, strict=True))
            ids: tuple[str, ...] = cols[0]
            known = len(self.index)
            self.index.update(zip(ids, range(len(self.ids), len(self.ids) + len(ids)), strict=True))
            if len(self.index) != known + len(ids):  # not all new: undone, row by row
                self.index = dict(zip(self.ids, range(len(self.ids)), strict=True))
                for row in batch:
                    k = self.slot(row[0])
                    self.put(k, row, descending(row[1]))
                    deps[k] = row[10]
                continue
            self._append(ids, cols, descending, deps)
        return deps

    def _append(
        self,
        ids: tuple[str, ...],
        cols: list[tuple[Any, ...]],
        descending: Callable[[str], bool],
        deps: dict[int, Sequence[str] | None],
    ) -> None:
        """Append a batch of new rows, by column (`cols`: a batch's columns)."""
        first = len(self.ids)
        self.ids += ids
        backfills: tuple[str, ...] = cols[1]
        self.backfill.extend(self.backfills.codes(backfills))
        for column, values in zip(
            (self.group, self.sequence, self.priority), cols[3:6], strict=True
        ):
            column.extend(values)
        ranks = list(map(ordinal, cols[2]))
        if any(map(descending, set(backfills))):
            ranks = [-r if descending(b) else r for r, b in zip(ranks, backfills, strict=True)]
        self.rank.extend(ranks)
        self.cyctime.extend(cols[6])
        self.timezone.extend(self.zones.codes(cols[7]))
        self.resource_group.extend(self.groups.codes(cols[8]))
        self.state.extend(self.states.codes(cols[12]))
        self.unmet.frombytes(bytes(self.unmet.itemsize * len(ids)))
        self._append_rare(first, cols, deps)

    def _append_rare(
        self, first: int, cols: list[tuple[Any, ...]], deps: dict[int, Sequence[str] | None]
    ) -> None:
        """The columns of a batch that few rows set (flags, reason, retry, dependencies)."""
        dry, ignore = cols[9], cols[11]
        if any(dry) or any(ignore):
            pairs = zip(dry, ignore, strict=True)
            self.flags += bytes((_DRY if d else 0) | (_IGNORE if g else 0) for d, g in pairs)
        else:
            self.flags += bytes(len(dry))
        if cols[13].count(None) != len(dry):  # reasons: most instances have none
            self.reason.update(
                (j, sys.intern(r)) for j, r in enumerate(cols[13], first) if r is not None
            )
        if cols[14].count(None) != len(dry):
            self.not_before.update((j, t) for j, t in enumerate(cols[14], first) if t is not None)
        if any(cols[10]):
            deps.update((j, d) for j, d in enumerate(cols[10], first) if d)

    def _append_block(
        self, b: TaskBlock, descending: bool, deps: dict[int, Sequence[str] | None]
    ) -> None:
        """Append a date's instances, by column (a value all of them have: repeated in C);
        ids not all new: row by row, as `extend` does a batch of rows."""
        first, n = len(self.ids), len(b.ids)
        self.index.update(zip(b.ids, range(first, first + n), strict=True))
        if len(self.index) != first + n:  # not all new: undone, row by row
            self.index = dict(zip(self.ids, range(first), strict=True))
            for row in b.rows():
                k = self.slot(row[0])
                self.put(k, row, descending)
                deps[k] = row[10]
            return
        self.ids += b.ids
        rank = ordinal(b.bizdate)
        for column, value in (
            (self.backfill, self.backfills.of(b.backfill)),
            (self.group, b.group),
            (self.sequence, b.sequence),
            (self.rank, -rank if descending else rank),
            (self.unmet, 0),
        ):
            column.extend(array(column.typecode, (value,)) * n)
        priority, cyctime = b.priority, b.cyctime
        self.priority.extend(
            priority if isinstance(priority, list) else array("i", (priority,)) * n
        )
        self.cyctime.extend(cyctime if isinstance(cyctime, list) else array("d", (cyctime,)) * n)
        self.timezone.extend(_codes(self.zones, b.timezone, n))
        self.resource_group.extend(_codes(self.groups, b.resource_group, n))
        self.state += _codes(self.states, b.state, n, "B")
        self.flags += bytes(b.flags) if isinstance(b.flags, list) else bytes((b.flags,)) * n
        self._block_rare(first, b, deps)

    def _block_rare(self, first: int, b: TaskBlock, deps: dict[int, Sequence[str] | None]) -> None:
        """What few instances of a block have: a reason, a retry's time, dependencies."""
        if b.reason is not None:
            self.reason.update(
                (j, sys.intern(r)) for j, r in enumerate(b.reason, first) if r is not None
            )
        if b.not_before is not None:
            self.not_before.update(
                (j, t) for j, t in enumerate(b.not_before, first) if t is not None
            )
        if b.deps is not None:  # as they are ([] for none): resolved by the caller
            deps.update(zip(range(first, first + len(b.ids)), b.deps, strict=True))

    def ignoring(self) -> list[int]:
        """The loaded instances told to ignore their dependencies (a rerun)."""
        marks = self.flags.translate(_IGNORING)  # searched in C: most have no such flag
        found, k = [], marks.find(_IGNORE)
        while k >= 0:
            if self.state[k] != ABSENT:
                found.append(k)
            k = marks.find(_IGNORE, k + 1)
        return found

    def find(self, task_id: str) -> int | None:
        """The slot of a loaded instance, or None."""
        k = self.index.get(task_id)
        return None if k is None or self.state[k] == ABSENT else k

    # -- fields as the scheduler reads them ---------------------------------------------

    def state_of(self, k: int) -> str:
        return self.states.names[self.state[k]]

    def set_state(self, k: int, state: str) -> None:
        self.state[k] = self.states.of(state)

    def backfill_of(self, k: int) -> str:
        return self.backfills.names[self.backfill[k]]

    def group_of(self, k: int) -> str:
        return self.groups.names[self.resource_group[k]]

    def zone_of(self, k: int) -> str:
        return self.zones.names[self.timezone[k]]

    def set_reason(self, k: int, reason: str | None) -> None:
        if reason is None:
            self.reason.pop(k, None)
        else:
            self.reason[k] = sys.intern(reason)

    def dry_run(self, k: int) -> bool:
        return bool(self.flags[k] & _DRY)

    def ignore_deps(self, k: int) -> bool:
        return bool(self.flags[k] & _IGNORE)

    def set_flags(self, k: int, dry_run: bool | int, ignore_deps: bool | int) -> None:
        self.flags[k] = (_DRY if dry_run else 0) | (_IGNORE if ignore_deps else 0)

    def set_ignore_deps(self, k: int, ignore_deps: bool) -> None:
        self.set_flags(k, self.dry_run(k), ignore_deps)


class TaskView:
    """One instance as the scheduler knows it, read from its table (and its reason set)."""

    __slots__ = ("_k", "_t")

    def __init__(self, table: TaskTable, k: int) -> None:
        self._t, self._k = table, k

    id = property(lambda self: self._t.ids[self._k])
    backfill = property(lambda self: self._t.backfill_of(self._k))
    group = property(lambda self: self._t.group[self._k])
    sequence = property(lambda self: self._t.sequence[self._k])
    priority = property(lambda self: self._t.priority[self._k])
    rank = property(lambda self: self._t.rank[self._k])
    cyctime = property(lambda self: self._t.cyctime[self._k])
    timezone = property(lambda self: self._t.zone_of(self._k))
    resource_group = property(lambda self: self._t.group_of(self._k))
    dry_run = property(lambda self: self._t.dry_run(self._k))
    ignore_deps = property(lambda self: self._t.ignore_deps(self._k))
    state = property(lambda self: self._t.state_of(self._k))
    unmet = property(lambda self: self._t.unmet[self._k])
    not_before = property(lambda self: self._t.not_before.get(self._k))
    blocker = property(lambda self: self._t.blocker.get(self._k))

    @property
    def deps(self) -> tuple[str, ...]:
        return tuple(self._t.ids[d] for d in self._t.deps.get(self._k, ()))

    @property
    def reason(self) -> str | None:
        return self._t.reason.get(self._k)

    @reason.setter
    def reason(self, value: str | None) -> None:
        self._t.set_reason(self._k, value)


class Tasks(Mapping[str, TaskView]):
    """The loaded instances by id (a view of the table)."""

    def __init__(self, table: TaskTable) -> None:
        self._t = table

    def __getitem__(self, task_id: str) -> TaskView:
        k = self._t.find(task_id)
        if k is None:
            raise KeyError(task_id)
        return TaskView(self._t, k)

    def __contains__(self, task_id: object) -> bool:
        return isinstance(task_id, str) and self._t.find(task_id) is not None

    def __iter__(self) -> Iterator[str]:
        t = self._t
        return (i for k, i in enumerate(t.ids) if t.state[k] != ABSENT)

    def __len__(self) -> int:
        return len(self._t.ids) - self._t.state.count(ABSENT)
