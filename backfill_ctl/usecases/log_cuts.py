"""A log file on disk as gc weighs and cuts it (retention.py, rule (c)): its size and
the header of an earlier cut (`inspect`), and a cut to its last bytes after a line
saying how many are gone in all (`cut`: atomic, so a reader sees the old log or the
new one)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

_CUT = re.compile(rb"\[cut by backfillctl gc: (\d+) bytes removed\]\n")


def cut_header(removed: int) -> bytes:
    return f"[cut by backfillctl gc: {removed} bytes removed]\n".encode()


class LogFile(NamedTuple):
    """A log on disk: its size, and the header of an earlier cut if it has one."""

    size: int
    cut: int = 0  # bytes an earlier cut removed
    header: int = 0  # length of that cut's first line


def inspect(path: str, max_size: int) -> LogFile | None:
    """The log at `path` (None if there is none); its first line is read only when it
    is large enough to have been cut or to need cutting."""
    try:
        size = Path(path).stat().st_size
        if size <= max_size:
            return LogFile(size)
        with Path(path).open("rb") as f:
            head = f.readline(80)
    except OSError:
        return None
    found = _CUT.fullmatch(head)
    return LogFile(size, int(found[1]), len(head)) if found else LogFile(size)


def cut(path: str, max_size: int) -> int:
    """Keep the last `max_size` bytes of a log after a line saying how many bytes are
    gone in all; the bytes removed now (0 if it is small enough). Atomic: a reader sees
    the old log or the new one; a failure, or Ctrl-C, leaves no partial copy."""
    p = Path(path)
    with p.open("rb") as f:
        head = f.readline(80)
        found = _CUT.fullmatch(head)
        earlier, skip = (int(found[1]), len(head)) if found else (0, 0)
        size = os.fstat(f.fileno()).st_size
        if size - skip <= max_size:
            return 0
        f.seek(size - max_size)
        tail = f.read(max_size)
    removed = size - skip - max_size
    partial = p.with_name(p.name + ".gc-partial")
    try:
        partial.write_bytes(cut_header(earlier + removed) + tail)
        partial.chmod(p.stat().st_mode & 0o7777)
        partial.replace(p)
    except BaseException:  # (KeyboardInterrupt too: the partial copy goes)
        partial.unlink(missing_ok=True)
        raise
    return removed
