"""What follows from a scheduler's rows loaded all at once (issue 15), for `Scheduler`.

`Scheduler.load()` puts a million rows into its `TaskTable` by column; this works out,
once they are all in, what `upsert()` keeps up to date row by row: dependents and unmet
dependencies, the members of each date, the counts by state, the date barriers, and the
eligible instances. The result is what upserting the rows one by one gives in an order
where each row comes after its dependencies and its earlier dates (so that none looks
eligible for a moment and is demoted back to pending: row by row, that depends on the
order the store happens to give).
"""

from __future__ import annotations

from collections import Counter
from itertools import groupby
from typing import TYPE_CHECKING

from backfill_ctl.core.gates import DONE
from backfill_ctl.runtime.tasks import ABSENT

if TYPE_CHECKING:
    from array import array
    from collections.abc import Callable, Sequence

    from backfill_ctl.runtime.scheduler import Gate
    from backfill_ctl.runtime.tasks import TaskTable


class Loading:
    """The derivation after a bulk load (the attributes are the scheduler's)."""

    table: TaskTable
    gates: dict[str, Gate]
    _dependents: dict[int, list[int]]
    _remaining: dict[tuple[str, int], Counter[int]]
    _current: dict[tuple[str, int], int]
    _members: dict[tuple[str, int, int], array[int]]
    _running: Counter[str]
    _running_by: Counter[tuple[str, str]]

    _check: Callable[[int], None]  # whether slot k may start now (the scheduler's)

    def _resolve(self, raw: dict[int, Sequence[str] | None]) -> None:
        """The loaded rows' dependencies (ids, by slot) as slots: looked up in C, map()
        over the index, a row at a time; a dependency not loaded gets a slot then."""
        tb = self.table
        slot_of = tb.index.__getitem__
        for k, deps in raw.items():
            if not deps:
                tb.deps.pop(k, None)
                continue
            try:
                tb.deps[k] = tuple(map(slot_of, deps))
            except KeyError:
                tb.deps[k] = tuple(tb.slot(d) for d in deps)

    def _derive(self) -> None:
        """Everything that follows from the table's rows (see the module docstring)."""
        tb = self.table
        satisfied = {c for c, s in enumerate(tb.states.names) if s in DONE} | {ABSENT}
        holds = bytes(c not in satisfied for c in range(256))  # a state code: 1 if it
        state_of, holding = tb.state.__getitem__, holds.__getitem__  # holds dependents
        dependents, unmet = self._dependents, tb.unmet
        for k, deps in tb.deps.items():
            for d in deps:
                dependents.setdefault(d, []).append(k)
            unmet[k] = sum(map(holding, map(state_of, deps)))  # in C, not a step per dep
        self._tally(satisfied)
        for pair, remaining in self._remaining.items():
            self._current[pair] = min(remaining)
        for (backfill, group), sequence in self._current.items():
            for k in self._members[backfill, group, sequence]:
                self._check(k)
        for k in tb.ignoring():
            self._check(k)

    def _tally(self, satisfied: set[int]) -> None:
        """The members of each date, counts by state, running slots, and the unfinished
        instances of each date: a store gives the rows of a date together, so this goes a
        run of alike slots at a time (groupby), not a slot at a time."""
        tb = self.table
        names, states, groups = tb.backfills.names, tb.states.names, tb.groups.names
        alike: Counter[tuple[int, int, int, int, int]] = Counter()
        columns = zip(tb.backfill, tb.group, tb.sequence, tb.state, tb.resource_group, strict=True)
        k = 0
        for key, run in groupby(columns):
            n = len(list(run))
            if key[3] != ABSENT:  # not a dependency's slot only
                alike[key] += n
                self._members[names[key[0]], key[1], key[2]].extend(range(k, k + n))
            k += n
        for (b, group, sequence, code, rg), n in alike.items():
            self.gates[names[b]].counts[states[code]] += n
            if states[code] == "running":
                self._running[groups[rg]] += n
                self._running_by[names[b], groups[rg]] += n
            if code not in satisfied:
                self._remaining[names[b], group][sequence] += n
