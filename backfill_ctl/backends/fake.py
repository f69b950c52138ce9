"""An in-memory backend for tests: attempts "run" without processes.

By default an attempt ends at the next poll, succeeding unless its argv contains
`false`; `hang` in the argv keeps it running until it is cancelled. A test can pass
`outcome` to decide exit codes itself (None: keep running). Nothing leaves the process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backfill_ctl.backends import Anywhere, AttemptSpec, Handle, Key, Outcome

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


def _default(spec: AttemptSpec) -> int | None:
    argv = spec.run.command.split() if isinstance(spec.run.command, str) else spec.run.command
    if "hang" in argv:
        return None
    return 1 if "false" in argv else 0


class FakeBackend(Anywhere):
    name = "fake"

    def __init__(self, outcome: Callable[[AttemptSpec], int | None] | None = None) -> None:
        self.outcome = outcome or _default
        self.started: list[AttemptSpec] = []
        self.cancelled: dict[Key, str] = {}
        self._specs: dict[Key, AttemptSpec] = {}

    def check(self) -> list[tuple[str, bool, str]]:
        return [("run in memory", True, "the fake backend runs nothing")]

    def close(self) -> None:
        pass

    def start(self, spec: AttemptSpec) -> tuple[Handle, str | None]:
        self.started.append(spec)
        self._specs[spec.key] = spec
        return {"fake": f"{spec.instance}.{spec.number}"}, None

    def poll(self, running: Mapping[Key, Handle]) -> dict[Key, Outcome]:
        ended: dict[Key, Outcome] = {}
        for key in running:
            if key in self.cancelled:
                ended[key] = Outcome("failed", None, self.cancelled.pop(key))
                continue
            spec = self._specs.get(key)
            if spec is None:  # started by another process: it is gone with it
                ended[key] = Outcome("lost", None, "the fake backend lost it")
                continue
            code = self.outcome(spec)
            if code is not None:
                ended[key] = Outcome(
                    "succeeded" if code == 0 else "failed",
                    code,
                    None if code == 0 else f"exit code {code}",
                )
        return ended

    def cancel(self, key: Key, handle: Handle, reason: str) -> None:
        self.cancelled[key] = reason

    def recover(self, spec: AttemptSpec, begun: Handle) -> Handle | None:
        """An attempt this backend started (its "processes" live in this object, which
        a second controller of the same process may share), else None: never started."""
        if spec.key not in self._specs:
            return None
        return {"fake": f"{spec.instance}.{spec.number}"}

    def wait(self, timeout: float) -> None:
        """Fake attempts end at the next poll: nothing to wait for."""

    def log_text(self, handle: Handle, log: str | None) -> str:
        if "fake" not in handle:  # the attempt never started
            return ""
        instance, number = str(handle["fake"]).rsplit(".", 1)
        spec = self._specs.get((instance, int(number)))
        return f"fake run of {spec.run.command}\n" if spec else ""
