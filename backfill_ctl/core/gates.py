"""Why a waiting instance does not start: one typed blocker, decided once (DESIGN §7).

Pure: `now` is an argument (through `Clock`), never a clock read.

`gate()` is the decision the scheduler makes for every instance it may start, and the
only place its rules are written. They are checked in this order, the first that holds
is the blocker:

1. the backfill is closed: `backfill-stopped`, `backfill-deleted`, `backfill-suspended`;
2. `upstream` (a dependency is not done) and `barrier` (an earlier business date of the
   instance's date group is not done): given to `gate()` as `held` by the caller, who
   knows them (`held()` from store records; the scheduler counts them incrementally);
3. `scheduled-time` (its time has not come and the backfill does not run immediately);
4. `retry-delay` (a retry waits until `not_before`);
5. `execution-window` (the node's clock is outside the backfill's execution window).

`resources()` is the last cause, `resources`: the scheduler decides it over all the
candidates of a resource group at once (who gets the free slots).

A `Blocker` is stored with the instance as JSON (`to_json()` / `from_json()`) beside
its one rendering, `text`, which `get` and `describe` show.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time
from typing import TYPE_CHECKING, Any, Literal, get_args
from zoneinfo import ZoneInfo

from backfill_ctl.core.records import STATES
from backfill_ctl.spec.model import TimeWindow

if TYPE_CHECKING:
    from collections.abc import Sequence

    from backfill_ctl.core.records import BackfillRecord, InstanceRecord

DONE = frozenset({"succeeded", "cancelled"})  # lets dependents and the date barrier go on
DateCounts = Mapping[tuple[int, int, str, str], int]  # (group, sequence, bizdate, state) -> n
DEPENDENCIES_SHOWN = 10  # in the text of an upstream blocker

Cause = Literal[
    "backfill-stopped",
    "backfill-suspended",
    "backfill-deleted",
    "upstream",
    "barrier",
    "scheduled-time",
    "retry-delay",
    "execution-window",
    "resources",
]
CAUSES: tuple[Cause, ...] = get_args(Cause)

# The details each cause keeps (its JSON keys besides "cause").
_DETAILS: dict[Cause, tuple[str, ...]] = {
    "backfill-stopped": ("backfill",),
    "backfill-suspended": ("backfill",),
    "backfill-deleted": ("backfill",),
    "upstream": ("dependencies",),
    "barrier": ("date_group", "sequence", "bizdate", "left"),
    "scheduled-time": ("at", "timezone"),
    "retry-delay": ("at", "timezone"),
    "execution-window": ("opens", "closes", "timezone"),
    "resources": ("group", "busy", "slots"),
}
_STATE: dict[Cause, str] = {  # the instance state a blocker keeps it in
    "scheduled-time": "waiting-for-time",
    "retry-delay": "waiting-for-time",
    "resources": "waiting-for-resources",
}
_HINTS = {"failed": " (rerun or set-success it)", "frozen": " (unfreeze it)"}


def _s(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


@dataclass(frozen=True, slots=True)
class Blocker:
    """Why an instance waits: a cause and its details (only those of its cause are set)."""

    cause: Cause
    backfill: str = ""  # backfill-*
    dependencies: tuple[tuple[str, str], ...] = ()  # upstream: (id, state) not done
    date_group: int = 0  # barrier: the earlier date not done, and its instances by state
    sequence: int = 0
    bizdate: str = ""
    left: tuple[tuple[str, int], ...] = ()
    at: float = 0.0  # scheduled-time, retry-delay: epoch seconds
    timezone: str = ""  # the node's clock: scheduled-time, retry-delay, execution-window
    opens: str = ""  # execution-window: "HH:MM"
    closes: str = ""
    group: str = ""  # resources: the resource group, its busy slots and its slots
    busy: int = 0
    slots: int = 0

    @property
    def state(self) -> str:
        """The waiting state the instance is in while this holds it back."""
        return _STATE.get(self.cause, "pending")

    @property
    def text(self) -> str:
        """The one human sentence for this blocker (get's REASON, describe's Why it waits)."""
        c = self.cause
        if c == "backfill-stopped":
            return (
                f"backfill {self.backfill} is stopped: nothing new starts until it is resumed "
                f"(backfillctl resume backfill/{self.backfill}) or one of its instances is rerun"
            )
        if c == "backfill-deleted":
            return f"backfill {self.backfill} is deleted: apply its spec again to bring it back"
        if c == "backfill-suspended":
            return (
                f"backfill {self.backfill} is suspended (spec.suspend): nothing new starts "
                "until it is applied with suspend: false"
            )
        if c == "upstream":
            return self._upstream()
        if c == "barrier":
            n = sum(k for _, k in self.left)
            by_state = dict(self.left)
            counts = ", ".join(f"{by_state[s]} {s}" for s in STATES if by_state.get(s))
            return (
                f"the earlier business date {self.bizdate} of date group {self.date_group} "
                f"(sequence {self.sequence}) still has {_s(n, 'instance')} not succeeded"
                + (f": {counts}" if counts else "")
            )
        if c == "scheduled-time":
            return f"scheduled at {self._at():%Y-%m-%d %H:%M %z}"
        if c == "retry-delay":
            return f"retrying at {self._at():%Y-%m-%d %H:%M:%S %z}"
        if c == "execution-window":
            return f"outside the execution window {self.opens}-{self.closes} in {self.timezone}"
        return f"resource group {self.group}: {self.busy} of {self.slots} slots busy"

    def _at(self) -> datetime:
        return datetime.fromtimestamp(self.at, ZoneInfo(self.timezone))

    def _upstream(self) -> str:
        deps = self.dependencies
        shown = ", ".join(f"{i} is {s}{_HINTS.get(s, '')}" for i, s in deps[:DEPENDENCIES_SHOWN])
        more = len(deps) - DEPENDENCIES_SHOWN
        return f"{_s(len(deps), 'dependency', 'dependencies')} not succeeded: {shown}" + (
            f", and {more} more" if more > 0 else ""
        )

    def to_json(self) -> dict[str, Any]:
        """`{"cause": ..., **details}`: what the store keeps."""
        out: dict[str, Any] = {"cause": self.cause}
        for name in _DETAILS[self.cause]:
            value = getattr(self, name)
            if name == "dependencies":
                value = [list(d) for d in value]
            elif name == "left":
                value = dict(value)
            out[name] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Blocker:
        cause = data["cause"]
        if cause not in CAUSES:
            raise ValueError(f"unknown blocker cause {cause!r}")
        details = {k: data[k] for k in _DETAILS[cause] if k in data}
        if "dependencies" in details:
            details["dependencies"] = tuple((str(i), str(s)) for i, s in details["dependencies"])
        if "left" in details:
            details["left"] = tuple((str(s), int(n)) for s, n in details["left"].items())
        return cls(cause, **details)


def resources(group: str, busy: int, slots: int) -> Blocker:
    """No free slot in the resource group: `busy` of its `slots` are taken."""
    return Blocker("resources", group=group, busy=busy, slots=slots)


# -- the gate ----------------------------------------------------------------------------


class Clock:
    """`now`, and the time of day (to the minute) on each node's clock, computed once."""

    __slots__ = ("_times", "now")

    def __init__(self, now: float) -> None:
        self.now = now
        self._times: dict[str, time] = {}

    def at(self, timezone: str) -> time:
        t = self._times.get(timezone)
        if t is None:
            t = datetime.fromtimestamp(self.now, ZoneInfo(timezone)).time()
            t = self._times[timezone] = t.replace(second=0, microsecond=0)
        return t


def window(execution_window: Sequence[str] | None) -> TimeWindow | None:
    """A stored execution window ("HH:MM", "HH:MM") as a TimeWindow; None when unset."""
    if not execution_window:
        return None
    opens, closes = execution_window
    return TimeWindow(time.fromisoformat(opens), time.fromisoformat(closes))


@dataclass(frozen=True, slots=True)
class BackfillGate:
    """What a backfill's settings let through (built once per record, not per instance)."""

    closed: Blocker | None
    run_immediately: bool
    window: TimeWindow | None

    @classmethod
    def of(cls, record: BackfillRecord) -> BackfillGate:
        closed: Blocker | None = None
        if record.status != "active":  # gc'd ("collected") is deleted with its instances
            cause: Cause = "backfill-stopped" if record.status == "stopped" else "backfill-deleted"
            closed = Blocker(cause, backfill=record.name)
        elif record.suspended:
            closed = Blocker("backfill-suspended", backfill=record.name)
        return cls(closed, record.run_immediately, window(record.execution_window))


def gate(
    backfill: BackfillGate,
    cyctime: float,
    timezone: str,
    not_before: float | None,
    clock: Clock,
    held: Blocker | None = None,
) -> Blocker | None:
    """The first rule that holds an instance back, or None: it may start (a slot allowing).

    `cyctime` is its scheduled time, `not_before` a retry's delay; `held` its upstream or
    barrier blocker, if any (see the module docstring for the order).
    """
    if backfill.closed is not None:
        return backfill.closed
    if held is not None:
        return held
    now = clock.now
    if not backfill.run_immediately and cyctime > now:
        return Blocker("scheduled-time", at=cyctime, timezone=timezone)
    if not_before is not None and not_before > now:
        return Blocker("retry-delay", at=not_before, timezone=timezone)
    w = backfill.window
    if w is not None and clock.at(timezone) not in w:
        return Blocker(
            "execution-window", opens=f"{w.start:%H:%M}", closes=f"{w.end:%H:%M}", timezone=timezone
        )
    return None


# -- from store records ----------------------------------------------------------------------
#
# The scheduler stores no upstream or barrier blocker: an instance it knows not to be
# eligible is never looked at per tick (that is what keeps a tick cheap), and what holds
# it back changes with every state change of its dependencies and of the earlier date;
# keeping a stored blocker up to date would cost a row write per waiting dependent on each
# such change. So for a waiting instance without a stored blocker, `decide()` runs the same
# `gate()` on what the store holds.


def held(
    instance: InstanceRecord, deps: Sequence[InstanceRecord], dates: DateCounts
) -> Blocker | None:
    """Its upstream blocker (stored dependencies not done; one that is not stored holds
    nothing back, as in the scheduler), else its barrier blocker; None when a rerun told
    it to ignore both."""
    if instance.ignore_deps:
        return None
    stored = {d.id: d for d in deps}
    open_deps = tuple(
        (d.id, d.state)
        for dep_id in instance.depends_on
        if (d := stored.get(dep_id)) is not None and d.state not in DONE
    )
    if open_deps:
        return Blocker("upstream", dependencies=open_deps)
    left: dict[int, Counter[str]] = {}
    day: dict[int, str] = {}
    for (group, sequence, bizdate, state), n in dates.items():
        if group == instance.group and sequence < instance.sequence and state not in DONE:
            left.setdefault(sequence, Counter())[state] += n
            day[sequence] = bizdate
    if not left:
        return None
    first = min(left)
    return Blocker(
        "barrier",
        date_group=instance.group,
        sequence=first,
        bizdate=day[first],
        left=tuple(sorted(left[first].items())),
    )


def decide(
    instance: InstanceRecord,
    backfill: BackfillRecord,
    deps: Sequence[InstanceRecord],
    dates: DateCounts,
    now: float,
) -> Blocker | None:
    """What `gate()` decides for a waiting instance from store records: `deps` its stored
    dependencies, `dates` its backfill's counts by date (store.date_counts)."""
    return gate(
        BackfillGate.of(backfill),
        instance.cyctime_epoch,
        instance.timezone,
        instance.not_before,
        Clock(now),
        held(instance, deps, dates),
    )
