"""Attempts whose processes run where this controller can neither see nor signal them
(`place.py`): on another host, or in another pid namespace of this machine, when
controllers in several places share a store.

Such an attempt is followed by its pid file alone: the shim that started it outlives
the controller that asked it to, and writes the command's exit code there when it ends.
Until a code is there the attempt runs, as far as anyone here can know: it is neither
lost nor failed, and its instance is not started again. What cannot be done from here
is said once, with what an operator can do there (`out_of_reach`): signal it (a stop
or a timeout cannot: `cancel` raises), and end what its command leaves running when it
ends (from here its end is the command's, and what it left is not seen). If that place
is gone with its shim, no code ever comes: an operator declares the attempt ended
(`stop --force`; `LocalBackend.declare_ended`), and it is reported lost, unless its code
was written first (`ended`).

An attempt begun there but not recorded as started (`recover`) is settled by a claim
of its pid file only where the claim races the shim's for one file: in a runs directory
this controller shares with it, known by the device and inode recorded when it was
begun, on the same kernel. Anywhere else a claim would be made in another directory and
win whatever the shim did: the pid file, once seen here, says the attempt started; until
then nobody here can tell, and the controller asks again on each tick — never "it never
ran".
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from backfill_ctl.backends import BackendError, Handle, Outcome
from backfill_ctl.backends.local.attempt import Attempt
from backfill_ctl.backends.local.pidfile import read_own, read_pid, read_status
from backfill_ctl.backends.local.place import Place, here
from backfill_ctl.backends.local.procs import MARKER

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


def ended(base: str, declared: dict[str, str]) -> Outcome | None:
    """How the attempt `base` ended: as its shim's code says, once written; else, if an
    operator declared it ended (`declared`: base -> why, taken out), lost; None until
    one of them is known. The code is read first, so a code written before the
    declaration is carried out wins; one written after it is never read (the attempt is
    no longer followed): each attempt gets one outcome, whichever way the race goes."""
    code = read_status(base)
    if code is not None:
        declared.pop(base, None)
        return Attempt(code=code, main_done=True).outcome()
    why = declared.pop(base, None)
    return None if why is None else Outcome("lost", None, why)


def out_of_reach(handle: Handle, away: Place, here: Place) -> str:
    """What a controller `here` cannot do for the attempt of `handle`, which runs at
    `away`, and how an operator can do it there."""
    base = str(handle["base"])
    pid = int(handle.get("pid") or 0)
    pidfile = f"{base}.pid"
    instance = base.rpartition("/")[2].rpartition(".")[0]  # (`<instance>.<attempt>`)
    if read_own(pidfile) is None:  # (another host's runs directory, not shared)
        follow = (
            f"its pid file {pidfile} is not to be seen from here: its end is recorded when "
            "a controller there drives the store"
        )
    else:
        follow = f"it is followed by its pid file {pidfile}, where its shim writes its exit code"
    kill = f"kill -TERM -- -{pid} in that pid namespace; its" if pid > 0 else "its"
    return (
        f"it runs {here.describe(away)}, where this controller can neither see nor signal "
        f"its processes; {follow}; its instance is not started again meanwhile. To end it: "
        f"{kill} processes carry {MARKER}={base}. If none is left and no code comes (its "
        f"shim was ended too: its host or container is gone), declare it ended: "
        f"backfillctl stop --force {instance}"
    )


class Places:
    """This process's place (`here`, and `key` as handles record it), whether it can
    follow the processes of the places handles name (decided once for each), and what
    the attempts begun here record (`unstarted`)."""

    def __init__(self, root: Path, private: Callable[[Path], None]) -> None:
        self.here = here()
        self.key = str(self.here)
        self._root = root  # the store's runs directory
        self._private = private  # makes a directory private (the backend's)
        self._away: dict[str, Place | None] = {}
        self._unstarted: Handle | None = None

    def away(self, handle: Handle) -> Place | None:
        """Where the attempt of `handle` runs if this process cannot follow its processes
        there by their pids (`Place.follows`); None if it can, or if the handle names no
        place (an earlier version's: it is followed as it was)."""
        where = handle.get("place")
        if where is None or where == self.key:
            return None
        if (where := str(where)) not in self._away:
            other = Place.parse(where)
            self._away[where] = None if self.here.follows(other) else other
        return self._away[where]

    def unstarted(self) -> Handle:
        """What an attempt begun here records until it starts: this place, and the
        identity of the runs directory, which tells a controller in another pid
        namespace of this machine whether it shares it (`recover`)."""
        if self._unstarted is None:
            runs = ""
            with contextlib.suppress(OSError, BackendError):  # (then nobody shares it)
                self._private(self._root)
                runs = self._runs()
            self._unstarted = {"place": self.key, "runs": runs}
        return self._unstarted

    def _runs(self) -> str:
        info = os.stat(self._root)  # noqa: PTH116 (no Path for one call)
        return f"{info.st_dev}:{info.st_ino}"

    def recover(
        self, base: str, begun: Handle, away: Place, claimed: Callable[[str], bool]
    ) -> Handle | None:
        """The handle of an attempt begun at `away` (`begun`: what the controller there
        recorded) and not recorded as started; None if it never runs: this claim of its
        pid file (`claimed`) came first, in the runs directory it was begun with (the
        same device and inode, on this kernel). BackendError while nobody here can tell
        (see the module's docstring)."""
        runs = begun.get("runs")
        shared = self.here.same_kernel(away) and bool(runs) and runs == self._shared_runs()
        if shared and claimed(base):
            return None  # the shim there finds the claim and runs nothing
        pid = read_pid(base)
        if pid is not None:
            return {"pid": pid, "base": base, "place": str(begun["place"])}
        seen = "is being written" if shared else "is not to be seen here"
        raise BackendError(
            f"it was begun {self.here.describe(away)}, and its pid file {base}.pid {seen}; "
            "its instance stays running until that file shows it (a runs directory shared "
            "with it) or a controller there drives the store"
        )

    def _shared_runs(self) -> str | None:
        try:
            return self._runs()
        except OSError:
            return None
