"""`backfillctl controller PATHS`: the long-running reconcile-and-schedule loop."""

from __future__ import annotations

import contextlib
import errno
import functools
import signal
import time
from typing import TYPE_CHECKING, Annotated

import typer

from backfill_ctl.backends import RUNS, BackendError
from backfill_ctl.backends.files import make_private, state_dir
from backfill_ctl.cli.backend import require_ready
from backfill_ctl.cli.console import err
from backfill_ctl.cli.options import (
    ActorOpt,
    AllowHostOpt,
    NowOpt,
    PathsArg,
    resolve_actor,
    resolve_now,
    run_clock,
)
from backfill_ctl.cli.state import StateOpt, backend_for, open_state, spec_root
from backfill_ctl.errors import UsageError
from backfill_ctl.runtime.lease import STOPPING, holder, remaining, waitable
from backfill_ctl.runtime.reapply import Reconciler
from backfill_ctl.serve.address import parse_address
from backfill_ctl.spec.loader import load_specs
from backfill_ctl.state import StateError

LEASE_TTL = 30.0  # the controller's default (controller.LEASE_TTL, without importing it)
# Why a directory cannot be made now that may pass (room is freed, a disk remounted).
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from backfill_ctl.runtime.controller import Controller
    from backfill_ctl.serve import Server
    from backfill_ctl.spec.loader import Specs
    from backfill_ctl.state import StateStore


def _open_when_writable(flag: str | None, specs: Specs) -> StateStore | None:
    """Open the store; one that cannot be used yet (a full disk, a server away, locked by
    a writer paused mid-write) is waited for, saying so once. None when SIGTERM, SIGINT or SIGHUP
    came while waiting."""
    said = ""
    while True:
        try:
            return open_state(flag, specs, create=True)
        except StateError as exc:
            if not waitable(exc):
                raise
            if exc.message != said:
                said = exc.message
                err(f"{exc.message}: waiting for it to be writable")
        if _stopped_in(1.0):
            return None


def _runs_made(store: StateStore) -> bool:
    """The store's runs directory made (as the backend's readiness check makes it); one
    that cannot be made for want of room (a full disk, no free inode, a quota, a file
    system mounted read-only) is waited for, saying so once, as a store that cannot be
    written is. False when SIGTERM, SIGINT or SIGHUP came while waiting. Any other
    failure (a symlink, another user's, no permission) is left to that check, which
    names it (exit 2)."""
    top = state_dir(store.path) / RUNS
    runs = top / store.store_id if store.store_id else top
    said = ""
    while True:
        try:
            make_private(runs, top)
            return True
        except BackendError:  # refused (a symlink, another user's): the check says so
            return True
        except OSError as exc:
            if exc.errno not in _NO_ROOM:
                return True
            if (why := exc.strerror or str(exc)) != said:
                said = why
                err(f"the runs directory {runs} cannot be made ({why}): waiting until it can be")
        if _stopped_in(1.0):
            return False


def _stopped_in(seconds: float) -> bool:
    """Sleep `seconds`; whether SIGTERM, SIGINT or SIGHUP came meanwhile."""
    stopped: list[int] = []
    previous = {s: signal.signal(s, lambda n, f: stopped.append(n)) for s in STOPPING}
    try:
        time.sleep(seconds)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return bool(stopped)


IntervalOpt = Annotated[
    float, typer.Option("--interval", help="Seconds between ticks when nothing runs.", min=0.05)
]
OnceOpt = Annotated[bool, typer.Option("--once", help="One tick, then exit.")]
ServeOpt = Annotated[
    str | None,
    typer.Option(
        "--serve",
        metavar="ADDR",
        help="Serve /healthz, /readyz and /metrics (and the dashboard) on ADDR: PORT (on "
        "127.0.0.1), HOST:PORT, [IPv6]:PORT, or :PORT (every interface, as in a pod).",
        show_default=False,
    ),
]
LeaseOpt = Annotated[
    float,
    typer.Option(
        "--lease-duration",
        help="Seconds the lease lasts unless renewed (renewed every third of it): how "
        "long a standby waits for a controller that stopped answering.",
        min=1.0,
    ),
]


# shape: over 60 lines only by its docstring, which is --help (with its Examples)
def controller_command(
    paths: PathsArg,
    interval: IntervalOpt = 2.0,
    once: OnceOpt = False,
    lease_duration: LeaseOpt = LEASE_TTL,
    serve: ServeOpt = None,
    allow_host: AllowHostOpt = None,
    now: NowOpt = None,
    actor: ActorOpt = None,
    state: StateOpt = None,
) -> None:
    """Keep the state store in line with the specs, and run what is due.

    Re-applies the specs whenever their files change, starts instances as they become
    ready, records how attempts end, and alerts when backfills finish. Only one
    controller drives a store (a lease; others wait as standbys and take over when it stops
    renewing it); SIGTERM, SIGINT or SIGHUP stop it after the current tick, leaving running
    attempts for the next controller to adopt. With --now T, the clock that decides when
    instances are due starts at T.

    Each Backfill is re-applied as the actor of the apply that recorded it, else as
    --as (or $BACKFILLCTL_ACTOR); one with neither is not applied, and says so.

    \b
    Examples:
      backfillctl controller specs/ --as oncall   # until SIGTERM or SIGINT
      backfillctl controller specs/ --once        # one tick, then exit
      backfillctl controller specs/ --interval 30 --lease-duration 120
      backfillctl controller specs/ --serve :8080     # probes and metrics, in a pod
    """
    address = parse_address(serve) if serve is not None else None
    if allow_host and address is None:
        raise UsageError("--allow-host names who may ask for pages: it needs --serve")
    clock = run_clock(resolve_now(now))
    specs = load_specs(paths)
    store = _open_when_writable(state, specs)
    if store is None:
        err("stopped while waiting for the state store: nothing was done")
        return
    if not _runs_made(store):
        err("stopped while waiting for the runs directory: nothing was done")
        return
    from backfill_ctl.runtime.controller import Controller

    root = spec_root(specs, paths)
    backend = backend_for(specs.config.backend, store, specs.config, supervise=True, root=root)
    try:
        require_ready(backend)
        controller = Controller(
            store,
            backend,
            say=err,
            smtp=specs.config.smtp,
            root=root,
            reconcile=Reconciler(store, paths, clock, resolve_actor(actor), say=err),
            clock=clock,
            lease_ttl=lease_duration,
        )
        reopen = functools.partial(open_state, state, specs)
        with _serving(address, allow_host or [], controller, reopen, interval) as server:
            _drive(controller, store, interval, once, server)
    finally:
        backend.close()


@contextlib.contextmanager
def _serving(
    address: tuple[str, int] | None,
    allow_hosts: list[str],
    controller: Controller,
    reopen: Callable[[], StateStore],
    interval: float,
) -> Iterator[Server | None]:
    """The endpoints beside the loop, told by its beats; stopped with it."""
    if address is None:
        yield None
        return
    from backfill_ctl.serve import SHARE, Health, Server

    health = Health(stale=max(60.0, 10 * interval))
    controller.beat = health.beat
    server = Server(
        address, reopen, controller=controller, health=health, allow_hosts=allow_hosts, share=SHARE
    )
    err(f"serving /healthz, /readyz and /metrics on {server.url}")
    try:
        yield server
    finally:
        server.stop()


def _drive(
    controller: Controller, store: StateStore, interval: float, once: bool, server: Server | None
) -> None:
    """The lease, the load, then the loop until stopped."""
    if not controller.acquire(wait=not once, poll=min(1.0, interval)):
        if controller.stopping:  # a signal while waiting: nothing was started
            err("stopped while waiting for the lease: nothing was done")
            return
        other = controller.held_by
        who = f" ({holder(other)})" if other else ""
        left = f" for {remaining(other)}" if other else ""
        err(f"another controller{who} holds the lease{left}: nothing to do")
        raise typer.Exit(1)
    try:
        controller.load(wait=not once, poll=min(1.0, interval))
        err(f"controller {controller.origin} drives {store.path}")
        controller.run(interval=interval, once=once, on_tick=server.observe if server else None)
    finally:
        controller.release()
