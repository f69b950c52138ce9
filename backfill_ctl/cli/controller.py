"""`backfillctl controller PATHS`: the long-running reconcile-and-schedule loop."""

from __future__ import annotations

import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from backfill_ctl.cli.backend import require_ready
from backfill_ctl.cli.console import err
from backfill_ctl.cli.options import (
    ActorOpt,
    NowOpt,
    PathsArg,
    resolve_actor,
    resolve_now,
    run_clock,
)
from backfill_ctl.cli.state import StateOpt, backend_for, open_state, spec_root
from backfill_ctl.errors import BackfillError
from backfill_ctl.spec.loader import load_specs
from backfill_ctl.spec.source import YAML_SUFFIXES
from backfill_ctl.state import StoreUnavailable
from backfill_ctl.usecases import reconcile
from backfill_ctl.usecases.check import run_check
from backfill_ctl.usecases.policies import with_policies

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
LEASE_TTL = 30.0  # the controller's default (controller.LEASE_TTL, without importing it)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime

    from backfill_ctl.spec.loader import Specs
    from backfill_ctl.state import StateStore


def fingerprint(paths: Sequence[str]) -> tuple[tuple[str, int, int], ...]:
    """Name, size and mtime of every spec file: cheap enough to look at every tick."""
    found = []
    for arg in paths:
        root = Path(arg)
        files = (
            [root]
            if root.is_file()
            else [p for p in root.rglob("*") if p.suffix.lower() in YAML_SUFFIXES]
        )
        for p in files:
            try:
                st = p.stat()
            except OSError:
                continue
            found.append((str(p), st.st_size, st.st_mtime_ns))
    return tuple(sorted(found))


class Reconciler:
    """Applies the specs again whenever their files change (what a merge does), each
    Backfill under an identity whose permissions are checked (DESIGN §7 "Identity").

    A Backfill's identity is the actor of the `apply --as` that recorded it (the merge
    pipeline's `$GITHUB_ACTOR`), else the identity the controller was started with
    (`--as`, `$BACKFILLCTL_ACTOR`): never anything the spec says. Each Backfill is planned
    as its identity, so what that identity may not operate is dry-run or refused exactly
    as `plan --as IDENTITY` shows. A Backfill with no identity is not applied, and the
    controller says why and how to fix it; what the store already holds still runs.
    """

    def __init__(
        self,
        store: StateStore,
        paths: Sequence[str],
        clock: Callable[[], float] = time.time,
        actor: str | None = None,
    ) -> None:
        self.store, self.paths, self.clock, self.actor = store, list(paths), clock, actor
        self.seen: tuple[tuple[str, int, int], ...] = ()

    def __call__(self) -> None:
        current = fingerprint(self.paths)
        if current == self.seen:
            return
        self.seen = current
        try:
            self._apply(load_specs(self.paths))
        except BackfillError as exc:  # a broken spec must not stop the loop
            err(f"cannot apply the specs: {exc.message}")

    def identities(self, specs: Specs) -> dict[str | None, list[str]]:
        """The Backfills of the specs by the identity they are applied as (None: none)."""
        applied = {b.name: b.applied_by for b in self.store.backfills(include_deleted=True)}
        groups: dict[str | None, list[str]] = {}
        for name in sorted(specs.backfills):
            groups.setdefault(applied.get(name) or self.actor, []).append(name)
        return groups

    def _apply(self, specs: Specs) -> None:
        from datetime import UTC, datetime

        now = datetime.fromtimestamp(self.clock(), UTC)
        for identity, names in self.identities(specs).items():
            if identity is None:
                for name in names:
                    origin = specs.backfills[name].origin
                    err(
                        f"{origin.file}: backfill/{name}: not applied by the controller: no "
                        "identity to check its permissions as (it was never applied with "
                        "--as)\n  hint: apply it with backfillctl apply --as USER (the merge "
                        "pipeline does, as $GITHUB_ACTOR), or start the controller with --as"
                    )
                continue
            self._apply_as(specs, identity, names, now)

    def _apply_as(self, specs: Specs, identity: str, names: list[str], now: datetime) -> None:
        result = with_policies(specs, run_check(specs, now, identity))
        mine = set(names)
        errors = [
            f for f in result.findings if f.is_error and (f.backfill is None or f.backfill in mine)
        ]
        if errors:
            err(
                f"backfill/{', backfill/'.join(names)} (as {identity}): {len(errors)} error "
                f"finding(s), not applied (backfillctl check --as {identity} shows them)"
            )
            return
        plan = replace(
            result.plan, backfills=tuple(bp for bp in result.plan.backfills if bp.name in mine)
        )
        at = self.clock()
        wanted = reconcile.desired(specs, plan, spec_root(specs, self.paths), identity, at)
        found = reconcile.diff(wanted, self.store, prune=False)
        changes = reconcile.Changes([c for c in found.backfills if c.name in mine])
        if not changes.empty:
            reconcile.apply(
                self.store,
                changes,
                specs,
                at=at,
                actor=f"controller as {identity}",
                origin="reconcile",
            )
            err(changes.summary(done=True))


def _open_when_writable(flag: str | None, specs: Specs) -> StateStore | None:
    """Open the store; one that cannot be written yet (a full disk) is waited for, saying
    so once. None when SIGTERM or SIGINT came while waiting."""
    stopped: list[int] = []
    said = ""
    while True:
        try:
            return open_state(flag, specs, create=True)
        except StoreUnavailable as exc:
            if exc.message != said:
                said = exc.message
                err(f"{exc.message}: waiting for it to be writable")
        previous = {s: signal.signal(s, lambda n, f: stopped.append(n)) for s in _SIGNALS}
        try:
            time.sleep(1.0)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if stopped:
            return None


def controller_command(
    paths: PathsArg,
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds between ticks when nothing runs.", min=0.05)
    ] = 2.0,
    once: Annotated[bool, typer.Option("--once", help="One tick, then exit.")] = False,
    lease_duration: Annotated[
        float,
        typer.Option(
            "--lease-duration",
            help="Seconds the lease lasts unless renewed (renewed every third of it): how "
            "long a standby waits for a controller that stopped answering.",
            min=1.0,
        ),
    ] = LEASE_TTL,
    now: NowOpt = None,
    actor: ActorOpt = None,
    state: StateOpt = None,
) -> None:
    """Keep the state store in line with the specs, and run what is due.

    Re-applies the specs whenever their files change, starts instances as they become
    ready, records how attempts end, and alerts when backfills finish. Only one
    controller drives a store (a lease); SIGTERM or SIGINT stop it after the current tick,
    leaving running attempts for the next controller to adopt. With --now T, the clock
    that decides when instances are due starts at T.

    Each Backfill is re-applied as the actor of the apply that recorded it, else as
    --as (or $BACKFILLCTL_ACTOR); one with neither is not applied, and says so.
    """
    clock = run_clock(resolve_now(now))
    specs = load_specs(paths)
    store = _open_when_writable(state, specs)
    if store is None:
        err("stopped while waiting for the state store: nothing was done")
        return
    from backfill_ctl.runtime.controller import Controller

    backend = backend_for(specs.config.backend, store, specs.config, supervise=True)
    try:
        require_ready(backend)
        controller = Controller(
            store,
            backend,
            say=err,
            smtp=specs.config.smtp,
            reconcile=Reconciler(store, paths, clock, resolve_actor(actor)),
            clock=clock,
            lease_ttl=lease_duration,
        )
        if not controller.acquire(wait=not once):
            if controller.stopping:  # a signal while waiting: nothing was started
                err("stopped while waiting for the lease: nothing was done")
                return
            err("another controller holds the lease: nothing to do")
            raise typer.Exit(1)
        try:
            controller.load(wait=not once)
            err(f"controller {controller.origin} drives {store.path}")
            controller.run(interval=interval, once=once)
        finally:
            controller.release()
    finally:
        backend.close()
