"""The controller's hold on its store: the lease, and waiting for it or for a store that
cannot be written yet; the signals that end a wait or the loop.

One controller drives a store at a time: it holds a lease in the store and renews it
every third of its duration (the loop ticks early for it); a second controller waits for
it (and says so) and takes it when it expires, or at once when the holder's process is
gone from this host. Every start is fenced by the lease's epoch (`fence`): a controller
that lost the lease starts nothing more, and goes back to waiting for it (`_rejoin`).

Across hosts (controllers sharing a PostgreSQL store):
- the lease's times are the store's clock (`acquire_lease(at=None)`), so a skewed clock
  on one host neither shortens nor stretches anybody's lease;
- "this host" is the host name *and* this pid namespace on this boot (`this_host`): a
  holder's pid is looked up only where it means the same process, so a holder in
  another container or on another machine is taken over only when its lease expired;
- a store that cannot be reached, or is locked by a writer that is paused mid-write, is
  waited for (saying so once), never a reason to exit.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import stat
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backfill_ctl.hashes import sha256
from backfill_ctl.state import LeaseLost, StateError, StoreLocked, StoreUnavailable

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
    _store_backoff: float  # seconds before the next write, while it cannot be written
    _store_retry_at: float  # time.monotonic() of that next write
    running: dict[str, Any]  # the attempts followed (Controller's)
    held_by: Lease | None  # the lease as another controller held it when last tried

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
            except StateError as exc:  # a full disk, a server away, a paused writer
                if not wait or not waitable(exc):
                    raise
                self.beat("store", exc.message)
                self._wait_for_store(exc, poll)
                continue
            self._store_problem = ""
            if lease.holder == self.origin:
                self.held_by = None
                return True
            self.held_by = lease
            if not wait:
                return False
            self.beat("standby", f"waiting for the lease of {holder(lease)}")
            if not said:
                self.say(
                    f"waiting for the lease: a controller ({holder(lease)}) holds it for "
                    f"{remaining(lease)}"
                )
                said = True
            time.sleep(poll)
        return False

    def _try_lease(self) -> Lease:
        # The lease runs on the store's clock, whatever `clock` says (a --now clock is
        # for scheduling): every controller on the store must agree on it.
        host, pid = this_host(), os.getpid()
        lease = self.store.acquire_lease(self.origin, pid=pid, host=host, ttl=self.lease_ttl)
        if lease.holder != self.origin and lease.host == host and not _alive(lease.pid):
            self.say(f"taking over the lease of a controller that is gone (pid {lease.pid})")
            self.store.take_over_lease(lease.holder)
            lease = self.store.acquire_lease(self.origin, pid=pid, host=host, ttl=self.lease_ttl)
        if lease.holder == self.origin:
            if self.epoch and lease.epoch != self.epoch:  # lost and taken again meanwhile
                raise LeaseLost(f"the lease was taken over (epoch {self.epoch} → {lease.epoch})")
            self.epoch = lease.epoch
        self._renewed = time.monotonic()
        return lease

    def _renew_if_due(self) -> None:
        """Renew the lease every third of its duration; LeaseLost if another holds it."""
        if time.monotonic() - self._renewed > self.lease_ttl / 3:
            lease = self._try_lease()
            if lease.holder != self.origin:
                raise LeaseLost(f"lost the lease to {holder(lease)}")

    def _rest(self, interval: float) -> None:
        """Sleep between ticks: `interval`, or less when the lease is due for renewal
        (unless the store cannot be written: its backoff decides then)."""
        if not self._store_problem:
            due = self._renewed + self.lease_ttl / 3 - time.monotonic()
            interval = min(interval, max(due, 0.05))
        time.sleep(interval)

    def _forget(self) -> None:
        """What a controller that lost the lease lets go of (Controller's)."""
        raise NotImplementedError

    def load(self, *, wait: bool = False, poll: float = 1.0) -> None:
        raise NotImplementedError

    def _rejoin(self, poll: float) -> bool:
        """After the lease was lost: forget what was followed (the new holder adopted
        it), wait for the lease as a standby, then load and adopt as at start. False
        when a signal ended the wait."""
        self._forget()
        self.epoch = 0
        self.beat("standby", "waiting for the lease again")
        if not self._acquire(True, poll):
            return False
        self.load(wait=True, poll=poll)
        self.say(f"took the lease again (epoch {self.epoch}): driving the store")
        return not self.stopping

    @property
    def fence(self) -> tuple[str, int]:
        return (self.origin, self.epoch)

    def release(self) -> None:
        self.store.release_lease(self.origin)

    def _store_failed(self, exc: StateError) -> None:
        """Say what is wrong (once an outage: a server that restarts first ends the
        connection, then refuses new ones), and wait longer each time before the next
        write (0.5 s doubling to 30 s)."""
        self._store_backoff = min(30.0, max(0.5, self._store_backoff * 2))
        self._store_retry_at = time.monotonic() + self._store_backoff
        said, self._store_problem = self._store_problem, exc.message
        if not said:
            self.say(
                f"{exc.message}: nothing new starts; {len(self.running)} running attempt(s)"
                f" are followed and what they do is kept until it can be written "
                f"(retrying in {self._store_backoff:.1f} s, then less often)"
            )

    def _wait_for_store(self, exc: StateError, poll: float) -> None:
        """Say once an outage that the store cannot be written, then wait `poll` s."""
        said, self._store_problem = self._store_problem, exc.message
        if not said:
            self.say(f"{exc.message}: waiting for it to be writable")
        time.sleep(poll)

    @contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGTERM, SIGINT and SIGHUP set `stopping` (the loop ends after its tick)
        instead of killing the process; outside the main thread, signals are left as they
        are."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self._stop) for s in STOPPING}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _stop(self, signum: int, frame: object) -> None:
        if signum == signal.SIGHUP:
            hung_up()
        self.say(
            f"received {signal.Signals(signum).name}: stopping after this tick; running "
            "attempts stay running for the next controller"
        )
        self.stopping = True


# What ends the loop after its tick: a terminal's hangup (an ssh session that dropped)
# too, so that the lease is let go of rather than left to expire.
STOPPING = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def hung_up() -> None:
    """The terminal is gone (SIGHUP): what would be written to it (where a write now
    fails) goes to /dev/null instead, so the loop can end as it does on SIGTERM."""
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        nowhere = os.fstat(null).st_rdev
        for fd in (1, 2):
            with contextlib.suppress(OSError):
                # A terminal: a character device (isatty fails on one that hung up); a
                # file or a pipe (a log) is left as it is.
                seen = os.fstat(fd)
                if stat.S_ISCHR(seen.st_mode) and seen.st_rdev != nowhere:
                    os.dup2(null, fd)
    finally:
        os.close(null)


def holder(lease: Lease) -> str:
    """The controller holding `lease`, as every message names it: `pid 7 on host-a`."""
    return f"pid {lease.pid} on {lease.host}"


def remaining(lease: Lease) -> str:
    """How long `lease` is held yet, by the store's clock as last read: `28 s more unless
    it renews it`."""
    return f"{max(0.0, lease.expires_at - time.time()):.0f} s more unless it renews it"


def waitable(exc: StateError) -> bool:
    """A store to wait for, not to give up on: unreachable, full, or locked by another
    writer (one paused mid-write holds it until its transaction is ended)."""
    return isinstance(exc, StoreUnavailable | StoreLocked)


@functools.cache
def this_host() -> str:
    """This host as the lease records it: the host name, and a digest of the boot and
    the pid namespace, so that two containers of one name never read each other's pids."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = Path("/proc/self/ns/pid").stat().st_ino
    except OSError:
        return os.uname().nodename
    digest = sha256(f"{boot}:{namespace}".encode()).hexdigest()[:8]
    return f"{os.uname().nodename}#{digest}"


def _alive(pid: int) -> bool:
    """Is `pid` a live process here? A zombie (killed, not yet reaped by its parent) is
    not: its lease is taken over at once."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: alive as far as we can tell
    return stat.rsplit(")", 1)[-1].split()[:1] not in (["Z"], ["X"])
