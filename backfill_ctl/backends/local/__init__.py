"""The local backend: one process group per attempt on this machine.

Each attempt runs under a tiny /bin/sh wrapper in a new session (its own process group,
whose id is the wrapper's pid), with its output in one log file per attempt:

    <runs>/<backfill>/<instance>.<attempt>.log  stdout and stderr
    <runs>/<backfill>/<instance>.<attempt>.pid  the wrapper's pid (= the group id), then
                                                the command's exit code, when it ends

**An attempt ends when no process of it is left**, not when the wrapper exits. Its
processes are its process group, plus (when the backend supervises: the controller's
own process) descendants that left the group (`setsid`, a daemon's double fork): the
controller is their child subreaper, so they become its children, and each carries
`BACKFILLCTL_ATTEMPT=<base>` in its environment, which says whose they are. So:

- a command that ignores TERM keeps its attempt running after a stop or a timeout until
  the KILL that follows the grace period; a retry never starts beside it;
- a wrapper killed with -9 leaves its command running: the attempt stays running until
  the command and its children are gone (its exit code is then unknown: "lost");
- processes the command leaves behind when it exits (`cmd &`, daemons) are ended with
  the attempt: TERM, then KILL after the grace; the attempt's outcome is the command's.

The pid file and the exit code in it are written by the wrapper itself, so they survive
the controller: after a restart, an attempt with an exit code whose processes are gone has
finished (its code is recorded), one with live processes is adopted, and one with
neither ended without a known code. An attempt the controller began but never recorded
as started is settled by `recover`, which races the wrapper for the pid file (created
exclusively): either the command had started and is adopted, or it never runs. The
controller, the wrapper's parent, also knows the exit code from the wrapper's own exit
status, so an exit code that cannot be written (a full disk, a deleted directory)
loses nothing while the controller that started the attempt runs.

What can escape: a process that both leaves the session and clears its environment
while the controller that started it is not running, and work handed to another service
(ssh, systemd-run, a container engine). An argv command runs without a shell; a string
command runs with `/bin/sh -c`; either in its working directory, which the wrapper enters
after its pid file (one gone since `start` checked it fails the attempt: code 126).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from backfill_ctl.backends import (
    AttemptSpec,
    BackendError,
    Handle,
    Key,
    Outcome,
    resolved_command,
)
from backfill_ctl.backends.local.procs import (
    MARKER,
    alive,
    become_subreaper,
    children_of,
    group_members,
    marked_group,
    marker,
    proc_stat,
    running,
    signal_group,
    signal_members,
)
from backfill_ctl.backends.local.wrapper import (
    NOT_RUN,
    absolute,
    make_private,
    read_pid,
    read_status,
    spawn,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

GRACE = 5.0  # seconds between TERM and KILL when an attempt is cancelled

__all__ = ["GRACE", "MARKER", "LocalBackend"]


@dataclass
class _Attempt:
    """What this backend knows of one attempt beyond its handle."""

    code: int | None = None  # the command's exit code, once known
    main_done: bool = False  # the wrapper is gone (the command ended, or it was killed)
    cancel: str | None = None  # why it is being stopped
    ending_leftovers: bool = False  # the command ended; what it left is being ended
    kill_at: float | None = None  # when the group gets KILL (after TERM)
    killed: bool = False
    not_run: bool = False  # the wrapper exited before running the command
    leftovers: set[int] = field(default_factory=set)  # processes ended with the attempt


class LocalBackend:
    name = "local"

    def __init__(self, root: Path, *, supervise: bool = False) -> None:
        self.root = root
        self._children: set[int] = set()  # wrappers started here, not yet reaped
        self._attempts: dict[int, _Attempt] = {}  # by group id
        self._escaped: dict[int, int] = {}  # pid of a process that left its group -> group
        self._bases: dict[str, int] = {}  # base path -> group id, for the marker
        self._own: set[int] = set()  # groups this backend started (their ids are fresh)
        self._checked: set[Path] = set()  # directories found private
        self._directories: dict[str, tuple[Path, str, str]] = {}  # `_directory`'s
        self.supervise = supervise and become_subreaper()

    def _private(self, directory: Path) -> None:
        """`directory` made and checked private (`make_private`), once while it exists:
        once it is ours and 0700 nobody else can swap it."""
        if directory not in self._checked or not directory.is_dir():
            make_private(directory, self.root)  # (a deleted one is made again)
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
        argv, own_env = resolved_command(run, spec.timezone)
        env = {**os.environ, **own_env, MARKER: base}
        cwd = ""
        if run.cwd:
            if not Path(run.cwd).is_dir():
                raise BackendError(f"working directory {run.cwd} does not exist")
            cwd = absolute(run.cwd)
        log = f"{base}.log"
        # No file of an earlier run is removed here: a pid file by this attempt's name is
        # a newer controller's claim (`recover`: "it never started"), which a controller
        # paused past its lease must not undo. Each store has a runs directory of its own,
        # so a store that was thrown away leaves no files in the way.
        try:
            fd = self._open_log(directory, log)
            try:
                pid = spawn(f"{absolute_where}/{name}", cwd, argv, env, fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise BackendError(f"cannot start: {exc.strerror}") from exc
        self._children.add(pid)
        self._own.add(pid)
        self._bases[base] = pid
        return {"pid": pid, "base": base}, log

    def _open_log(self, directory: Path, log: str) -> int:
        """The attempt's log, created private and never through a link, in `directory`
        (checked private once; a directory found missing is made and checked again)."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        if directory in self._checked:
            try:
                return os.open(log, flags, 0o600)
            except FileNotFoundError:
                self._checked.discard(directory)
        self._private(directory)
        return os.open(log, flags, 0o600)

    # -- following attempts ----------------------------------------------------------

    def poll(self, running: Mapping[Key, Handle]) -> dict[Key, Outcome]:
        # Orphans this process inherited matter once an attempt's wrapper is gone (do
        # they keep it running?) or while one is ended (they are signalled too): looked
        # for then, once per poll, not on every poll (a /proc read per thread).
        adopted = not self.supervise
        for handle in running.values():  # (whose an orphan is: all known before it is)
            self._bases.setdefault(str(handle["base"]), int(handle["pid"]))
        ended: dict[Key, Outcome] = {}
        now = time.monotonic()
        for key, handle in running.items():
            pid, base = int(handle["pid"]), str(handle["base"])
            attempt = self._attempts.setdefault(pid, _Attempt())
            if not adopted and (attempt.cancel or attempt.ending_leftovers):
                adopted = self._adopt_orphans()
            if not attempt.main_done and not self._main_ended(pid, base, attempt):
                self._escalate(pid, attempt, now, base)
                continue
            if not adopted:
                adopted = self._adopt_orphans()
            left = self._processes(pid, base)
            if left:
                if (
                    attempt.cancel is None
                    and not attempt.ending_leftovers
                    and attempt.code is not None
                ):
                    # The command ended; what it left behind ends with the attempt.
                    attempt.leftovers |= left
                    attempt.kill_at = now + GRACE
                    attempt.ending_leftovers = True
                    self._signal_all(pid, signal.SIGTERM, base)
                self._escalate(pid, attempt, now, base)
                continue
            ended[key] = self._outcome(attempt)
            self._forget(pid, base)
        return ended

    def _main_ended(self, pid: int, base: str, attempt: _Attempt) -> bool:
        """Has the wrapper (and so the command it waited for) ended? Records the code."""
        if pid in self._children:
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # reaped by someone else: its pid file tells
                done, status = pid, None
            if done == 0:
                return False
            self._children.discard(pid)
            code = None if status is None else os.waitstatus_to_exitcode(status)
            if code == NOT_RUN and read_pid(base) != pid:
                attempt.not_run = True  # its pid file was another's claim, or unwritable
            elif code is not None and code >= 0:  # the wrapper passes the command's code on
                attempt.code = code
            else:  # the wrapper was killed: the command may live on; its file may say
                attempt.code = read_status(base)
            attempt.main_done = True
            return True
        if pid > 0 and alive(pid, base):
            return False
        attempt.code = read_status(base)
        attempt.main_done = True
        return True

    def _processes(self, pgid: int, base: str) -> set[int]:
        """The live processes of an attempt: its group, and those that left it."""
        left = {p for p, g in self._escaped.items() if g == pgid and running(p)}
        if pgid <= 0:
            return left
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return left
        except PermissionError:
            pass
        # Something answers: its live members, not zombies nobody reaped. A group this
        # backend did not start may be long gone and its id reused by someone else's:
        # only processes marked as the attempt's count then.
        return left | group_members(pgid, None if pgid in self._own else base)

    def _escalate(self, pgid: int, attempt: _Attempt, now: float, base: str) -> None:
        if attempt.kill_at is not None and not attempt.killed and now >= attempt.kill_at:
            self._signal_all(pgid, signal.SIGKILL, base)  # it ignored TERM
            attempt.killed = True

    def _signal_all(self, pgid: int, sig: int, base: str) -> None:
        if pgid in self._own:
            signal_group(pgid, sig)
        elif pgid > 0:  # adopted: signal only what is verifiably the attempt's
            signal_members(pgid, base, sig)
        for pid, group in list(self._escaped.items()):
            if group == pgid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)

    def _outcome(self, attempt: _Attempt) -> Outcome:
        code = attempt.code
        if attempt.not_run:
            return Outcome(
                "lost",
                None,
                "the command did not run: its pid file could not be written (a full disk?)"
                " or a newer controller had declared the attempt unstarted",
                started=False,
            )
        if attempt.cancel:  # killed on purpose: the reason is what matters
            return Outcome("failed", code, attempt.cancel)
        if code is None:
            return Outcome(
                "lost",
                None,
                "no exit code is known (its wrapper was killed, or could not write its "
                "status); no process of it is left",
            )
        note = (
            f" (ended {len(attempt.leftovers)} process(es) it left running)"
            if attempt.leftovers
            else ""
        )
        if code == 0:
            return Outcome("succeeded", 0, note.strip(" ()") or None)
        return Outcome("failed", code, f"exit code {code}{note}")

    def _forget(self, pgid: int, base: str) -> None:
        self._attempts.pop(pgid, None)
        self._own.discard(pgid)
        self._bases.pop(base, None)
        for pid in [p for p, g in self._escaped.items() if g == pgid]:
            del self._escaped[pid]

    def _adopt_orphans(self) -> bool:
        """As the subreaper, this process inherits what attempts leave behind: reap the
        dead, and note whose the living are (by their marker) so that their attempt
        does not end before them. True (done)."""
        groups = set(self._bases.values())
        for pid in children_of(os.getpid()):
            if pid in self._children:
                continue
            fields = proc_stat(pid)
            if fields is None:
                continue
            # Reap only what is the attempts' (a group of theirs, or seen marked before):
            # another child of this process may belong to code that waits for it itself.
            if fields[0] == "Z" and (pid in self._escaped or int(fields[2]) in groups):
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
                self._escaped.pop(pid, None)
                continue
            if pid in self._escaped:
                continue
            owner = self._bases.get(marker(pid) or "")
            if owner is not None:
                self._escaped[pid] = owner
                attempt = self._attempts.get(owner)
                if attempt is not None and (attempt.cancel or attempt.ending_leftovers):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGTERM if not attempt.killed else signal.SIGKILL)
        return True

    def wait(self, timeout: float) -> None:
        """Sleep until one of our children exits (pidfds), or `timeout` passes."""
        fds = []
        try:
            for pid in list(self._children):
                with contextlib.suppress(ProcessLookupError, OSError):
                    fds.append(os.pidfd_open(pid))
            if fds:
                select.select(fds, [], [], timeout)
            else:
                time.sleep(timeout)
        finally:
            for fd in fds:
                os.close(fd)

    def cancel(self, key: Key, handle: Handle, reason: str) -> None:
        pid = int(handle["pid"])
        self._bases.setdefault(str(handle["base"]), pid)
        attempt = self._attempts.setdefault(pid, _Attempt())
        if attempt.cancel:  # already being stopped
            return
        attempt.cancel = reason
        attempt.kill_at = time.monotonic() + GRACE
        self._signal_all(pid, signal.SIGTERM, str(handle["base"]))

    def recover(self, spec: AttemptSpec) -> Handle | None:
        base = self.root / spec.backfill / f"{spec.key[0]}.{spec.key[1]}"
        pid_file = base.with_suffix(base.suffix + ".pid")
        self._private(base.parent)
        try:
            os.close(os.open(pid_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass  # the wrapper was first: the attempt started
        else:
            return None  # claimed before any wrapper: it never runs
        deadline = time.monotonic() + 2.0  # the wrapper writes its pid right after
        while True:
            pid = read_pid(base)
            if pid is not None:
                return {"pid": pid, "base": str(base)}
            if time.monotonic() > deadline:
                # A wrapper stalled before writing its pid: its marked processes, if any
                # live, are the attempt's; else nothing of it runs and its status decides.
                return {"pid": marked_group(str(base)) or 0, "base": str(base)}
            time.sleep(0.01)

    def check(self) -> list[tuple[str, bool, str]]:
        shell = Path("/bin/sh")
        try:
            self._private(self.root)
            writable = os.access(self.root, os.W_OK)
        except (OSError, BackendError) as exc:
            return [("run /bin/sh", shell.exists(), str(shell)), ("write logs", False, str(exc))]
        return [
            ("run /bin/sh", shell.exists(), str(shell)),
            ("write logs", writable, str(self.root)),
        ]

    def close(self) -> None:
        pass

    def log_text(self, handle: Handle, log: str | None) -> str:
        if not log:
            return ""
        try:
            return Path(log).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
