"""The file each attempt has beside its log, `<base>.pid`: the pid of the attempt's first
process (the leader of its process group), then the command's exit code; read back
safely. The shim (`shim.py`) writes it now; before it, a /bin/sh wrapper did, in the
same layout (an earlier one wrote the code to `<base>.status`), and attempts it left are
still read.

The pid file is created exclusively by whichever comes first: the shim, which then runs
the command, or `recover`, which so declares that the attempt never started. The code is
written only into the file the shim created (the same inode, never through a link:
nothing planted in its place later is written to), and before the process is reaped,
so whoever finds the process gone
finds its code written. The file is private (0600, in a 0700 directory)."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path


def read_own(path: str) -> list[int] | None:
    """The numbers, one per line, in a file the shim (or a wrapper) wrote; None if there
    is no such file, or if it is not a regular file of this user (a symlink, or a file
    another local user planted). A line that is not a number ends the list."""
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
    """The exit code written for the attempt, or None (none, or not one to trust). An
    attempt started by a version before the code shared the pid file has it in
    `<base>.status`."""
    numbers = read_own(f"{base}.pid") or []
    if len(numbers) >= 2:
        return numbers[1]
    older = read_own(f"{base}.status") or []
    return older[0] if len(older) == 1 else None


def read_pid(base: str | Path) -> int | None:
    numbers = read_own(f"{base}.pid")
    return numbers[0] if numbers else None


def current_umask() -> int:
    """This process's umask (the command's: the shim's own files use 077)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


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
    return path if path.startswith("/") else str(Path.cwd() / path)
