"""The local backend: one process group per attempt on this machine.

Each attempt runs under a tiny /bin/sh wrapper in a new session (its own process group,
whose id is the wrapper's pid), with its output in one log file per attempt:

    <runs>/<backfill>/<instance>.<attempt>.log     stdout and stderr
    <runs>/<backfill>/<instance>.<attempt>.pid     the wrapper's pid (= the group id)
    <runs>/<backfill>/<instance>.<attempt>.status  the command's exit code, when it ends

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

The pid and status files are written by the wrapper itself, so they survive the
controller: after a restart, an attempt with a status file whose processes are gone has
finished (its code is recorded), one with live processes is adopted, and one with
neither ended without a known code. An attempt the controller began but never recorded
as started is settled by `recover`, which races the wrapper for the pid file (created
exclusively): either the command had started and is adopted, or it never runs. The
controller, the wrapper's parent, also knows the exit code from the wrapper's own exit
status, so a status file that cannot be written (a full disk, a deleted directory)
loses nothing while the controller that started the attempt runs.

What can escape: a process that both leaves the session and clears its environment
while the controller that started it is not running, and work handed to another service
(ssh, systemd-run, a container engine). An argv command runs without a shell; a string
command runs with `/bin/sh -c`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import stat
import subprocess
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

if TYPE_CHECKING:
    from collections.abc import Mapping

GRACE = 5.0  # seconds between TERM and KILL when an attempt is cancelled
MARKER = "BACKFILLCTL_ATTEMPT"  # in every process of an attempt: whose it is
# The pid file is created exclusively (noclobber: O_EXCL) by whichever comes first: the
# wrapper, which then runs the command, or `recover`, which so declares that the attempt
# never started; a wrapper that comes later exits without running anything. The status
# is written in place (no `mv`: one process fewer per attempt); it is only read once no
# process of the attempt is left, so a half-written file is never read as final.
# The wrapper's own files are private (umask 077) and never written through something
# planted in their place (noclobber: O_EXCL, which a symlink fails too); the command runs
# with the umask it was given ($1).
_NOT_RUN = 125
_WRAPPER = (
    "umask 077; set -C\n"
    f'{{ echo $$ > "$0.pid"; }} 2>/dev/null || exit {_NOT_RUN}\n'
    'set +C; umask "$1"; shift\n'
    '"$@"\n'
    "rc=$?\n"
    'umask 077; set -C; { echo $rc > "$0.status"; } 2>/dev/null\n'
    "exit $rc\n"
)
_PR_SET_CHILD_SUBREAPER = 36


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
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._attempts: dict[int, _Attempt] = {}  # by group id
        self._escaped: dict[int, int] = {}  # pid of a process that left its group -> group
        self._bases: dict[str, int] = {}  # base path -> group id, for the marker
        self._own: set[int] = set()  # groups this backend started (their ids are fresh)
        self._checked: set[Path] = set()  # directories found private
        self.supervise = supervise and _become_subreaper()

    def _private(self, directory: Path) -> None:
        """`directory`, under the runs root: it and every directory from the root down are
        made 0700 whatever the umask, and refused if another user owns one or one is a
        symlink (another local user could plant a status file or a link there). Missing
        directories above the root are created 0700 too; existing ones are left alone.
        (Checked once per directory: once it is ours and 0700 nobody else can swap it.)"""
        if directory in self._checked and directory.is_dir():
            return  # (a deleted runs directory is made again, and checked again)
        for d in reversed([directory, *directory.parents]):
            mine = d == self.root or self.root in d.parents
            if not mine:
                if not d.exists():
                    with contextlib.suppress(FileExistsError):
                        d.mkdir(mode=0o700)
                continue
            with contextlib.suppress(FileExistsError):
                d.mkdir(mode=0o700)
            info = d.lstat()
            if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
                raise BackendError(f"{d} is not a directory (a symlink?): refusing to use it")
            if info.st_uid != os.getuid():
                raise BackendError(
                    f"{d} belongs to uid {info.st_uid}, not to this user: refusing to use it"
                )
            if stat.S_IMODE(info.st_mode) != 0o700:
                d.chmod(0o700)
        self._checked.add(directory)

    def _base(self, backfill: str, key: Key) -> Path:
        return self.root / backfill / f"{key[0]}.{key[1]}"

    def start(self, spec: AttemptSpec) -> tuple[Handle, str | None]:
        base = self._base(spec.backfill, spec.key)
        self._private(base.parent)
        run = spec.run
        argv, own_env = resolved_command(run, spec.timezone)
        env = {**os.environ, **own_env, MARKER: str(base)}
        log = base.with_suffix(base.suffix + ".log")
        if run.cwd and not Path(run.cwd).is_dir():
            raise BackendError(f"working directory {run.cwd} does not exist")
        # No file of an earlier run is removed here: a pid file by this attempt's name is
        # a newer controller's claim (`recover`: "it never started"), which a controller
        # paused past its lease must not undo. Each store has a runs directory of its own,
        # so a store that was thrown away leaves no files in the way.
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as out:
                child = subprocess.Popen(
                    ["/bin/sh", "-c", _WRAPPER, str(base), f"{_umask():03o}", *argv],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=run.cwd,
                    env=env,
                    start_new_session=True,
                )
        except OSError as exc:
            raise BackendError(f"cannot start: {exc.strerror}") from exc
        self._children[child.pid] = child
        self._own.add(child.pid)
        self._bases[str(base)] = child.pid
        return {"pid": child.pid, "base": str(base)}, str(log)

    # -- following attempts ----------------------------------------------------------

    def poll(self, running: Mapping[Key, Handle]) -> dict[Key, Outcome]:
        if self.supervise:
            self._adopt_orphans()
        ended: dict[Key, Outcome] = {}
        now = time.monotonic()
        for key, handle in running.items():
            pid, base = int(handle["pid"]), Path(handle["base"])
            self._bases.setdefault(str(base), pid)
            attempt = self._attempts.setdefault(pid, _Attempt())
            if not attempt.main_done and not self._main_ended(pid, base, attempt):
                self._escalate(pid, attempt, now, base)
                continue
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

    def _main_ended(self, pid: int, base: Path, attempt: _Attempt) -> bool:
        """Has the wrapper (and so the command it waited for) ended? Records the code."""
        child = self._children.get(pid)
        if child is not None:
            code = child.poll()
            if code is None:
                return False
            del self._children[pid]
            if code == _NOT_RUN and _read_pid(base) != pid:
                attempt.not_run = True  # its pid file was another's claim, or unwritable
            elif code >= 0:  # the wrapper passes the command's code on
                attempt.code = code
            else:  # the wrapper was killed: the command may live on; its file may say
                attempt.code = _read_status(base)
            attempt.main_done = True
            return True
        if pid > 0 and _alive(pid, base):
            return False
        attempt.code = _read_status(base)
        attempt.main_done = True
        return True

    def _processes(self, pgid: int, base: Path) -> set[int]:
        """The live processes of an attempt: its group, and those that left it."""
        left = {p for p, g in self._escaped.items() if g == pgid and _running(p)}
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
        return left | _group(pgid, None if pgid in self._own else str(base))

    def _escalate(self, pgid: int, attempt: _Attempt, now: float, base: Path) -> None:
        if attempt.kill_at is not None and not attempt.killed and now >= attempt.kill_at:
            self._signal_all(pgid, signal.SIGKILL, base)  # it ignored TERM
            attempt.killed = True

    def _signal_all(self, pgid: int, sig: int, base: Path) -> None:
        if pgid in self._own:
            _signal(pgid, sig)
        elif pgid > 0:  # adopted: signal only what is verifiably the attempt's
            for pid in _group(pgid, str(base)):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
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

    def _forget(self, pgid: int, base: Path) -> None:
        self._attempts.pop(pgid, None)
        self._own.discard(pgid)
        self._bases.pop(str(base), None)
        for pid in [p for p, g in self._escaped.items() if g == pgid]:
            del self._escaped[pid]

    def _adopt_orphans(self) -> None:
        """As the subreaper, this process inherits what attempts leave behind: reap the
        dead, and note whose the living are (by their marker) so that their attempt
        does not end before them."""
        groups = set(self._bases.values())
        for pid in _children_of(os.getpid()):
            if pid in self._children:
                continue
            fields = _stat(pid)
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
            owner = self._bases.get(_marker(pid) or "")
            if owner is not None:
                self._escaped[pid] = owner
                attempt = self._attempts.get(owner)
                if attempt is not None and (attempt.cancel or attempt.ending_leftovers):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGTERM if not attempt.killed else signal.SIGKILL)

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
        self._signal_all(pid, signal.SIGTERM, Path(handle["base"]))

    def recover(self, spec: AttemptSpec) -> Handle | None:
        base = self._base(spec.backfill, spec.key)
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
            pid = _read_pid(base)
            if pid is not None:
                return {"pid": pid, "base": str(base)}
            if time.monotonic() > deadline:
                return {"pid": 0, "base": str(base)}  # its status file decides
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


def _read_own(path: Path) -> int | None:
    """The number in a file the wrapper wrote; None if there is none, or if it is not a
    regular file of this user (a symlink, or a file another local user planted)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            return None
        try:
            return int(f.read(64).strip())
        except ValueError:
            return None


def _read_status(base: Path) -> int | None:
    """The exit code the wrapper wrote, or None (none, or not one to trust)."""
    return _read_own(base.with_suffix(base.suffix + ".status"))


def _read_pid(base: Path) -> int | None:
    return _read_own(base.with_suffix(base.suffix + ".pid"))


def _umask() -> int:
    """This process's umask (for the command: the wrapper's own files use 077)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _signal(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(pgid, sig)


def _stat(pid: int | str) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: [state, ppid, pgrp, ...]."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _running(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _marker(pid: int | str) -> str | None:
    """The attempt a process belongs to: its marker; "" without one; None unreadable."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    prefix = f"{MARKER}=".encode()
    for entry in environ.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix) :].decode(errors="replace")
    return ""


def _group(pgid: int, base: str | None) -> set[int]:
    """Live (not zombie) processes in group `pgid`; with `base`, only those marked as
    that attempt's (a group id seen long ago may since belong to someone else)."""
    found = set()
    try:
        pids = [p.name for p in Path("/proc").iterdir() if p.name.isdigit()]
    except OSError:  # no /proc: trust the signal check
        return {pgid}
    for p in pids:
        fields = _stat(p)
        if fields is None or fields[2] != str(pgid) or fields[0] in ("Z", "X"):
            continue
        if base is not None and _marker(p) not in (base, None):
            continue
        found.add(int(p))
    return found


def _children_of(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = [t.name for t in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:
        return found
    for task in tasks:
        with contextlib.suppress(OSError, ValueError):
            found += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return found


def _become_subreaper() -> bool:
    """Make orphaned descendants of this process its children (Linux), not init's."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _alive(pid: int, base: Path) -> bool:
    """Is `pid` still our wrapper? (A pid can be reused after a reboot or a long time.)"""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = _stat(pid)
        if stat is not None and stat[0] in ("Z", "X"):
            return False  # dead, not yet reaped by its parent
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if not cmdline:  # a kernel thread, or a process in the middle of its exec
            return stat is not None and stat[1] not in ("0", "2")  # kthreadd's are the kernel's
    except OSError:
        return True  # no /proc: trust the signal check
    return str(base).encode() in cmdline
