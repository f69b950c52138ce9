"""What the local backend knows of one attempt beyond its handle, and its outcome."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from backfill_ctl.backends import Outcome

NOT_RUN = Outcome(
    "lost",
    None,
    "the command did not run: its pid file could not be created (a full disk?) or a newer"
    " controller had declared the attempt unstarted",
    started=False,
)


@dataclass
class Attempt:
    """What the backend knows of one attempt beyond its handle."""

    code: int | None = None  # the command's exit code, once known
    main_done: bool = False  # the command ended (or its shim is gone and it with it)
    cancel: str | None = None  # why it is being stopped
    ending_leftovers: bool = False  # the command ended; what it left is being ended
    kill_at: float | None = None  # when the group gets KILL (after TERM)
    killed: bool = False
    leftovers: set[int] = field(default_factory=set)  # processes ended with the attempt

    def outcome(self) -> Outcome:
        """Once no process of it is left."""
        code = self.code
        if self.cancel:  # killed on purpose: the reason is what matters
            return Outcome("failed", code, self.cancel)
        if code is None:
            return Outcome(
                "lost",
                None,
                "no exit code is known (the shim that started it was killed, or its code "
                "could not be written); no process of it is left",
            )
        note = (
            f" (ended {len(self.leftovers)} process(es) it left running)" if self.leftovers else ""
        )
        if code == 0:
            return Outcome("succeeded", 0, note.strip(" ()") or None)
        return Outcome("failed", code, f"exit code {code}{note}")


def reap(pid: int) -> int | None:
    """The exit code (128 + the signal, as a shell says it) of a dead child of ours; None
    if `pid` is not one."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    if done != pid:
        return None
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code
