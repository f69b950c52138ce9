"""An attempt's processes, for the local backend (`LocalBackend`, which sets these
attributes): its process group and what left it, signalled together, and the orphans this
process inherits as their subreaper (see the package's docstring)."""

from __future__ import annotations

import contextlib
import os
import signal
from typing import TYPE_CHECKING

from backfill_ctl.backends.local.procs import (
    children_of,
    group_members,
    marked,
    marker,
    proc_stat,
    running,
    signal_group,
    signal_members,
)

if TYPE_CHECKING:
    from backfill_ctl.backends.local.attempt import Attempt
    from backfill_ctl.backends.local.starts import Starts


class Groups:
    _attempts: dict[int, Attempt]  # by group id
    _escaped: dict[int, int]  # pid of a process that left its group -> group
    _bases: dict[str, int]  # base path -> group id, for the marker
    _own: set[int]  # groups this backend started (their ids are fresh)
    _starts: Starts

    def _processes(self, pgid: int, base: str) -> set[int]:
        """The live processes of an attempt: its group, and those that left it."""
        if pgid not in self._own:
            self._find_escaped(pgid, base)
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

    def _find_escaped(self, pgid: int, base: str) -> None:
        """An attempt this process did not start (adopted after a restart): what left its
        group before, while no controller here was the subreaper (a daemon that went to
        init), is found by its marker, and followed and signalled as an orphan is."""
        for pid, group in marked(base).items():
            if group != pgid:
                self._escaped.setdefault(pid, pgid)

    def _escalate(self, pgid: int, attempt: Attempt, now: float, base: str) -> None:
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
        shims = {s.pid for s in self._starts.shims()}
        for pid in children_of(os.getpid()):
            if pid in shims:
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
