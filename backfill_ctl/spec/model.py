"""The spec model: frozen, fully typed objects for the documents of a repo.

Objects are built from schema-valid data by `spec.build`. A field the schema gives a
default defaults to it here too, read from the schema (`_schema`) when an object is made
without it (`Config()`, `TimeWindow()`): the schema is the one place a default is written.
The scalar formats of the spec (durations, sizes, times of day) are parsed here, so that
those defaults and `spec.build` make the same values. Every object keeps its `Origin`
(file and document) so later checks can point a diagnostic at the document that caused it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from typing import TYPE_CHECKING, Any, Literal

from backfill_ctl.spec.schema import default

if TYPE_CHECKING:
    from collections.abc import Callable

SelectMethod = Literal["manual", "link", "workspace", "descendants"]
Order = Literal["ascending", "descending"]
AlertWhen = Literal["failure", "success", "always", "never"]
ResourceGroupType = Literal["shared", "exclusive", "serverless"]
FOLLOW_NODE = "follow-node"  # Backfill spec.resourceGroup: each node's own group

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_SIZE = re.compile(r"^(\d+)(B|KB|MB|GB|KiB|MiB|GiB)?$")
_SIZE_UNITS = {
    None: 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
}


# What `datetime` can hold (years 1 to 9999) bounds what a spec may ask for. An instance
# runs the day after its business date, and a parameter shifts a date by at most 36,600
# days, 1,200 months or 100 years (core.timeexpr): business dates (and `--now`) keep a
# century and more from either end, so that planning and rendering cannot overflow.
FIRST_BUSINESS_DATE = date(200, 1, 1)
LAST_BUSINESS_DATE = date(9799, 12, 31)
BUSINESS_DATES = f"{FIRST_BUSINESS_DATE.isoformat()} to {LAST_BUSINESS_DATE.isoformat()}"
# The longest duration (timeouts, delays, retention ages): as far as parameters reach.
MAX_DURATION = timedelta(days=36_600)


def parse_date(text: str) -> date:
    return date.fromisoformat(text)


def is_business_date(day: date) -> bool:
    """Whether `day` lies in the range a business date may take (see above)."""
    return FIRST_BUSINESS_DATE <= day <= LAST_BUSINESS_DATE


def parse_time(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text)
    if not match or not text:
        raise ValueError(f"{text!r} is not a duration like 90s, 2h or 1h30m")
    # The length test first: int() refuses strings of more than 4300 digits.
    limit = int(MAX_DURATION.total_seconds())
    if any(len(g) > len(str(limit)) for g in match.groups() if g):
        raise ValueError(_too_long(text))
    d, h, m, s = (int(g) if g else 0 for g in match.groups())
    seconds = ((d * 24 + h) * 60 + m) * 60 + s
    if seconds > limit:
        raise ValueError(_too_long(text))
    return timedelta(seconds=seconds)


def _too_long(text: str) -> str:
    return f"{text!r} is longer than the limit of {MAX_DURATION.days}d (100 years)"


def parse_size(text: str) -> int:
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size like 3MiB")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)]


def _seconds(text: str) -> float:
    return parse_duration(text).total_seconds()


def _log_ages(ages: dict[str, str]) -> tuple[tuple[ResourceGroupType, timedelta], ...]:
    return tuple((kind, parse_duration(age)) for kind, age in ages.items())  # type: ignore[misc]


def _schema(kind: str, path: str, convert: Callable[[Any], Any] | None = None) -> Callable[[], Any]:
    """The default factory of a field: the schema's default at `path` of `kind`, made
    into the field's type by `convert`; read when an object is made without it."""
    if convert is None:
        return lambda: default(kind, path)
    return lambda: convert(default(kind, path))


@dataclass(frozen=True, slots=True)
class Origin:
    """The document an object was read from."""

    file: str = "<memory>"
    doc: int = 0
    line: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class Workspace:
    """A Workspace: its timezone and operators."""

    name: str
    timezone: str = field(default_factory=_schema("Workspace", "spec.timezone"))
    operators: tuple[str, ...] = field(
        default_factory=_schema("Workspace", "spec.operators", tuple)
    )
    origin: Origin = field(default_factory=Origin, compare=False)


@dataclass(frozen=True, slots=True)
class ResourceGroup:
    """A ResourceGroup: how many instances it runs at once."""

    name: str
    concurrency: int
    type: ResourceGroupType = field(default_factory=_schema("ResourceGroup", "spec.type"))
    origin: Origin = field(default_factory=Origin, compare=False)


@dataclass(frozen=True, slots=True)
class Run:
    """How a node's instance runs: its command or image, retries and limits."""

    command: tuple[str, ...] | str
    image: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    timeout: timedelta | None = None
    retries: int = field(default_factory=_schema("Node", "spec.run.retries"))
    retry_delay: timedelta = field(
        default_factory=_schema("Node", "spec.run.retryDelay", parse_duration)
    )
    cpu: str | None = None
    memory: str | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """An extension check of the Config: a command or a webhook (policies.py)."""

    name: str
    command: tuple[str, ...] | None = None
    url: str | None = None
    timeout: float = field(default_factory=_schema("Config", "spec.policies[].timeout", _seconds))
    index: int = 0  # its place in spec.policies, to point at it


@dataclass(frozen=True, slots=True)
class Period:
    """Dates from `start` to `end`, both inclusive; None is open-ended."""

    start: date | None = None
    end: date | None = None

    def __contains__(self, day: date) -> bool:
        return (self.start is None or day >= self.start) and (self.end is None or day <= self.end)


@dataclass(frozen=True, slots=True)
class Node:
    """A scheduled task of the catalog: its schedule, upstream and run."""

    name: str
    workspace: str
    schedule: str
    run: Run
    owners: tuple[str, ...] = field(default_factory=_schema("Node", "metadata.owners", tuple))
    upstream: tuple[str, ...] = field(default_factory=_schema("Node", "spec.upstream", tuple))
    self_dependent: bool = field(default_factory=_schema("Node", "spec.selfDependent"))
    priority: int = field(default_factory=_schema("Node", "spec.priority"))
    resource_group: str | None = None
    effective: Period = field(default_factory=Period)
    parameters: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    origin: Origin = field(default_factory=Origin, compare=False)


@dataclass(frozen=True, slots=True)
class Selection:
    """Which nodes a Backfill selects (spec.select)."""

    method: SelectMethod
    roots: tuple[str, ...] = ()
    descendants: tuple[str, ...] | int | None = None  # names, or a depth
    start: str | None = None
    ends: tuple[str, ...] = ()
    workspaces: tuple[str, ...] = ()
    include_root: bool = field(default_factory=_schema("Backfill", "spec.select.includeRoot"))
    allow: tuple[str, ...] = field(default_factory=_schema("Backfill", "spec.select.allow", tuple))
    block: tuple[str, ...] = field(default_factory=_schema("Backfill", "spec.select.block", tuple))


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Times of day from `start` to `end`, both inclusive; may cross midnight."""

    start: time = field(default_factory=_schema("Backfill", "spec.timeWindow.from", parse_time))
    end: time = field(default_factory=_schema("Backfill", "spec.timeWindow.to", parse_time))

    def __contains__(self, t: time) -> bool:
        if self.start <= self.end:
            return self.start <= t <= self.end
        return t >= self.start or t <= self.end


@dataclass(frozen=True, slots=True)
class Notifier:
    """Where a Backfill's alert goes: a webhook, a command or an email."""

    webhook: str | None = None
    command: tuple[str, ...] | str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class Backfill:
    """A Backfill: its selection, business dates and how they run."""

    name: str
    select: Selection
    dates: tuple[Period, ...]  # closed ranges as written; single dates have start == end
    time_window: TimeWindow = field(default_factory=TimeWindow)
    run_immediately: bool = field(default_factory=_schema("Backfill", "spec.runImmediately"))
    order: Order = field(default_factory=_schema("Backfill", "spec.order"))
    groups: int = field(default_factory=_schema("Backfill", "spec.groups"))
    resource_group: str = field(default_factory=_schema("Backfill", "spec.resourceGroup"))
    execution_window: TimeWindow | None = None
    alert_when: AlertWhen = field(default_factory=_schema("Backfill", "spec.alerts.when"))
    notify: tuple[Notifier, ...] = ()
    stop_on_risk: bool = field(default_factory=_schema("Backfill", "spec.checks.stopOnRisk"))
    suspend: bool = field(default_factory=_schema("Backfill", "spec.suspend"))
    parameters: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    origin: Origin = field(default_factory=Origin, compare=False)


@dataclass(frozen=True, slots=True)
class Limits:
    """The Config's limits of a selection."""

    max_roots: int = field(default_factory=_schema("Config", "spec.limits.maxRoots"))
    max_nodes: int = field(default_factory=_schema("Config", "spec.limits.maxNodes"))


@dataclass(frozen=True, slots=True)
class Retention:
    """How long the store keeps finished instances and their logs."""

    instances: timedelta = field(
        default_factory=_schema("Config", "spec.retention.instances", parse_duration)
    )
    # by resource group type, in the schema's order
    logs: tuple[tuple[ResourceGroupType, timedelta], ...] = field(
        default_factory=_schema("Config", "spec.retention.logs", _log_ages)
    )
    max_log_size: int = field(
        default_factory=_schema("Config", "spec.retention.maxLogSize", parse_size)
    )


@dataclass(frozen=True, slots=True)
class Smtp:
    """The mail server alerts are sent through."""

    host: str
    sender: str
    port: int = field(default_factory=_schema("Config", "spec.alerts.smtp.port"))
    starttls: bool = field(default_factory=_schema("Config", "spec.alerts.smtp.starttls"))
    username: str | None = None
    password_env: str | None = None


@dataclass(frozen=True, slots=True)
class Kubernetes:
    """Settings of the kubernetes backend (Config spec.kubernetes)."""

    namespace: str = field(default_factory=_schema("Config", "spec.kubernetes.namespace"))
    service_account: str | None = None
    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool | None = None  # None: when $KUBERNETES_SERVICE_HOST is set
    image: str | None = None
    working_dir: str | None = None
    ttl_after_finished: int = field(
        default_factory=_schema("Config", "spec.kubernetes.ttlSecondsAfterFinished")
    )
    # a pod that has not started its command after this long fails the attempt
    start_timeout: int = field(
        default_factory=_schema("Config", "spec.kubernetes.startTimeoutSeconds")
    )
    pod_metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    pod_spec: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Config:
    """The repository's Config: store, backend, limits, checks and policies."""

    state: str = field(default_factory=_schema("Config", "spec.state"))
    backend: str = field(default_factory=_schema("Config", "spec.backend"))
    kubernetes: Kubernetes = field(default_factory=Kubernetes)
    limits: Limits = field(default_factory=Limits)
    # above it, a Backfill is a risk (too-many-instances)
    max_instances: int = field(default_factory=_schema("Config", "spec.checks.maxInstances"))
    retention: Retention = field(default_factory=Retention)
    smtp: Smtp | None = None
    # `--as` (or $BACKFILLCTL_ACTOR, $GITHUB_ACTOR) is mandatory for apply and for the
    # operations on the backfills it applies (a team's shared store; see access.py).
    require_actor: bool = field(default_factory=_schema("Config", "spec.requireActor"))
    policies: tuple[Policy, ...] = ()  # extension checks (policies.py)
    dashboard: str | None = None  # the URL of the store's dashboard (backfillctl ui)
    origin: Origin | None = field(default=None, compare=False)
