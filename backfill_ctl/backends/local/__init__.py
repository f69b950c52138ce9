"""The local backend: one process group per attempt on this machine.

Each attempt's command is started by the shim (`shim.py`), one small process per
controller in a session of its own, as the leader of a new session (so its process
group's id is its pid), with its output in one log file per attempt:

    <runs>/<backfill>/<instance>.<attempt>.log  stdout and stderr
    <runs>/<backfill>/<instance>.<attempt>.pid  the command's pid (= the group id), then
                                                its exit code, when it ends

`start` asks the shim and returns: the handle gets its pid when the shim answers, which
`poll` waits for (so a handle is stored with its pid) and which the controller's wait
takes as it comes. A handle given out before its answer (a controller that stopped right
after a start) is settled by whoever follows it as `recover` settles an attempt: the
shim claims the pid file first, and a claim made after it had 2 s leaves it unstarted.

**An attempt ends when no process of it is left**, not when its command exits. Its
processes are its process group, plus (when the backend supervises: the controller's
own process) descendants that left the group (`setsid`, a daemon's double fork): the
controller is their child subreaper, so they become its children, and each carries
`BACKFILLCTL_ATTEMPT=<base>` in its environment, which says whose they are. So:

- a command that ignores TERM keeps its attempt running after a stop or a timeout until
  the KILL that follows the grace period; a retry never starts beside it;
- processes the command leaves behind when it exits (`cmd &`, daemons) are ended with
  the attempt: TERM, then KILL after the grace; the attempt's outcome is the command's;
- a shim killed with -9 leaves its commands running: their attempts stay running until
  their processes are gone (their exit codes are then unknown: "lost").

The pid file and the exit code in it are written by the shim, which outlives the
controller: after a restart, an attempt with an exit code whose processes are gone has
finished (its code is recorded), one with live processes is adopted, and one with
neither ended without a known code. An attempt the controller began but never recorded
as started is settled by `recover`, which races the shim for the pid file (created
exclusively): either the command had started and is adopted, or it never runs. The shim
also tells the controller each code, so a code that cannot be written (a full disk, a
deleted directory) loses nothing while the controller that started the attempt runs.

**Where an attempt runs** is in its handle (`place.py`: host, boot, pid namespace) and in
what it is begun with (`unstarted_handle`). A controller that takes over a shared store
from one in another place can neither see nor signal those processes: it follows such an
attempt by its pid file alone, running until the surviving shim writes its code there,
and says where it runs and how to end it (`elsewhere.py`). Here that costs a comparison.

What can escape: a process that both leaves the session and clears its environment
while the controller that started it is not running, and work handed to another service
(ssh, systemd-run, a container engine). An argv command runs without a shell; a string
command runs with `/bin/sh -c`; either in its working directory, which the shim's child
enters after the pid file (one gone since `start` checked it fails the attempt: 126): the
spec root of the process that starts it (`spec_root`, links kept), not of whoever applied
it.
Attempts started by earlier versions, under a /bin/sh wrapper, are followed the same way.
"""

from __future__ import annotations

import os
import select
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

from backfill_ctl.backends import (
    AttemptSpec,
    BackendError,
    Handle,
    Key,
    NotStarted,
    Outcome,
    resolved_command,
)
from backfill_ctl.backends.files import make_private
from backfill_ctl.backends.local import elsewhere
from backfill_ctl.backends.local.attempt import Attempt, reap
from backfill_ctl.backends.local.groups import Groups
from backfill_ctl.backends.local.pidfile import absolute, read_status
from backfill_ctl.backends.local.procs import MARKER, alive, become_subreaper
from backfill_ctl.backends.local.spawner import PYTHON, SHIM, Shim, ShimGone
from backfill_ctl.backends.local.starts import Starts

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

GRACE = 5.0  # seconds between TERM and KILL when an attempt is cancelled

__all__ = ["GRACE", "MARKER", "LocalBackend"]


class LocalBackend(Groups):
    name = "local"

    def __init__(
        self,
        root: Path,
        *,
        supervise: bool = False,
        top: Path | None = None,
        spec_root: str | None = None,
        hidden: Collection[str] = (),
    ) -> None:
        self.root = root  # the store's runs directory
        self.top = top or root  # the runs directory it is in: checked too (`make_private`)
        # Where attempts run (BackendContext.spec_root): absolute once, links kept.
        self.spec_root = absolute(spec_root or ".")
        self._attempts: dict[int, Attempt] = {}  # by group id
        self._escaped: dict[int, int] = {}  # pid of a process that left its group -> group
        self._bases: dict[str, int] = {}  # base path -> group id, for the marker
        self._own: set[int] = set()  # groups this backend started (their ids are fresh)
        self._checked: set[Path] = set()  # directories found private
        self._directories: dict[str, tuple[Path, str, str]] = {}  # `_directory`'s
        self._declared: dict[str, str] = {}  # base -> why an operator declared it ended
        self.supervise = supervise and become_subreaper()
        # `hidden`: variables commands do not inherit, besides backfillctl's own
        self._starts = Starts(self._private, hidden)
        self.places = elsewhere.Places(root, self._private)
        self._place = self.places.key  # (this place, as handles record it)
        if self.supervise:  # (it starts while the controller loads: ~15 ms)
            self._starts.shim = Shim(hidden)

    def _private(self, directory: Path) -> None:
        """`directory` made and checked private (`make_private`), once while it exists:
        once it is ours and 0700 nobody else can swap it."""
        if directory not in self._checked or not os.path.isdir(directory):  # noqa: PTH112 (a start's: 4x faster)
            make_private(directory, self.top)  # (a deleted one is made again)
            self._checked.add(directory)

    def _directory(self, backfill: str) -> tuple[Path, str, str]:
        """A backfill's runs directory, as a path, a string and an absolute string (made
        once per backfill: a start builds no Path, a dozen µs each)."""
        if (found := self._directories.get(backfill)) is None:
            d = self.root / backfill
            found = self._directories[backfill] = (d, str(d), absolute(str(d)))
        return found

    def start(self, spec: AttemptSpec) -> tuple[Handle, str | None]:
        directory, where, absolute_where = self._directory(spec.backfill)
        name = f"{spec.key[0]}.{spec.key[1]}"
        base = f"{where}/{name}"
        run = spec.run
        argv, own_env = resolved_command(run, spec.timezone, spec.now)
        env = {**own_env, MARKER: base}  # (over this process's: `Shim.ask`)
        cwd = self._working_dir(run.working_dir)
        log = f"{base}.log"
        # No file of an earlier run is removed here: a pid file by this attempt's name is
        # a newer controller's claim (`recover`: "it never started"), which a controller
        # paused past its lease must not undo. Each store has a runs directory of its own,
        # so a store that was thrown away leaves no files in the way.
        # The shim is asked, not waited for: the handle gets its pid when the shim
        # answers, which `poll` (before the handle is stored) and `cancel` wait for.
        # (`describe` says where it ran; `place`: where its processes live)
        handle: Handle = {"base": base, "cwd": cwd, "place": self._place}
        try:
            self._private(directory)
            self._starts.ask(handle, f"{absolute_where}/{name}", cwd, argv, env)
        except BackendError as exc:  # the runs directory is refused (a symlink): nothing
            raise NotStarted(str(exc)) from None  # was done; it may start once it is fixed
        except OSError as exc:
            raise BackendError(f"cannot start: {exc.strerror}") from exc
        except ShimGone:  # it may have had the request: settled as by a newer controller
            handle = {**self._starts.found(base), "place": self._place}
        return handle, log

    def _working_dir(self, relative: str) -> str:
        """The directory an attempt runs in: `relative` to this process's spec root (as
        the attempt starts: a link git-sync swapped leads to the new checkout), which must
        be a directory."""
        cwd = self.spec_root if relative == "." else os.path.join(self.spec_root, relative)  # noqa: PTH118
        if not os.path.isdir(cwd):  # noqa: PTH112 (a start's: 4x faster)
            raise BackendError(f"working directory {cwd} does not exist")
        return cwd

    def _answered(self, *, wait: bool) -> None:
        """The shims' answers to starts taken (`Starts.answered`); those that started are
        this backend's own."""
        for base, pid in self._starts.answered(wait=wait):
            self._own.add(pid)
            self._bases[base] = pid

    # -- following attempts ----------------------------------------------------------

    def poll(self, running: Mapping[Key, Handle]) -> dict[Key, Outcome]:
        # Orphans this process inherited matter once an attempt's command is gone (do
        # they keep it running?) or while one is ended (they are signalled too): looked
        # for then, once per poll, not on every poll (a /proc read per thread).
        adopted = not self.supervise
        afar, untold = self._take_news(running)
        ended: dict[Key, Outcome] = {}
        now = time.monotonic()
        for key, handle in running.items():
            base = str(handle["base"])
            if (outcome := self._starts.settled.pop(base, None)) is not None:
                ended[key] = outcome
                continue
            if key in untold:  # whether it started cannot be told yet: asked next time
                continue
            if key in afar:  # followed by its pid file alone: its shim's word, else
                # an operator's (`declare_ended`), read after it: a code that came first wins
                if (outcome := elsewhere.ended(base, self._declared)) is not None:
                    ended[key] = outcome
                continue
            pid = self._pid(handle)
            attempt = self._attempts.setdefault(pid, Attempt())
            if not adopted and (attempt.cancel or attempt.ending_leftovers):
                adopted = self._adopt_orphans()
            if not attempt.main_done and not self._main_ended(pid, base, attempt):
                self._escalate(pid, attempt, now, base)
                continue
            if not adopted:
                adopted = self._adopt_orphans()
            left = self._processes(pid, base)
            if left:
                self._end_leftovers(pid, attempt, left, now, base)
                continue
            ended[key] = attempt.outcome()
            self._forget(pid, base)
        return ended

    def _end_leftovers(
        self, pid: int, attempt: Attempt, left: set[int], now: float, base: str
    ) -> None:
        """Processes of an attempt are `left`: if its command ended, they end with it
        (TERM now, KILL after the grace); the KILL once the grace is over."""
        if attempt.cancel is None and not attempt.ending_leftovers and attempt.code is not None:
            attempt.leftovers |= left
            attempt.kill_at = now + GRACE
            attempt.ending_leftovers = True
            self._signal_all(pid, signal.SIGTERM, base)
        self._escalate(pid, attempt, now, base)

    def _take_news(self, running: Mapping[Key, Handle]) -> tuple[set[Key], set[Key]]:
        """Take what the shims said; note each attempt's base and group (whose an orphan
        is: all known before it is). The attempts among `running` that run where this
        process cannot follow their processes (seldom any: one comparison each), and
        those of which it cannot tell yet whether they started (their pid file cannot
        be claimed: a full disk)."""
        self._answered(wait=True)
        for shim in set(self._starts.spawned.values()):
            shim.read()
        afar, untold = set(), set()
        place, settled = self._place, self._starts.settled
        for key, handle in running.items():
            base = str(handle["base"])
            if base in settled:  # it never ran, or its start failed: no pid to find
                continue
            if handle.get("place", place) == place or self.places.away(handle) is None:
                try:
                    self._bases.setdefault(base, self._pid(handle))
                except BackendError:
                    untold.add(key)
            else:
                afar.add(key)
        return afar, untold

    def _main_ended(self, pid: int, base: str, attempt: Attempt) -> bool:
        """Has the command ended (and its code been written)? Records the code."""
        shim = self._starts.spawned.get(pid)
        if shim is not None:
            code = shim.ended.pop(pid, None)
            if code is None and not shim.gone:
                return False
            del self._starts.spawned[pid]
            if code is not None:  # (else its shim died before it: /proc and its file tell)
                attempt.code = code
                attempt.main_done = True
                return True
        if pid > 0 and alive(pid, base):
            return False
        attempt.code = read_status(base)
        if attempt.code is None and pid in self._own and self.supervise:
            attempt.code = reap(pid)  # its shim died: it became our child (subreaper)
        attempt.main_done = True
        return True

    def wait(self, timeout: float) -> None:
        """Sleep until an attempt ended (a shim says so, or said it never ran), or
        `timeout` passes; the answers to starts that come meanwhile are taken, without
        waking the caller."""
        deadline = time.monotonic() + timeout
        while True:
            self._answered(wait=False)
            shims = [s for s in self._starts.shims() if not s.gone]
            left = deadline - time.monotonic()
            if any(s.ended for s in shims) or self._starts.settled or left <= 0:
                return
            if not shims:
                time.sleep(left)
                return
            select.select(shims, [], [], left)
            for shim in shims:
                shim.read()

    def cancel(self, key: Key, handle: Handle, reason: str) -> None:
        if (away := self.places.away(handle)) is not None:
            raise BackendError(elsewhere.out_of_reach(handle, away, self.places.here))
        if str(handle["base"]) in self._starts.asked:
            self._answered(wait=True)
        pid = self._pid(handle)
        if pid <= 0:  # it never ran (its outcome says so), or is gone
            return
        self._bases.setdefault(str(handle["base"]), pid)
        attempt = self._attempts.setdefault(pid, Attempt())
        if attempt.cancel:  # already being stopped
            return
        attempt.cancel = reason
        attempt.kill_at = time.monotonic() + GRACE
        if pid not in self._own:  # adopted: what left its group before gets TERM too
            self._find_escaped(pid, str(handle["base"]))
        self._signal_all(pid, signal.SIGTERM, str(handle["base"]))

    def declare_ended(self, key: Key, handle: Handle, reason: str) -> None:
        if self.places.away(handle) is None:
            raise BackendError("it runs where this controller sees its processes: a stop ends them")
        self._declared[str(handle["base"])] = reason

    def recover(self, spec: AttemptSpec, begun: Handle) -> Handle | None:
        base = str(self.root / spec.backfill / f"{spec.key[0]}.{spec.key[1]}")
        if (away := self.places.away(begun)) is not None:
            return self.places.recover(base, begun, away, self._starts.claimed)
        found = self._starts.claim(base)  # (begun here, or by a version before places)
        if found is not None:
            found["place"] = str(begun.get("place", self._place))
        return found

    def unstarted_handle(self) -> Handle:
        return self.places.unstarted()

    def adopt(self, handle: Handle) -> str | None:
        away = self.places.away(handle)
        return None if away is None else elsewhere.out_of_reach(handle, away, self.places.here)

    def _pid(self, handle: Handle) -> int:
        """The pid of the attempt's first process (its group's id); a handle another
        backend gave out before its shim answered is settled first (`Starts.found`)."""
        if "pid" not in handle:  # (its asker's shim may still have the request)
            handle.update(self._starts.found(str(handle["base"]), patience=2.0))
        return int(handle["pid"])

    def check(self) -> list[tuple[str, bool, str]]:
        shell = Path("/bin/sh")
        found = [
            ("run /bin/sh", shell.exists(), str(shell)),
            ("run the shim", os.access(PYTHON, os.X_OK), f"{PYTHON} {SHIM}"),
        ]
        try:
            self._private(self.root)
            writable = os.access(self.root, os.W_OK)
        except (OSError, BackendError) as exc:
            return [*found, ("write logs", False, str(exc))]
        return [*found, ("write logs", writable, str(self.root))]

    def close(self) -> None:
        self._starts.close()

    def log_text(self, handle: Handle, log: str | None) -> str:
        if not log:
            return ""
        try:
            return Path(log).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
