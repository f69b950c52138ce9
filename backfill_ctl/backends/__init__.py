"""Where attempts run (DESIGN §8): one small protocol, a registry by name.

The controller decides; a backend only does: start an attempt, say which attempts have
ended, cancel one, find one again after a restart, and tell where its log is. Handles
are plain JSON-able dicts, stored with the attempt, so a restarted controller can hand
a backend the attempts it started before.

A backend is registered once, in `BACKENDS` (name -> a factory that imports its module
only when it is made, so the kubernetes client is never loaded for a local run). The
Config's `spec.backend` enum and the backend's settings block (with their defaults) are
the schema's (`schemas/config.schema.json`; the spec layer validates a Config without
importing this one); tests/backends/test_fake.py pins the enum to `BACKENDS`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol
from zoneinfo import ZoneInfo

from backfill_ctl.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from backfill_ctl.core.records import Run
    from backfill_ctl.spec.model import Config

RUNS = "runs"  # the directory of backends' files, beside the store (backends/files.py)
Key = tuple[str, int]  # (instance id, attempt number)
Handle = dict[str, Any]


@dataclass(frozen=True)
class AttemptSpec:
    """Everything a backend needs to run one attempt."""

    instance: str
    number: int
    backfill: str
    node: str
    bizdate: str
    cyctime: str
    run: Run
    timezone: str = "UTC"  # the node's: `$gmtdate` is the run date there
    digest: str = ""
    # When it starts on the controller's clock (`--now` moves it; DESIGN §7), epoch
    # seconds: `$gmtdate` is its date. None: the machine's clock.
    now: float | None = None

    @property
    def key(self) -> Key:
        return (self.instance, self.number)


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended."""

    state: Literal["succeeded", "failed", "lost"]
    exit_code: int | None = None
    message: str | None = None
    started: bool = True  # False: the command never ran (its try is given back)


class BackendError(Exception):
    """An attempt could not be started or handled; the attempt fails with this message."""


class NotStarted(BackendError):
    """The attempt did not start, and may later: the backend is unreachable, refuses our
    credentials, or has no room (a quota). The instance goes back to `state` with this
    message as its reason, no try is counted, and nothing starts for `retry_after` s."""

    def __init__(self, message: str, *, state: str = "pending", retry_after: float = 30.0) -> None:
        super().__init__(message)
        self.state = state
        self.retry_after = retry_after


def resolved_command(
    run: Run, timezone: str, now: float | None = None
) -> tuple[list[str], dict[str, str]]:
    """The argv of an attempt (a string command runs with /bin/sh -c) and its environment,
    with `$gmtdate`, the run date in the node's timezone, resolved now that it is known."""
    argv = ["/bin/sh", "-c", run.command] if isinstance(run.command, str) else list(run.command)
    env = dict(run.env)
    if not any("$gmtdate" in text for text in (*argv, *env.values())):
        return argv, env  # (no date to work out: a tenth of a start's time)
    today = datetime.fromtimestamp(time.time() if now is None else now, ZoneInfo(timezone))
    day = today.strftime("%Y%m%d")
    return (
        [a.replace("$gmtdate", day) for a in argv],
        {k: v.replace("$gmtdate", day) for k, v in env.items()},
    )


class Backend(Protocol):
    name: str

    def start(self, spec: AttemptSpec) -> tuple[Handle, str | None]:
        """Start the attempt; its handle and where its log is (raise BackendError)."""
        ...

    def poll(self, running: Mapping[Key, Handle]) -> dict[Key, Outcome]:
        """The attempts among `running` that have ended (the others still run)."""
        ...

    def cancel(self, key: Key, handle: Handle, reason: str) -> None:
        """Stop an attempt; `poll` reports it failed with `reason` once it is gone.
        BackendError: it cannot be stopped from here (the message says why, and how it
        can be); it goes on, and `poll` reports its end as it comes."""
        ...

    def declare_ended(self, key: Key, handle: Handle, reason: str) -> None:
        """An operator declared the attempt ended (`stop --force`): it runs where this
        backend can follow it only by what it writes there (`adopt` said so), and that
        place is gone with it. `poll` reports it ended: as it ended, if its end is known
        by then, else `lost` with `reason`. BackendError: this backend follows it (the
        message says why): a stop is the way to end it."""
        ...

    def unstarted_handle(self) -> Handle:
        """What an attempt is recorded with when it is begun, until it starts: what
        another controller needs to settle it (`recover`) should this one stop first."""
        ...

    def recover(self, spec: AttemptSpec, begun: Handle) -> Handle | None:
        """After a restart: the handle of an attempt whose start was not recorded, if it
        did start; None if it never did. `begun`: what it was recorded with when it was
        begun (`unstarted_handle`; {} from an earlier version). BackendError: it cannot
        be told yet (the attempt is asked of again later, its instance still running)."""
        ...

    def adopt(self, handle: Handle) -> str | None:
        """A controller takes over an attempt another one followed: what this backend
        cannot do for it from here, and how an operator can (said once); None when it
        follows it as the one that started it would."""
        ...

    def log_text(self, handle: Handle, log: str | None) -> str:
        """The attempt's log so far."""
        ...

    def wait(self, timeout: float) -> None:
        """Return when an attempt may have ended, or after `timeout` seconds."""
        ...

    def check(self) -> list[tuple[str, bool, str]]:
        """What `backfillctl backend check` shows: (what, ok, detail) for each thing the
        backend needs (a connection, permissions, a writable directory)."""
        ...

    def close(self) -> None:
        """Let go of connections and threads."""
        ...


class Anywhere:
    """The part of `Backend` of a backend that follows its attempts alike from every
    controller (a cluster's API; memory): nothing to record of where an attempt is
    begun, and nothing out of reach."""

    def unstarted_handle(self) -> Handle:
        return {}

    def adopt(self, handle: Handle) -> str | None:
        return None

    def declare_ended(self, key: Key, handle: Handle, reason: str) -> None:
        raise BackendError("the backend follows it from every controller: stop it instead")


def _default_config() -> Config:
    from backfill_ctl.spec.model import Config

    return Config()


@dataclass(frozen=True)
class BackendContext:
    """What a backend is made with: where the store lives, the Config, the store's
    identity, and this process's spec root."""

    state_dir: Path  # where the state store lives; backends keep files next to it
    config: Config = field(default_factory=_default_config)
    store_id: str = ""  # the state store's identity: what a backend leaves outside is tagged
    # This process runs the controller loop: it may take charge of what attempts leave
    # behind (the local backend becomes their subreaper).
    supervise: bool = False
    # Where the attempts this process starts run (a run's `working_dir` is relative to it):
    # its own checkout, as the CLI's `spec_root` finds it, links kept (a git-sync link
    # followed to whichever checkout it points at when an attempt starts); never the
    # checkout of whoever applied the instances. None: the current directory.
    spec_root: str | None = None

    @property
    def runs(self) -> Path:
        """Files of attempts (logs, pid and status files): one directory per store, so
        that a new store never meets the files of one that was thrown away."""
        return self.state_dir / RUNS / self.store_id if self.store_id else self.state_dir / RUNS


def _local(ctx: BackendContext) -> Backend:
    from backfill_ctl.backends.environment import own_variables
    from backfill_ctl.backends.local import LocalBackend

    hidden = own_variables(ctx.config.smtp)
    return LocalBackend(
        ctx.runs,
        supervise=ctx.supervise,
        top=ctx.state_dir / RUNS,
        spec_root=ctx.spec_root,
        hidden=hidden,
    )


def _fake(ctx: BackendContext) -> Backend:
    from backfill_ctl.backends.fake import FakeBackend

    return FakeBackend()


def _kubernetes(ctx: BackendContext) -> Backend:
    try:
        from backfill_ctl.backends.kubernetes import KubernetesBackend
    except ImportError as exc:
        raise UsageError(
            f"the kubernetes backend needs the kubernetes client ({exc})",
            hint="pip install 'backfillctl[kubernetes]'",
        ) from None
    return KubernetesBackend(
        ctx.config.kubernetes,
        runs=ctx.state_dir / RUNS,
        store_id=ctx.store_id,
        max_log_size=ctx.config.retention.max_log_size,
    )


BACKENDS: dict[str, Callable[[BackendContext], Backend]] = {
    "local": _local,
    "kubernetes": _kubernetes,
    "fake": _fake,
}
TEST_ONLY = frozenset({"fake"})  # registered, but not a value of the Config's spec.backend


def make_backend(name: str, ctx: BackendContext) -> Backend:
    if name not in BACKENDS:
        raise UsageError(f"unknown backend {name!r}", hint=f"use one of {', '.join(BACKENDS)}")
    return BACKENDS[name](ctx)
