"""The local backend's wrapper: the /bin/sh script each attempt runs under, and the
files it writes beside the log (`<base>.pid`, `<base>.status`), read back safely."""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

# The pid file is created exclusively (noclobber: O_EXCL) by whichever comes first: the
# wrapper, which then runs the command, or `recover`, which so declares that the attempt
# never started; a wrapper that comes later exits without running anything. The status
# is written in place (no `mv`: one process fewer per attempt); it is only read once no
# process of the attempt is left, so a half-written file is never read as final.
# The wrapper's own files are private (umask 077) and never written through something
# planted in their place (noclobber: O_EXCL, which a symlink fails too); the command runs
# with the umask it was given ($1).
NOT_RUN = 125
WRAPPER = (
    "umask 077; set -C\n"
    f'{{ echo $$ > "$0.pid"; }} 2>/dev/null || exit {NOT_RUN}\n'
    'set +C; umask "$1"; shift\n'
    '"$@"\n'
    "rc=$?\n"
    'umask 077; set -C; { echo $rc > "$0.status"; } 2>/dev/null\n'
    "exit $rc\n"
)


def read_own(path: Path) -> int | None:
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


def read_status(base: Path) -> int | None:
    """The exit code the wrapper wrote, or None (none, or not one to trust)."""
    return read_own(base.with_suffix(base.suffix + ".status"))


def read_pid(base: Path) -> int | None:
    return read_own(base.with_suffix(base.suffix + ".pid"))


def current_umask() -> int:
    """This process's umask (for the command: the wrapper's own files use 077)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask
