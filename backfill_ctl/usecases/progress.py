"""What `get` and `describe` show, computed from what the state store holds (DESIGN §7).

Pure: records and counts in, summaries out; `now` is an argument, never a clock read.

- `phase()`: one word for a backfill (kubectl's STATUS column), from its record and
  its counts per instance state;
- `date_groups()`: per date group, the current business date (the lowest sequence
  that is not all done, the scheduler's date barrier) and the progress;
- `why_waiting()`: why a waiting instance has not started, with the scheduler's rules:
  a closed backfill, dependencies not done, an earlier business date of its group not
  done, its scheduled time, the execution window, a full resource group. The structural
  causes are recomputed from the store (a stored reason can be stale: the scheduler
  only re-evaluates instances that could start); a full resource group is known only
  from the reason the scheduler stored.

"Done" is what the scheduler lets pass: succeeded or cancelled.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from backfill_ctl.core.records import NOT_STARTED, STATES, WAITING
from backfill_ctl.errors import UsageError
from backfill_ctl.usecases.access import access_of, document

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from backfill_ctl.core.records import BackfillRecord, InstanceRecord

DONE = frozenset({"succeeded", "cancelled"})  # lets dependents and the date barrier go on
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


def scheduled(i: InstanceRecord) -> str:
    """The scheduled time on the node's clock: `2024-03-02 02:00`."""
    return i.cyctime[:16].replace("T", " ")


def truncate(text: str | None, width: int) -> str:
    if not text:
        return ""
    text = " ".join(text.split())  # a reason may hold newlines (a command's message)
    return text if len(text) <= width else text[: width - 3] + "..."


def describe_counts(counts: Mapping[str, int]) -> str:
    """`1 failed, 2 running` in the order of STATES; `none` when empty."""
    parts = [f"{counts[s]} {s}" for s in STATES if counts.get(s)]
    return ", ".join(parts) or "none"


# -- label selectors ------------------------------------------------------------------

Selector = tuple[tuple[str, str, str], ...]  # (key, "=" | "!=", value)


def parse_selector(texts: Iterable[str]) -> Selector:
    """`-l team=retail -l ticket!=DATA-1` or `-l team=retail,ticket=DATA-1`: all must hold."""
    out: list[tuple[str, str, str]] = []
    for text in texts:
        for part in text.split(","):
            term = part.strip()
            op = "!=" if "!=" in term else "==" if "==" in term else "="
            key, sep, value = term.partition(op)
            key, value = key.strip(), value.strip()
            if not sep or not key:
                raise UsageError(
                    f"-l {text!r}: {term!r} is not a label selector",
                    hint="write key=value (or key!=value); repeat -l, or separate with commas",
                )
            out.append((key, "!=" if op == "!=" else "=", value))
    return tuple(out)


def matches(labels: Mapping[str, str], selector: Selector) -> bool:
    return all((labels.get(k) == v) == (op == "=") for k, op, v in selector)


# -- data for -o json / yaml --------------------------------------------------------


def backfill_data(record: BackfillRecord, counts: Mapping[str, int]) -> dict[str, Any]:
    """Every field of the record, the phase, and the instances per state."""
    window = record.execution_window
    return {
        "name": record.name,
        "phase": phase(record, counts),
        "status": record.status,
        "suspended": record.suspended,
        "outcome": record.outcome,
        "digest": record.digest,
        "file": record.file,
        "labels": dict(record.labels),
        "appliedAt": utc(record.applied_at),
        "appliedBy": record.applied_by,
        "finishedAt": utc(record.finished_at),
        "notifiedAt": utc(record.notified_at),
        "runImmediately": record.run_immediately,
        "executionWindow": {"from": window[0], "to": window[1]} if window else None,
        "alertWhen": record.alert_when,
        "notify": [dict(n) for n in record.notify],
        "instances": sum(counts.values()),
        "counts": {s: counts.get(s, 0) for s in STATES},
        "spec": document(record.spec),
        "access": access.to_json() if (access := access_of(record)) else None,
    }


def instance_data(i: InstanceRecord) -> dict[str, Any]:
    return {
        "id": i.id,
        "backfill": i.backfill,
        "node": i.node,
        "bizdate": i.bizdate,
        "cyctime": i.cyctime,
        "cyctimeEpoch": i.cyctime_epoch,
        "timezone": i.timezone,
        "group": i.group,
        "sequence": i.sequence,
        "priority": i.priority,
        "resourceGroup": i.resource_group,
        "dryRun": i.dry_run,
        "dryRunReason": i.dry_run_reason,
        "state": i.state,
        "reason": i.reason,
        "attempts": i.attempts,
        "triesLeft": i.tries_left,
        "ignoreDeps": i.ignore_deps,
        "stopRequested": i.stop_requested,
        "dependsOn": list(i.depends_on),
        "run": i.run.to_json(),
        "createdAt": utc(i.created_at),
        "updatedAt": utc(i.updated_at),
        "startedAt": utc(i.started_at),
        "finishedAt": utc(i.finished_at),
    }


# -- progress by date group --------------------------------------------------------------

DateCounts = Mapping[tuple[int, int, str, str], int]  # (group, sequence, bizdate, state) -> n


@dataclass(frozen=True)
class DateGroup:
    group: int
    dates: int
    instances: int
    done: int
    current: int | None  # the lowest sequence not all done; None when the group is done
    bizdate: str | None  # the current business date
    position: int  # 1-based place of the current date among the group's dates
    at_current: dict[str, int]  # instances of the current date, by state
    later: int  # instances of later dates not done: they wait for the current one
    later_dates: int

    @property
    def held_by_failure(self) -> bool:
        """The current date cannot finish by itself: an instance failed or is frozen."""
        return bool(self.at_current.get("failed") or self.at_current.get("frozen"))


def date_groups(dates: DateCounts) -> list[DateGroup]:
    by_group: dict[int, dict[int, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    day: dict[tuple[int, int], str] = {}
    for (group, sequence, bizdate, state), n in dates.items():
        by_group[group][sequence][state] += n
        day[group, sequence] = bizdate
    out = []
    for group in sorted(by_group):
        seqs = by_group[group]
        order = sorted(seqs)
        open_ = [q for q in order if any(n for s, n in seqs[q].items() if s not in DONE)]
        current = open_[0] if open_ else None
        out.append(
            DateGroup(
                group=group,
                dates=len(order),
                instances=sum(sum(c.values()) for c in seqs.values()),
                done=sum(c[s] for c in seqs.values() for s in DONE),
                current=current,
                bizdate=day[group, current] if current is not None else None,
                position=order.index(current) + 1 if current is not None else len(order),
                at_current=dict(seqs[current]) if current is not None else {},
                later=sum(n for q in open_[1:] for s, n in seqs[q].items() if s not in DONE),
                later_dates=len(open_) - 1 if open_ else 0,
            )
        )
    return out


# -- why an instance waits ------------------------------------------------------------------

Cause = Literal[
    "frozen", "backfill", "dependency", "date", "time", "retry", "window", "resources", "ready"
]


@dataclass(frozen=True)
class Blocker:
    cause: Cause
    text: str
    instance: str | None = None  # the dependency, for cause "dependency"


def why_waiting(
    instance: InstanceRecord,
    backfill: BackfillRecord | None,
    deps: Sequence[InstanceRecord],
    dates: DateCounts,
    now: float,
) -> list[Blocker]:
    """What holds `instance` back, in the scheduler's terms; [] when it is not waiting.

    `deps` are its stored dependencies (one that is not stored holds nothing back, as
    in the scheduler); `dates` the counts of its backfill by date (store.date_counts).
    When nothing holds it back, a single "ready" blocker says the controller will
    start it.
    """
    if instance.state == "frozen":
        return [
            Blocker(
                "frozen",
                "it is frozen: it does not start, and what depends on it stays blocked "
                f"(backfillctl unfreeze {instance.id})",
            )
        ]
    if instance.state not in WAITING:
        return []
    out: list[Blocker] = []
    closed = _closed(instance, backfill)
    if closed:
        out.append(Blocker("backfill", closed))
    if not instance.ignore_deps:
        stored = {d.id: d for d in deps}
        for dep_id in instance.depends_on:
            d = stored.get(dep_id)
            if d is not None and d.state not in DONE:
                out.append(
                    Blocker(
                        "dependency",
                        f"dependency {d.id} (node {d.node} at {scheduled(d)}) is {d.state}"
                        f"{_dep_hint(d)}",
                        d.id,
                    )
                )
        barrier = _barrier(instance, dates)
        if barrier:
            out.append(Blocker("date", barrier))
    if backfill is not None and not backfill.run_immediately and instance.cyctime_epoch > now:
        at = datetime.fromisoformat(instance.cyctime)
        out.append(
            Blocker(
                "time",
                f"its scheduled time has not come: {at:%Y-%m-%d %H:%M %z} "
                f"(in {duration(instance.cyctime_epoch - now)})",
            )
        )
    if instance.not_before is not None and instance.not_before > now:
        at = datetime.fromtimestamp(instance.not_before, ZoneInfo(instance.timezone))
        out.append(
            Blocker(
                "retry",
                f"it waits to retry until {at:%Y-%m-%d %H:%M:%S %z} (in "
                f"{duration(instance.not_before - now)}; the node's run.retryDelay is "
                f"{duration(instance.run.retry_delay)})",
            )
        )
    window = _outside_window(instance, backfill, now)
    if window:
        out.append(Blocker("window", window))
    if not out and instance.state == "waiting-for-resources":
        out.append(
            Blocker("resources", f"no free slot: {instance.reason or instance.resource_group}")
        )
    if not out:
        ignored = (
            " (dependencies and the date order are ignored: it was rerun as part of a set)"
            if instance.ignore_deps
            else ""
        )
        out.append(
            Blocker(
                "ready",
                "nothing holds it back: the controller starts it at its next tick "
                f"(is backfillctl controller running?){ignored}",
            )
        )
    return out


def _closed(instance: InstanceRecord, backfill: BackfillRecord | None) -> str | None:
    if backfill is None:
        return f"its backfill {instance.backfill} is not in the state store"
    if backfill.status == "stopped":
        return (
            f"backfill {backfill.name} is stopped: nothing new starts until one of its "
            "instances is rerun"
        )
    if backfill.status == "deleted":
        return f"backfill {backfill.name} is deleted: apply its spec again to bring it back"
    if backfill.suspended:
        return (
            f"backfill {backfill.name} is suspended (spec.suspend): nothing new starts "
            "until it is applied with suspend: false"
        )
    return None


def _dep_hint(d: InstanceRecord) -> str:
    if d.state == "failed":
        return f" (rerun or set-success it: {truncate(d.reason, 60) or 'no reason recorded'})"
    if d.state == "frozen":
        return " (unfreeze it)"
    return ""


def _barrier(instance: InstanceRecord, dates: DateCounts) -> str | None:
    """The earlier business date of the instance's date group that is not done."""
    pending: dict[int, Counter[str]] = defaultdict(Counter)
    day: dict[int, str] = {}
    for (group, sequence, bizdate, state), n in dates.items():
        if group == instance.group and sequence < instance.sequence and state not in DONE:
            pending[sequence][state] += n
            day[sequence] = bizdate
    if not pending:
        return None
    first = min(pending)
    counts = pending[first]
    n = sum(counts.values())
    return (
        f"the earlier business date {day[first]} of date group {instance.group} "
        f"(sequence {first}) still has {n} instance{'' if n == 1 else 's'} not succeeded: "
        f"{describe_counts(counts)}"
    )


def _outside_window(
    instance: InstanceRecord, backfill: BackfillRecord | None, now: float
) -> str | None:
    if backfill is None or not backfill.execution_window:
        return None
    opens, closes = (time.fromisoformat(t) for t in backfill.execution_window)
    clock = datetime.fromtimestamp(now, ZoneInfo(instance.timezone)).time()
    clock = clock.replace(second=0, microsecond=0)
    inside = opens <= clock <= closes if opens <= closes else clock >= opens or clock <= closes
    if inside:
        return None
    return (
        f"outside the execution window {opens:%H:%M}-{closes:%H:%M} "
        f"(it is {clock:%H:%M} in {instance.timezone})"
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
