"""The controller's hold on its store: the lease, and waiting for it or for a store that
cannot be written yet; the signals that end a wait or the loop.

One controller drives a store at a time: it holds a lease in the store and renews it
every tick; a second controller waits for it (and says so), and takes it over at once
when the holder's process is gone from this host. Every start is fenced by the lease's
epoch (`fence`): a controller that lost the lease starts nothing more.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING

from backfill_ctl.state import LeaseLost, StoreUnavailable

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from backfill_ctl.core.records import Lease
    from backfill_ctl.state import RunStore


class LeaseHolder:
    """The lease and the signals, for `Controller` (which sets these attributes)."""

    store: RunStore
    origin: str
    epoch: int  # of the lease while we hold it: fences every start
    lease_ttl: float
    stopping: bool
    say: Callable[[str], None]
    beat: Callable[[str, str], None]  # (state, detail): what health endpoints read
    _renewed: float  # time.monotonic() of the last renewal
    _store_problem: str  # what was said of a store that cannot be written

    def acquire(self, *, wait: bool = True, poll: float = 1.0) -> bool:
        """Take the lease; with `wait`, wait for it (saying so once) until stopping (a
        SIGTERM or SIGINT while waiting ends the wait: False)."""
        with self._signals():
            return self._acquire(wait, poll)

    def _acquire(self, wait: bool, poll: float) -> bool:
        said = False
        while not self.stopping:
            try:
                lease = self._try_lease()
            except StoreUnavailable as exc:  # a full disk at start: wait for room
                if not wait:
                    raise
                self.beat("store", exc.message)
                self._wait_for_store(exc, poll)
                continue
            if lease.holder == self.origin:
                return True
            if not wait:
                return False
            self.beat("standby", f"waiting for the lease of pid {lease.pid} on {lease.host}")
            if not said:
                left = max(0.0, lease.expires_at - time.time())
                self.say(
                    f"waiting for the lease: a controller (pid {lease.pid} on {lease.host})"
                    f" holds it for {left:.0f} s more unless it renews it"
                )
                said = True
            time.sleep(poll)
        return False

    def _try_lease(self) -> Lease:
        # The lease runs on the wall clock, whatever `clock` says (a --now clock is for
        # scheduling): every controller on the store must agree on it.
        host, pid = socket.gethostname(), os.getpid()
        lease = self.store.acquire_lease(
            self.origin, pid=pid, host=host, at=time.time(), ttl=self.lease_ttl
        )
        if lease.holder != self.origin and lease.host == host and not _alive(lease.pid):
            self.say(f"taking over the lease of a controller that is gone (pid {lease.pid})")
            self.store.take_over_lease(lease.holder)
            lease = self.store.acquire_lease(
                self.origin, pid=pid, host=host, at=time.time(), ttl=self.lease_ttl
            )
        if lease.holder == self.origin:
            if self.epoch and lease.epoch != self.epoch:  # lost and taken again meanwhile
                raise LeaseLost(f"the lease was taken over (epoch {self.epoch} → {lease.epoch})")
            self.epoch = lease.epoch
        self._renewed = time.monotonic()
        return lease

    @property
    def fence(self) -> tuple[str, int]:
        return (self.origin, self.epoch)

    def release(self) -> None:
        self.store.release_lease(self.origin)

    def _wait_for_store(self, exc: StoreUnavailable, poll: float) -> None:
        """Say once per cause that the store cannot be written, then wait `poll` s."""
        if exc.message != self._store_problem:
            self._store_problem = exc.message
            self.say(f"{exc.message}: waiting for it to be writable")
        time.sleep(poll)

    @contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGTERM and SIGINT set `stopping` (the loop ends after its tick) instead of
        killing the process; outside the main thread, signals are left as they are."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self._stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _stop(self, signum: int, frame: object) -> None:
        self.say(
            f"received {signal.Signals(signum).name}: stopping after this tick; running "
            "attempts stay running for the next controller"
        )
        self.stopping = True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
