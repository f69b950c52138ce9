"""Where attempts run (DESIGN §8): one small protocol, a registry by name.

The controller decides; a backend only does: start an attempt, say which attempts have
ended, cancel one, find one again after a restart, and tell where its log is. Handles
are plain JSON-able dicts, stored with the attempt, so a restarted controller can hand
a backend the attempts it started before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from backfill_ctl.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from backfill_ctl.state.records import Run

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

    @property
    def key(self) -> Key:
        return (self.instance, self.number)


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended."""

    state: Literal["succeeded", "failed", "lost"]
    exit_code: int | None = None
    message: str | None = None


class BackendError(Exception):
    """An attempt could not be started or handled; the attempt fails with this message."""


class Backend(Protocol):
    name: str

    def start(self, spec: AttemptSpec) -> tuple[Handle, str | None]:
        """Start the attempt; its handle and where its log is (raise BackendError)."""
        ...

    def poll(self, running: Mapping[Key, Handle]) -> dict[Key, Outcome]:
        """The attempts among `running` that have ended (the others still run)."""
        ...

    def cancel(self, key: Key, handle: Handle, reason: str) -> None:
        """Stop an attempt; `poll` reports it failed with `reason` once it is gone."""
        ...

    def recover(self, spec: AttemptSpec) -> Handle | None:
        """After a restart: the handle of an attempt whose start was not recorded, if it
        did start; None if it never did."""
        ...

    def log_text(self, handle: Handle, log: str | None) -> str:
        """The attempt's log so far."""
        ...

    def wait(self, timeout: float) -> None:
        """Return when an attempt may have ended, or after `timeout` seconds."""
        ...


@dataclass(frozen=True)
class BackendContext:
    state_dir: Path  # where the state store lives; backends keep files next to it


def _local(ctx: BackendContext) -> Backend:
    from backfill_ctl.backends.local import LocalBackend

    return LocalBackend(ctx.state_dir / "runs")


def _fake(ctx: BackendContext) -> Backend:
    from backfill_ctl.backends.fake import FakeBackend

    return FakeBackend()


BACKENDS: dict[str, Callable[[BackendContext], Backend]] = {"local": _local, "fake": _fake}
NOT_YET = {"kubernetes": "the kubernetes backend is not part of this version yet"}


def make_backend(name: str, ctx: BackendContext) -> Backend:
    if name in NOT_YET:
        raise UsageError(NOT_YET[name], hint="use backend: local in the Config")
    if name not in BACKENDS:
        raise UsageError(f"unknown backend {name!r}", hint=f"use one of {', '.join(BACKENDS)}")
    return BACKENDS[name](ctx)
