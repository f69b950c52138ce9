"""The spec model: frozen, fully typed objects for the documents of a repo.

Objects are built from schema-valid data by `spec.build`; the defaults here are the
schema's defaults. Every object keeps its `Origin` (file and document) so later checks
can point a diagnostic at the document that caused it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, time, timedelta
from typing import Any, Literal

SelectMethod = Literal["manual", "link", "workspace", "descendants"]
Order = Literal["ascending", "descending"]
AlertWhen = Literal["failure", "success", "always", "never"]
ResourceGroupType = Literal["shared", "exclusive", "serverless"]
FOLLOW_NODE = "follow-node"


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
    name: str
    timezone: str = "UTC"
    operators: tuple[str, ...] = ()
    origin: Origin = field(default_factory=Origin, compare=False)


@dataclass(frozen=True, slots=True)
class ResourceGroup:
    name: str
    concurrency: int
    type: ResourceGroupType = "shared"
    origin: Origin = field(default_factory=Origin, compare=False)


@dataclass(frozen=True, slots=True)
class Run:
    command: tuple[str, ...] | str
    image: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    timeout: timedelta | None = None
    retries: int = 0
    retry_delay: timedelta = timedelta(seconds=30)
    cpu: str | None = None
    memory: str | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """An extension check of the Config: a command or a webhook (policies.py)."""

    name: str
    command: tuple[str, ...] | None = None
    url: str | None = None
    timeout: float = 30.0
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
    name: str
    workspace: str
    schedule: str
    run: Run
    owners: tuple[str, ...] = ()
    upstream: tuple[str, ...] = ()
    self_dependent: bool = False
    priority: int = 1
    resource_group: str | None = None
    effective: Period = field(default_factory=Period)
    parameters: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    origin: Origin = field(default_factory=Origin, compare=False)


@dataclass(frozen=True, slots=True)
class Selection:
    method: SelectMethod
    roots: tuple[str, ...] = ()
    descendants: tuple[str, ...] | int | None = None  # names, or a depth
    start: str | None = None
    ends: tuple[str, ...] = ()
    workspaces: tuple[str, ...] = ()
    include_root: bool = True
    allow: tuple[str, ...] = ()
    block: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Times of day from `start` to `end`, both inclusive; may cross midnight."""

    start: time = time(0, 0)
    end: time = time(23, 59)

    def __contains__(self, t: time) -> bool:
        if self.start <= self.end:
            return self.start <= t <= self.end
        return t >= self.start or t <= self.end


@dataclass(frozen=True, slots=True)
class Notifier:
    webhook: str | None = None
    command: tuple[str, ...] | str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class Backfill:
    name: str
    select: Selection
    dates: tuple[Period, ...]  # closed ranges as written; single dates have start == end
    time_window: TimeWindow = field(default_factory=TimeWindow)
    run_immediately: bool = False
    order: Order = "ascending"
    groups: int = 1
    resource_group: str = FOLLOW_NODE
    execution_window: TimeWindow | None = None
    alert_when: AlertWhen = "failure"
    notify: tuple[Notifier, ...] = ()
    stop_on_risk: bool = True
    suspend: bool = False
    parameters: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    origin: Origin = field(default_factory=Origin, compare=False)


@dataclass(frozen=True, slots=True)
class Limits:
    max_roots: int = 500
    max_nodes: int = 2000


@dataclass(frozen=True, slots=True)
class Retention:
    instances: timedelta = timedelta(days=30)
    logs: tuple[tuple[ResourceGroupType, timedelta], ...] = (
        ("shared", timedelta(days=7)),
        ("exclusive", timedelta(days=30)),
        ("serverless", timedelta(days=30)),
    )
    max_log_size: int = 3 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Smtp:
    host: str
    sender: str
    port: int = 25
    starttls: bool = False
    username: str | None = None
    password_env: str | None = None


@dataclass(frozen=True, slots=True)
class Kubernetes:
    """Settings of the kubernetes backend (Config spec.kubernetes)."""

    namespace: str = "default"
    service_account: str | None = None
    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool | None = None  # None: when $KUBERNETES_SERVICE_HOST is set
    image: str | None = None
    working_dir: str | None = None
    ttl_after_finished: int = 86_400
    pod_metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    pod_spec: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Config:
    state: str = "sqlite:///.backfillctl/state.db"
    backend: str = "local"
    kubernetes: Kubernetes = field(default_factory=Kubernetes)
    limits: Limits = field(default_factory=Limits)
    max_instances: int = 10_000  # above it, a Backfill is a risk (too-many-instances)
    retention: Retention = field(default_factory=Retention)
    smtp: Smtp | None = None
    # `--as` (or $BACKFILLCTL_ACTOR, $GITHUB_ACTOR) is mandatory for apply and for the
    # operations on the backfills it applies (a team's shared store; see access.py).
    require_actor: bool = False
    policies: tuple[Policy, ...] = ()  # extension checks (policies.py)
    origin: Origin | None = field(default=None, compare=False)
