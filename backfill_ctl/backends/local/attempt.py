"""What the local backend knows of one attempt beyond its handle, and how it ended."""

from __future__ import annotations

from dataclasses import dataclass, field

from backfill_ctl.backends import Outcome


@dataclass
class AttemptState:
    """What this backend knows of one attempt beyond its handle."""

    code: int | None = None  # the command's exit code, once known
    main_done: bool = False  # the wrapper is gone (the command ended, or it was killed)
    cancel: str | None = None  # why it is being stopped
    ending_leftovers: bool = False  # the command ended; what it left is being ended
    kill_at: float | None = None  # when the group gets KILL (after TERM)
    killed: bool = False
    not_run: bool = False  # the wrapper exited before running the command
    leftovers: set[int] = field(default_factory=set)  # processes ended with the attempt

    def outcome(self) -> Outcome:
        """How it ended, once no process of it is left."""
        code = self.code
        if self.not_run:
            return Outcome(
                "lost",
                None,
                "the command did not run: its pid file could not be written (a full disk?)"
                " or a newer controller had declared the attempt unstarted",
                started=False,
            )
        if self.cancel:  # killed on purpose: the reason is what matters
            return Outcome("failed", code, self.cancel)
        if code is None:
            return Outcome(
                "lost",
                None,
                "no exit code is known (its wrapper was killed, or could not write its "
                "status); no process of it is left",
            )
        note = (
            f" (ended {len(self.leftovers)} process(es) it left running)" if self.leftovers else ""
        )
        if code == 0:
            return Outcome("succeeded", 0, note.strip(" ()") or None)
        return Outcome("failed", code, f"exit code {code}{note}")
