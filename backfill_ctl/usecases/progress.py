"""What `get` and `describe` show, computed from what the state store holds (DESIGN §7).

Pure: records and counts in, summaries out; `now` is an argument, never a clock read.

- `phase()`: one word for a backfill (kubectl's STATUS column), from its record and
  its counts per instance state;
- `date_groups()`: per date group, the current business date (the lowest sequence
  that is not all done, the scheduler's date barrier) and the progress;
- `why_waiting()`, `reason()`: why a waiting instance has not started, as the
  blocker the controller decided and stored (core.gates); the rules are written there
  only.

"Done" is what the scheduler lets pass: succeeded or cancelled.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from backfill_ctl.core import gates
from backfill_ctl.core.gates import DONE, Blocker, DateCounts
from backfill_ctl.core.records import NOT_STARTED, STATES, WAITING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from backfill_ctl.core.records import AttemptRecord, BackfillRecord, InstanceRecord, Run

Phase = Literal[
    "Deleted",
    "Collected",
    "Stopped",
    "Suspended",
    "Succeeded",
    "Failed",
    "Running",
    "Waiting",
    "Pending",
]
PHASES: tuple[Phase, ...] = (
    "Deleted",
    "Collected",
    "Stopped",
    "Suspended",
    "Succeeded",
    "Failed",
    "Running",
    "Waiting",
    "Pending",
)


# -- words and times -------------------------------------------------------------------


def phase(record: BackfillRecord, counts: Mapping[str, int]) -> Phase:
    """The first that holds: Deleted, Collected (gc removed its instances), Stopped,
    Suspended, Succeeded / Failed (as the
    controller recorded it finished; or everything has ended and it has not looked yet),
    Running (something runs), Waiting (something waits for its time or a slot), Pending
    (the rest waits for dependencies, an earlier date, or the controller)."""
    if record.status == "deleted":
        return "Deleted"
    if record.status == "collected":
        return "Collected"
    if record.status == "stopped":
        return "Stopped"
    if record.suspended:
        return "Suspended"
    if record.outcome == "succeeded":
        return "Succeeded"
    if record.outcome == "failed":
        return "Failed"
    if counts.get("running", 0):
        return "Running"
    if not any(counts.get(s, 0) for s in NOT_STARTED):
        return "Failed" if counts.get("failed", 0) else "Succeeded"
    if counts.get("waiting-for-time", 0) or counts.get("waiting-for-resources", 0):
        return "Waiting"
    return "Pending"


def waiting(counts: Mapping[str, int]) -> int:
    """Instances that have not started and may: pending and waiting-*."""
    return sum(counts.get(s, 0) for s in WAITING)


def age(seconds: float) -> str:
    """kubectl-like: 45s, 12m, 5h, 3d (hours up to two days)."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 48 * 3600:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def duration(seconds: float) -> str:
    """4s, 3m12s, 2h05m, 3d4h: precise enough for a run."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600}h"


def utc(epoch: float | None) -> str | None:
    """An epoch time as ISO 8601 in UTC (`2024-03-20T01:00:00Z`), None as None."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def log_removed(a: AttemptRecord) -> str | None:
    """`removed by gc at TIME` when gc removed the attempt's log (retention.py), so that
    what shows it does not say the command wrote nothing."""
    return None if a.log_removed_at is None else f"removed by gc at {utc(a.log_removed_at)}"


def scheduled(i: InstanceRecord) -> str:
    """The scheduled time on the node's clock: `2024-03-02 02:00`."""
    return i.cyctime[:16].replace("T", " ")


def truncate(text: str | None, width: int) -> str:
    if not text:
        return ""
    text = " ".join(text.split())  # a reason may hold newlines (a command's message)
    return text if len(text) <= width else text[: width - 3] + "..."


SPEC_ROOT = "the spec root of the controller or apply --wait that starts it"


def working_dir(run: Run, attempts: Sequence[AttemptRecord]) -> str:
    """Where an instance's command runs, as `describe` says it: in the spec root of
    whoever starts each attempt (records.Run), and where the last attempt that says so
    (the local backend's handle) ran."""
    where = SPEC_ROOT if run.working_dir == "." else f"{run.working_dir} in {SPEC_ROOT}"
    ran = next((a for a in reversed(attempts) if a.handle.get("cwd")), None)
    if ran is None:
        return where
    return f"{ran.handle['cwd']} (attempt {ran.number}'s; each attempt runs in {where})"


def describe_counts(counts: Mapping[str, int]) -> str:
    """`1 failed, 2 running` in the order of STATES; `none` when empty."""
    parts = [f"{counts[s]} {s}" for s in STATES if counts.get(s)]
    return ", ".join(parts) or "none"


# -- progress by date group --------------------------------------------------------------


@dataclass(frozen=True)
class DateGroup:
    """The progress of one date group: its dates, instances and current date."""

    group: int
    dates: int
    instances: int
    done: int
    current: int | None  # the sequence of the current date; None when the group is done
    bizdate: str | None  # the current business date: the first not all done
    position: int  # 1-based place of the current date among the group's dates
    at_current: dict[str, int]  # instances of the current date, by state
    later: int  # instances of later dates not done: they wait for the current one
    later_dates: int

    @property
    def held_by_failure(self) -> bool:
        """The current date cannot finish by itself: an instance failed or is frozen."""
        return bool(self.at_current.get("failed") or self.at_current.get("frozen"))


def date_groups(dates: DateCounts) -> list[DateGroup]:
    """Per date group, its business dates in the scheduler's order (sequence, then date).

    Counted by business date, not by sequence: after a Backfill's `groups` changed, the
    instances that had ended keep their old group and sequence while the others are
    renumbered, so one sequence may hold two dates (and a date two sequences).
    """
    by_group: dict[int, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    first: dict[tuple[int, str], int] = {}
    for (group, sequence, bizdate, state), n in dates.items():
        by_group[group][bizdate][state] += n
        first[group, bizdate] = min(sequence, first.get((group, bizdate), sequence))
    return [_date_group(g, by_group[g], first) for g in sorted(by_group)]


def _not_done(counts: Counter[str]) -> int:
    return sum(n for s, n in counts.items() if s not in DONE)


def _date_group(
    group: int, days: Mapping[str, Counter[str]], first: Mapping[tuple[int, str], int]
) -> DateGroup:
    order = sorted(days, key=lambda d: (first[group, d], d))
    open_ = [d for d in order if _not_done(days[d])]
    instances = sum(sum(c.values()) for c in days.values())
    done = sum(c[s] for c in days.values() for s in DONE)
    if not open_:
        return DateGroup(group, len(order), instances, done, None, None, len(order), {}, 0, 0)
    current = open_[0]
    return DateGroup(
        group=group,
        dates=len(order),
        instances=instances,
        done=done,
        current=first[group, current],
        bizdate=current,
        position=order.index(current) + 1,
        at_current=dict(days[current]),
        later=sum(_not_done(days[d]) for d in open_[1:]),
        later_dates=len(open_) - 1,
    )


# -- why an instance waits ------------------------------------------------------------------


def blocker(i: InstanceRecord) -> Blocker | None:
    """The blocker the controller stored with a waiting instance, if any."""
    return Blocker.from_json(i.blocker) if i.blocker else None


def reason(i: InstanceRecord) -> str | None:
    """What `get` shows as REASON: the stored blocker's text, else the stored reason."""
    b = blocker(i)
    return b.text if b is not None else i.reason


def why_waiting(
    instance: InstanceRecord,
    backfill: BackfillRecord | None,
    deps: Sequence[InstanceRecord],
    dates: Callable[[], DateCounts],
    now: float,
) -> str | None:
    """Why `instance` has not started, one sentence; None when it is not waiting.

    The blocker the controller stored, when it stored one. It stores none for an
    instance it knows to wait for a dependency or an earlier date (see core.gates.held:
    it never looks at those per tick), nor before it first looked: then the same
    `gates.decide()` runs on what the store holds (`deps`: its stored dependencies,
    `dates()`: its backfill's counts by date), and when nothing holds it back, the
    controller starts it at its next tick.
    """
    if instance.state == "frozen":
        return (
            "it is frozen: it does not start, and what depends on it stays blocked "
            f"(backfillctl unfreeze {instance.id})"
        )
    if instance.state not in WAITING:
        return None
    if backfill is None:
        return f"its backfill {instance.backfill} is not in the state store"
    b = blocker(instance) or gates.decide(instance, backfill, deps, dates(), now)
    if b is not None:
        return b.text
    ignored = (
        " (dependencies and the date order are ignored: it was rerun as part of a set)"
        if instance.ignore_deps
        else ""
    )
    return (
        "nothing holds it back: the controller starts it at its next tick "
        f"(is backfillctl controller running?){ignored}"
    )


def blocked(
    groups: Sequence[DateGroup], waiting_instances: Iterable[InstanceRecord], stuck: Iterable[str]
) -> list[str]:
    """What cannot go on without an operator: later dates held behind a failed (or frozen)
    date, and waiting instances whose dependency failed or is frozen (`stuck` ids)."""
    out = []
    for g in groups:
        if g.held_by_failure and g.later:
            held = {s: n for s, n in g.at_current.items() if s in ("failed", "frozen")}
            out.append(
                f"date group {g.group}: {g.later} instance{'' if g.later == 1 else 's'} of "
                f"{g.later_dates} later date{'' if g.later_dates == 1 else 's'} wait behind "
                f"{g.bizdate}, which has {describe_counts(held)}"
            )
    stuck_ids = set(stuck)
    n = sum(
        1
        for i in waiting_instances
        if not i.ignore_deps and any(d in stuck_ids for d in i.depends_on)
    )
    if n:
        out.append(
            f"{n} instance{' waits' if n == 1 else 's wait'} for a failed or frozen dependency"
        )
    return out
