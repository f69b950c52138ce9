"""The local backend's starts: asked of the shim (`spawner.Shim`) without waiting, and
their answers taken as they come: a pid for the handle, or an outcome for an attempt
whose command never ran. A start nobody answers is settled as `recover` settles an
attempt: by a claim on its pid file, which the shim too makes before it runs anything.
A claim that cannot be made (a full disk) tells nothing: BackendError, and the attempt is
asked of again (its instance stays running), never taken as started or as not."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from backfill_ctl.backends import BackendError, Handle, Outcome
from backfill_ctl.backends.local.attempt import NOT_RUN
from backfill_ctl.backends.local.pidfile import current_umask, read_pid
from backfill_ctl.backends.local.procs import marked_group
from backfill_ctl.backends.local.spawner import Shim, ShimGone

if TYPE_CHECKING:
    from collections.abc import Callable, Collection


class Starts:
    """The shim that starts attempts now, the starts it has not answered yet, and what the
    answers said. `private` makes and checks a directory private (the backend's);
    `hidden`: variables the commands do not inherit (`Shim`)."""

    def __init__(self, private: Callable[[Path], None], hidden: Collection[str] = ()) -> None:
        self.hidden = hidden
        self.shim: Shim | None = None
        self.spawned: dict[int, Shim] = {}  # pid of a command started here -> its shim
        self.settled: dict[str, Outcome] = {}  # base -> outcome, of one that never ran
        self.asked: dict[str, tuple[Shim, Handle]] = {}  # base -> a start not answered
        self._private = private
        self._waited: set[str] = set()  # bases whose pid file `found` waited for once

    def shims(self) -> set[Shim]:
        return {s for s in (self.shim, *self.spawned.values()) if s is not None}

    def ask(
        self, handle: Handle, target: str, cwd: str, argv: list[str], env: dict[str, str]
    ) -> None:
        """Ask the shim to start the attempt of `handle` (its "base"; `target` is the same,
        absolute). A shim found gone before it had the request (nothing of it was done) is
        replaced; ShimGone if one went after (it may have started the command)."""
        base = str(handle["base"])
        request = (base, target, f"{target}.log", cwd, current_umask(), argv, env)
        for _ in range(2):
            if self.shim is None or self.shim.gone:
                self.shim = Shim(self.hidden)
            try:
                self.shim.ask(*request)
            except ShimGone as exc:
                if exc.delivered:
                    self.shim = None
                    raise
                continue
            self.asked[base] = (self.shim, handle)
            return
        raise ShimGone("the shim is gone", delivered=False)

    def answered(self, *, wait: bool) -> list[tuple[str, int]]:
        """Take the shims' answers into the handles (their pids) or `settled`; with
        `wait`, every start asked so far is answered, or settled by a claim when its shim
        is gone or does not answer. The (base, pid) of those that started."""
        started = []
        for shim in {s for s, _ in self.asked.values()}:
            if wait:
                shim.settle()
            else:
                shim.read()
            for base, (kind, number) in shim.answers.items():
                _, handle = self.asked.pop(base)
                if kind == "S":
                    handle["pid"] = number
                    self.spawned[number] = shim
                    started.append((base, number))
                elif kind == "L":  # its log could not be made: nothing ran
                    self.settled[base] = _no_log(number)
                else:  # "N": the pid file was claimed; "X": the reason is in its log
                    failed = Outcome("failed", number, f"exit code {number}")
                    self.settled[base] = NOT_RUN if kind == "N" else failed
            shim.answers.clear()
            if wait:
                for base in shim.asked.values():
                    _, handle = self.asked.pop(base)
                    try:
                        handle.update(self.found(base))
                    except BackendError:  # cannot tell yet: `found` again when followed
                        continue
                shim.asked.clear()
        return started

    def found(self, base: str, *, patience: float = 0.0) -> Handle:
        """The handle of an attempt asked of a shim that did not answer (`claim`'s, after
        `patience` s for the shim to claim the pid file, as it does first); one whose
        command never runs has its outcome settled. BackendError: it cannot be told yet
        (the claim cannot be made: `claimed`); asked again, the patience is not repeated."""
        deadline = time.monotonic() + (0.0 if base in self._waited else patience)
        self._waited.add(base)
        while not os.path.lexists(f"{base}.pid") and time.monotonic() < deadline:
            time.sleep(0.01)
        found = self.claim(base)
        self._waited.discard(base)
        if found is None:
            self.settled[base] = NOT_RUN
            return {"pid": 0, "base": base}
        return found

    def claim(self, base: str) -> Handle | None:
        """Race the shim for the attempt's pid file: None if this claim came first (the
        command never runs), else the handle of the attempt, which started."""
        return None if self.claimed(base) else _started(base)

    def claimed(self, base: str) -> bool:
        """Race the shim for the attempt's pid file: did this claim come first (then the
        command never runs; else the shim was first: the attempt started)? BackendError
        when no claim can be made (a full disk, an I/O error): neither is known then."""
        try:
            self._private(Path(base).parent)
            os.close(os.open(f"{base}.pid", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            return False
        except OSError as exc:
            raise BackendError(
                f"its pid file {base}.pid cannot be claimed: {exc.strerror}"
            ) from exc
        return True

    def close(self) -> None:
        for shim in self.shims():
            shim.close(idle=shim not in self.spawned.values())


def _no_log(code: int) -> Outcome:
    """The outcome of an attempt whose log the shim could not make (errno `code`: a full
    disk, a link planted in its place): the command never ran, and gets its try back."""
    why = f"the command did not run: its log cannot be created: {os.strerror(code)}"
    return Outcome("lost", None, why, started=False)


def _started(base: str) -> Handle:
    """The handle of an attempt whose pid file the shim claimed: its pid, which the shim
    writes right after; or, from a shim stalled before it, its marked processes' group."""
    deadline = time.monotonic() + 2.0  # the shim writes the pid right after
    while True:
        pid = read_pid(base)
        if pid is not None:
            return {"pid": pid, "base": base}
        if time.monotonic() > deadline:
            # A shim stalled before writing the pid: its marked processes, if any
            # live, are the attempt's; else nothing of it runs and its status decides.
            return {"pid": marked_group(base) or 0, "base": base}
        time.sleep(0.01)
