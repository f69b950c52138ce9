"""The local backend's view of processes (Linux /proc): an attempt's process group, the
processes marked as its own, the orphans this process inherits as their subreaper, and
whether a pid is still the attempt's first process it was."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from pathlib import Path

MARKER = "BACKFILLCTL_ATTEMPT"  # in every process of an attempt: whose it is
_PR_SET_CHILD_SUBREAPER = 36


def signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(pgid, sig)


def signal_members(pgid: int, base: str, sig: int) -> None:
    """`sig` to every live process of group `pgid` marked as attempt `base`'s, as if at
    one instant (as `killpg` does for a group we know is ours): each is stopped first,
    until no new member appears, then signalled, then continued. Signalled one by one
    while running, a shell whose command was signalled first would go on to the rest of
    its script before its own signal came (`extract; load`: load would run after a
    stop)."""
    stopped: set[int] = set()
    while found := group_members(pgid, base) - stopped:  # a stopped one forks no more
        for pid in found:
            _kill(pid, signal.SIGSTOP)
        stopped |= found
    for pid in stopped:
        _kill(pid, sig)
    for pid in stopped:  # a handler of `sig` runs now; a default action has ended it
        _kill(pid, signal.SIGCONT)


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.kill(pid, sig)


def proc_stat(pid: int | str) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: [state, ppid, pgrp, ...]."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def running(pid: int) -> bool:
    fields = proc_stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def marker(pid: int | str) -> str | None:
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


def group_members(pgid: int, base: str | None) -> set[int]:
    """Live (not zombie) processes in group `pgid`; with `base`, only those marked as
    that attempt's (a group id seen long ago may since belong to someone else)."""
    found = set()
    try:
        pids = [p.name for p in Path("/proc").iterdir() if p.name.isdigit()]
    except OSError:  # no /proc: trust the signal check
        return {pgid}
    for p in pids:
        fields = proc_stat(p)
        if fields is None or fields[2] != str(pgid) or fields[0] in ("Z", "X"):
            continue
        if base is not None and marker(p) not in (base, None):
            continue
        found.add(int(p))
    return found


def marked(base: str) -> dict[int, int]:
    """The live processes marked as attempt `base`'s, wherever they are: pid -> its
    process group (a full /proc scan: for the rare moments that need it)."""
    found: dict[int, int] = {}
    try:
        pids = [p.name for p in Path("/proc").iterdir() if p.name.isdigit()]
    except OSError:
        return found
    for p in pids:
        fields = proc_stat(p)
        if fields is None or fields[0] in ("Z", "X") or marker(p) != base:
            continue
        found[int(p)] = int(fields[2])
    return found


def marked_group(base: str) -> int | None:
    """The process group of a live process marked as attempt `base`'s: its first one's
    group (the one led by a marked process) if any, else any such group; None if no
    process of the attempt lives."""
    found = marked(base)
    leaders = {pid for pid, group in found.items() if pid == group}
    groups = set(found.values())
    return min(leaders or groups) if groups else None


def children_of(pid: int) -> list[int]:
    """The children of process `pid`'s main thread: those it started there, and the
    orphans it inherits as a subreaper (the kernel hands them to a subreaper's first live
    thread: its main one, while it runs). Children other threads started are not
    listed: they are theirs to wait for. One file read (15 us in a busy controller,
    where listing every thread's file took 86 us a tick)."""
    try:
        fd = os.open(f"/proc/{pid}/task/{pid}/children", os.O_RDONLY)
    except OSError:
        return []
    chunks = []
    try:
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    except OSError:
        return []
    finally:
        os.close(fd)
    return [int(c) for c in b"".join(chunks).split()]


def become_subreaper() -> bool:
    """Make orphaned descendants of this process its children (Linux), not init's."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _is_shim(pid: str) -> bool:
    try:
        return b"backends/local/shim.py" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def alive(pid: int, base: str | Path) -> bool:
    """Is `pid` still the attempt `base`'s first process (a command the shim started,
    marked with `base`, or an earlier version's wrapper, whose argv has it)? A pid can
    be reused after a reboot or a long time. A zombie whose parent is a shim counts: the
    shim writes its code before it reaps it; any other zombie is dead (its code is
    written, or never will be: an init that does not reap would keep it for ever)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = proc_stat(pid)
        if stat is not None and stat[0] in ("Z", "X"):
            return _is_shim(stat[1])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if not cmdline:  # a kernel thread, or a process in the middle of its exec
            return stat is not None and stat[1] not in ("0", "2")  # kthreadd's are the kernel's
    except OSError:
        return True  # no /proc: trust the signal check
    return str(base).encode() in cmdline or marker(pid) == str(base)
