"""Attempts whose processes run where this controller can neither see nor signal them
(`place.py`): on another host, or in another pid namespace of this machine, when
controllers in several places share a store.

Such an attempt is followed by its pid file alone: the shim that started it outlives
the controller that asked it to, and writes the command's exit code there when it ends.
Until a code is there the attempt runs, as far as anyone here can know: it is neither
lost nor failed, and its instance is not started again. What cannot be done from here
is said once, with what an operator can do there (`out_of_reach`): signal it (a stop
or a timeout cannot: `cancel` raises), and see what its command leaves running when it
ends (a controller there ends that; from here its end is the command's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backfill_ctl.backends.local.attempt import Attempt
from backfill_ctl.backends.local.pidfile import read_own, read_status
from backfill_ctl.backends.local.place import Place, here
from backfill_ctl.backends.local.procs import MARKER

if TYPE_CHECKING:
    from backfill_ctl.backends import Handle, Outcome


def ended(base: str) -> Outcome | None:
    """How the attempt `base` ended, once its shim wrote its code; None until then."""
    code = read_status(base)
    return None if code is None else Attempt(code=code, main_done=True).outcome()


def out_of_reach(handle: Handle, away: Place, here: Place) -> str:
    """What a controller `here` cannot do for the attempt of `handle`, which runs at
    `away`, and how an operator can do it there."""
    base = str(handle["base"])
    pid = int(handle.get("pid") or 0)
    pidfile = f"{base}.pid"
    if read_own(pidfile) is None:  # (another host's runs directory, not shared)
        follow = (
            f"its pid file {pidfile} is not to be seen from here: its end is recorded when "
            "a controller there drives the store"
        )
        code = f"printf '0\\n137\\n' > {pidfile} (a pid, then the code)"
    else:
        follow = f"it is followed by its pid file {pidfile}, where its shim writes its exit code"
        code = f"echo 137 >> {pidfile}"
    kill = f"kill -TERM -- -{pid} in that pid namespace; its" if pid > 0 else "its"
    return (
        f"it runs {here.describe(away)}, where this controller can neither see nor signal "
        f"its processes; {follow}; its instance is not started again meanwhile. To end it: "
        f"{kill} processes carry {MARKER}={base}. If none is left and no code comes (its "
        f"shim was ended too), write one: {code}"
    )


class Places:
    """This process's place (`here`, and `key` as handles record it), and whether it
    can follow the processes of the places handles name (decided once for each)."""

    def __init__(self) -> None:
        self.here = here()
        self.key = str(self.here)
        self._away: dict[str, Place | None] = {}

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
