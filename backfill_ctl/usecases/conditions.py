"""What `backfillctl wait` waits for: a condition of backfills, judged from the store.

A condition is one of `CONDITIONS`, judged on a backfill's phase (progress.phase, what
`get` shows as STATUS): met; impossible (it can no longer be met without an operator:
waiting for Succeeded and it failed, or it was deleted); or not yet. `wait_until` polls
a judgement until it is met by all, impossible for one, or out of time; the clock and
the sleep are arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from backfill_ctl.errors import UsageError, did_you_mean
from backfill_ctl.usecases.progress import Phase, phase

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from backfill_ctl.core.records import BackfillRecord

CONDITIONS = ("Succeeded", "Failed", "Finished")
_MET: dict[str, frozenset[Phase]] = {
    "Succeeded": frozenset({"Succeeded"}),
    "Failed": frozenset({"Failed"}),
    "Finished": frozenset({"Succeeded", "Failed"}),
}
_GONE: frozenset[Phase] = frozenset({"Deleted", "Collected"})
_IMPOSSIBLE: dict[str, frozenset[Phase]] = {
    "Succeeded": _GONE | {"Failed"},
    "Failed": _GONE | {"Succeeded"},
    "Finished": _GONE,
}


class Verdict(StrEnum):
    met = "met"
    impossible = "impossible"
    pending = "pending"


@dataclass(frozen=True, slots=True)
class Judged:
    """One backfill's phase and what it means for the condition."""

    name: str
    phase: Phase
    verdict: Verdict


def parse(text: str) -> str:
    """`condition=Succeeded` (any case) -> `Succeeded`; else a UsageError."""
    kind, _, name = text.partition("=")
    if kind.strip().lower() != "condition" or not name:
        raise UsageError(
            f"--for={text}: expected condition=NAME",
            hint=f"one of: {', '.join(f'condition={c}' for c in CONDITIONS)}",
        )
    found = next((c for c in CONDITIONS if c.lower() == name.strip().lower()), None)
    if found is None:
        raise UsageError(
            f"--for={text}: unknown condition {name!r}",
            hint=did_you_mean(name, CONDITIONS) or f"one of: {', '.join(CONDITIONS)}",
        )
    return found


def judge(condition: str, record: BackfillRecord, counts: Mapping[str, int]) -> Judged:
    """Where the backfill `record` (with `counts` per instance state) is for `condition`."""
    now = phase(record, counts)
    if now in _MET[condition]:
        verdict = Verdict.met
    elif now in _IMPOSSIBLE[condition]:
        verdict = Verdict.impossible
    else:
        verdict = Verdict.pending
    return Judged(record.name, now, verdict)


def settled(judged: Sequence[Judged]) -> bool:
    """Nothing more to wait for: all met, or one can no longer be."""
    return all(j.verdict is Verdict.met for j in judged) or any(
        j.verdict is Verdict.impossible for j in judged
    )


def wait_until(
    look: Callable[[], list[Judged]],
    *,
    timeout: float | None,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    interval: float = 1.0,
) -> tuple[list[Judged], bool]:
    """Look, sleep and look again until settled or `timeout` seconds passed on `clock`;
    the last look, and whether it timed out."""
    deadline = None if timeout is None else clock() + timeout
    while True:
        judged = look()
        if settled(judged):
            return judged, False
        if deadline is not None and clock() >= deadline:
            return judged, True
        left = interval if deadline is None else min(interval, max(0.0, deadline - clock()))
        sleep(left)
