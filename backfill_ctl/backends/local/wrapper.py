"""The local backend's wrapper: the /bin/sh script each attempt runs under, and the
file it writes beside the log (`<base>.pid`: its pid, then the command's exit code),
read back safely."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from backfill_ctl.backends import BackendError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

# The pid file is created exclusively (noclobber: O_EXCL) by whichever comes first: the
# wrapper, which then runs the command, or `recover`, which so declares that the attempt
# never started; a wrapper that comes later exits without running anything. The wrapper
# keeps it open (fd 3, which the command does not get) and writes the command's exit code
# after its pid through that descriptor: one file per attempt fewer than a status file
# of its own, and nothing planted in its place later is written through. The code is
# only read once no process of the attempt is left, so a half-written line is never read
# as final. The wrapper's file is private (umask 077); the command runs with the umask it
# was given ($1), in its working directory ($2, absolute; "": the controller's): the
# wrapper goes there itself (the controller starts it with posix_spawn, which cannot),
# after its pid file, so that a directory it cannot enter fails the attempt (NO_CWD,
# like a command that cannot run) rather than leaving it unstarted. While the group
# runs, stderr is /dev/null (a pid file it cannot create or write is said by the exit
# code alone) and fd 4 is the log, which `cd` and the command get as their stderr.
# $0 is absolute: the pid file is opened before the `cd`, but `recover` and `alive`
# find the attempt by it.
NOT_RUN = 125
NO_CWD = 126
WRAPPER = (
    "umask 077; set -C\n"
    "{\n"
    f"echo $$ >&3 || exit {NOT_RUN}\n"
    'set +C; umask "$1"\n'
    f'if [ -z "$2" ] || cd -P -- "$2" 2>&4; then shift 2; "$@" 2>&4 3>&- 4>&-; rc=$?; '
    f"else rc={NO_CWD}; fi\n"
    "echo $rc >&3\n"
    "exit $rc\n"
    f'}} 4>&2 2>/dev/null 3>"$0.pid" || exit {NOT_RUN}\n'
)


def read_own(path: str) -> list[int] | None:
    """The numbers, one per line, in a file the wrapper wrote; None if there is no such
    file, or if it is not a regular file of this user (a symlink, or a file another local
    user planted). A line that is not a number ends the list."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            return None
        numbers = []
        for line in f.read(64).split(b"\n"):
            try:
                numbers.append(int(line))
            except ValueError:
                break
        return numbers


def read_status(base: str | Path) -> int | None:
    """The exit code the wrapper wrote, or None (none, or not one to trust). An attempt
    started by a version before the code shared the pid file has it in `<base>.status`."""
    numbers = read_own(f"{base}.pid") or []
    if len(numbers) >= 2:
        return numbers[1]
    older = read_own(f"{base}.status") or []
    return older[0] if len(older) == 1 else None


def read_pid(base: str | Path) -> int | None:
    numbers = read_own(f"{base}.pid")
    return numbers[0] if numbers else None


def current_umask() -> int:
    """This process's umask (for the command: the wrapper's own files use 077)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


SHELL = "/bin/sh"
# What a child of Python's should not inherit from it: Python ignores SIGPIPE (and
# SIGXFSZ); subprocess restores them for its children, and so does the wrapper's spawn.
_DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)


def spawn(base: str, cwd: str, argv: Sequence[str], env: Mapping[str, str], log_fd: int) -> int:
    """Start the wrapper running `argv` in a new session, stdin /dev/null, stdout and stderr
    `log_fd`; its pid. posix_spawn (a vfork-like clone, in C) is several times cheaper for
    the controller than subprocess.Popen; like Popen's close_fds, no descriptor of the
    controller's other than those three reaches the attempt (the rest are close-on-exec
    or closed by the spawn). `base` and `cwd` are absolute. Raises OSError."""
    actions: list[tuple[int, ...] | tuple[int, int, str, int, int]] = [
        (os.POSIX_SPAWN_DUP2, log_fd, 1),  # (the log first: it may be fd 0)
        (os.POSIX_SPAWN_DUP2, log_fd, 2),
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDWR, 0),
    ]
    actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in inherited_fds()]
    return os.posix_spawn(
        SHELL,
        [SHELL, "-c", WRAPPER, base, f"{current_umask():03o}", cwd, *argv],
        env,
        file_actions=actions,
        setsid=True,
        setsigdef=_DEFAULT_SIGNALS,
    )


def inherited_fds() -> list[int]:
    """This process's descriptors above 2 that a child would inherit (not close-on-exec:
    Python's own never are, but a C library's or this process's parent's may be)."""
    try:
        fds = [int(fd) for fd in os.listdir("/proc/self/fd")]  # noqa: PTH208 (4x faster)
    except OSError:  # no /proc: every possible one
        fds = list(range(3, os.sysconf("SC_OPEN_MAX")))
    found = []
    for fd in fds:
        if fd > 2:
            with contextlib.suppress(OSError):  # (the listing's own, closed by now)
                if os.get_inheritable(fd):
                    found.append(fd)
    return found


def absolute(path: str) -> str:
    """`path` from this process's working directory, without resolving links or `..`."""
    return path if Path(path).is_absolute() else str(Path.cwd() / path)


def make_private(directory: Path, root: Path) -> None:
    """`directory`, under the runs `root`: it and every directory from the root down are
    made 0700 whatever the umask, and refused if another user owns one or one is a
    symlink (another local user could plant a pid file or a link there). Missing
    directories above the root are created 0700 too; existing ones are left alone."""
    for d in reversed([directory, *directory.parents]):
        mine = d == root or root in d.parents
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
