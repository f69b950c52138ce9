"""What the state store holds: backfills, instances, attempts, events, the lease.

Plain frozen records; the store turns them into rows and back. Times are Unix epoch
seconds (floats), given by the caller, so that tests and the controller decide what
"now" is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from backfill_ctl.spec.model import parse_duration
from backfill_ctl.spec.schema import default

if TYPE_CHECKING:
    from collections.abc import Iterable

InstanceState = Literal[
    "pending",
    "waiting-for-time",
    "waiting-for-resources",
    "running",
    "succeeded",
    "failed",
    "frozen",
    "cancelled",
]
STATES: tuple[InstanceState, ...] = (
    "pending",
    "waiting-for-time",
    "waiting-for-resources",
    "running",
    "succeeded",
    "failed",
    "frozen",
    "cancelled",
)
WAITING: frozenset[str] = frozenset({"pending", "waiting-for-time", "waiting-for-resources"})
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
# Not started, and may still: what apply may change and delete may cancel.
NOT_STARTED: frozenset[str] = WAITING | {"frozen"}
# collected: finished long ago; gc removed its instances, the record remembers it ran.
BackfillStatus = Literal["active", "stopped", "deleted", "collected"]
AttemptState = Literal["starting", "running", "succeeded", "failed", "lost"]


@cache
def retry_delay_default() -> float:
    """run.retryDelay's default in seconds, from the Node schema (read when first needed:
    a record stored before the field existed, or a Run made without one)."""
    return parse_duration(default("Node", "spec.run.retryDelay")).total_seconds()


@dataclass(frozen=True, slots=True)
class Run:
    """How an instance runs: fixed when it is applied (its parameters are resolved)."""

    command: tuple[str, ...] | str
    env: dict[str, str] = field(default_factory=dict)
    # Where the command runs, relative to the spec root of the process that starts the
    # attempt (the controller's, or `apply --wait`'s), resolved then: never a checkout's
    # path, so the same specs applied from any checkout are the same instance. The spec
    # format has no directory of a node's own, so it is "." (that root) for all.
    working_dir: str = "."
    timeout: float | None = None  # seconds
    retries: int = 0
    image: str | None = None
    cpu: str | None = None
    memory: str | None = None
    # seconds a failed attempt waits before its retry
    retry_delay: float = field(default_factory=retry_delay_default)

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.command if isinstance(self.command, str) else list(self.command),
            "env": self.env,
            "workingDir": self.working_dir,
            "timeout": self.timeout,
            "retries": self.retries,
            "retryDelay": self.retry_delay,
            "image": self.image,
            "cpu": self.cpu,
            "memory": self.memory,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Run:
        command = data["command"]
        return cls(
            command=command if isinstance(command, str) else tuple(command),
            env=dict(data.get("env") or {}),
            # Without it: stored before, with `cwd`, the absolute spec root of whoever
            # applied last (a pipeline's clone, since removed, ...): read as the root of
            # whoever runs it, what it always meant to be.
            working_dir=str(data.get("workingDir") or "."),
            timeout=data.get("timeout"),
            retries=int(data.get("retries") or 0),
            retry_delay=float(
                data["retryDelay"] if "retryDelay" in data else retry_delay_default()
            ),
            image=data.get("image"),
            cpu=data.get("cpu"),
            memory=data.get("memory"),
        )


@dataclass(frozen=True, slots=True)
class BackfillRecord:
    """A Backfill as the store holds it: the applied document and its status."""

    name: str
    digest: str
    spec: dict[str, Any]  # the Backfill document as applied
    file: str = ""
    status: BackfillStatus = "active"
    suspended: bool = False
    run_immediately: bool = False
    execution_window: tuple[str, str] | None = None  # "HH:MM", in each node's timezone
    alert_when: str = "failure"
    notify: tuple[dict[str, Any], ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    applied_at: float = 0.0
    applied_by: str | None = None
    finished_at: float | None = None
    outcome: str | None = None  # succeeded | failed, when finished
    notified_at: float | None = None


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    """One instance (a node on a business date) as the store holds it."""

    id: str
    backfill: str
    node: str
    bizdate: str
    cyctime: str  # ISO, with the offset of the node's timezone
    cyctime_epoch: float
    timezone: str
    group: int
    sequence: int
    priority: int
    depends_on: tuple[str, ...]
    run: Run
    resource_group: str
    dry_run_reason: str | None = None
    state: InstanceState = "pending"
    reason: str | None = None  # why it waits, or how it ended
    attempts: int = 0
    tries_left: int = 1  # attempts this run may still take (1 + retries, again on rerun)
    ignore_deps: bool = False  # rerun as part of a set: mutual dependencies are ignored
    stop_requested: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    not_before: float | None = None  # a retry waits until then (run.retryDelay)
    # why it waits, as the scheduler decided: {"cause": ..., details} (see core.gates)
    blocker: dict[str, Any] | None = None

    @property
    def dry_run(self) -> bool:
        return self.dry_run_reason is not None


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One attempt of an instance on a backend, and how it ended."""

    instance: str
    number: int
    backend: str
    state: AttemptState
    started_at: float
    handle: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    message: str | None = None
    log: str | None = None
    finished_at: float | None = None
    log_removed_at: float | None = None  # when gc removed its log (`log` is None since)


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One entry of the store's event log."""

    id: int
    at: float
    actor: str
    kind: str
    backfill: str | None = None
    instance: str | None = None
    from_state: str | None = None
    to_state: str | None = None
    message: str | None = None
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class Lease:
    """Who holds the controller's lease, until when, and its fencing epoch."""

    holder: str
    pid: int
    host: str
    acquired_at: float
    expires_at: float
    epoch: int = 0  # one more with every new holder: fences the starts of the old one


# What the scheduler needs of an instance, as a store reads it: a TaskRow, or a plain
# tuple laid out as one, as the database driver gives it (no object built per row of a
# million; issue 15): dry_run and ignore_deps as truth values (0/1), no dependencies as
# None or ().
TaskTuple = tuple[
    str, str, str, int, int, int, float, str, str, "bool | int", "tuple[str, ...] | None",
    "bool | int", str, "str | None", "float | None",
]  # fmt: skip


class TaskRow(NamedTuple):
    """What the scheduler needs of an instance, named (`TaskTuple` is its plain form)."""

    id: str
    backfill: str
    bizdate: str
    group: int
    sequence: int
    priority: int
    cyctime: float
    timezone: str
    resource_group: str
    dry_run: bool
    deps: tuple[str, ...]
    ignore_deps: bool
    state: str
    reason: str | None
    not_before: float | None = None

    @classmethod
    def of(cls, i: InstanceRecord) -> TaskRow:
        return cls(
            i.id,
            i.backfill,
            i.bizdate,
            i.group,
            i.sequence,
            i.priority,
            i.cyctime_epoch,
            i.timezone,
            i.resource_group,
            i.dry_run,
            i.depends_on,
            i.ignore_deps,
            i.state,
            i.reason,
            i.not_before,
        )


class InstanceAge(NamedTuple):
    """What gc needs of an instance (the store reads just this)."""

    id: str
    backfill: str
    state: str
    resource_group: str
    finished_at: float | None
    created_at: float


class DateSpan(NamedTuple):
    """One business date of a backfill (of one date group and sequence) as its attempts
    ran: the earliest start of an instance's attempt, the latest end of one (None while
    one runs, or before any ended), and its instances by state. A rerun's attempt moves
    its instance's start, so `started` is the earliest start of the current attempts."""

    started: float | None
    finished: float | None
    states: dict[str, int]


# A date's instances in one state: (group, sequence, bizdate), state, how many, their
# earliest start, their latest end of an attempt (what a store's aggregate gives).
SpanRow = tuple[tuple[int, int, str], str, int, "float | None", "float | None"]


def date_spans(rows: Iterable[SpanRow]) -> dict[tuple[int, int, str], DateSpan]:
    """The dates' spans from rows by date and state (or one row per instance)."""
    found: dict[tuple[int, int, str], list[Any]] = {}
    for key, state, n, first, last in rows:
        span = found.setdefault(key, [None, None, {}])
        if first is not None and (span[0] is None or first < span[0]):
            span[0] = first
        if last is not None and (span[1] is None or last > span[1]):
            span[1] = last
        span[2][state] = span[2].get(state, 0) + n
    return {
        key: DateSpan(first, None if states.get("running") else last, states)
        for key, (first, last, states) in found.items()
    }
