"""Attempts the backend cannot reach from this controller (the local backend's, running
in another pid namespace or on another host): a stop or a timeout that cannot be carried
out said once and not pretended, their ends recorded as they come. The in-memory
backend, made to say so."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from backfill_ctl.backends import BackendError, Handle, Key, Outcome
from backfill_ctl.backends.fake import FakeBackend
from backfill_ctl.runtime.controller import Controller
from backfill_ctl.state import StateStore
from backfill_ctl.usecases.operations import operate
from tests.builders import backfill, node
from tests.running import NOW, Clock, applied

ELSEWHERE = "it runs elsewhere: end it there"


class OutOfReach(FakeBackend):
    """Attempts that run until `codes` has their exit code, and cannot be signalled."""

    def __init__(self) -> None:
        super().__init__()
        self.codes: dict[Key, int] = {}

    def poll(self, running: Mapping[Key, Handle]) -> dict[Key, Outcome]:
        ended = {k: self.codes[k] for k in running if k in self.codes}
        return {
            k: Outcome("succeeded", 0) if c == 0 else Outcome("failed", c, f"exit code {c}")
            for k, c in ended.items()
        }

    def cancel(self, key: Key, handle: Handle, reason: str) -> None:
        raise BackendError(ELSEWHERE)

    def adopt(self, handle: Handle) -> str | None:
        return ELSEWHERE


def driving(store: StateStore, backend: OutOfReach, clock: Clock) -> tuple[Controller, list[str]]:
    said: list[str] = []
    c = Controller(store, backend, clock=clock, say=said.append)
    assert c.acquire(wait=False)
    c.load()
    return c, said


def test_a_timeout_it_cannot_carry_out_is_said_once_and_a_failure_is_still_retried(
    tmp_path: Path,
) -> None:
    run = {"command": ["hang"], "timeout": "10m", "retries": 1, "retryDelay": "0s"}
    store = applied(tmp_path, node("a", run=run, resourceGroup="rg"), backfill())
    clock, backend = Clock(), OutOfReach()
    c, said = driving(store, backend, clock)
    c.tick()
    (a,) = store.instances()
    clock.now += 601
    for _ in range(3):
        c.tick()
    assert said == [f"cannot stop attempt 1 of {a.id} (timed out after 10m00s): {ELSEWHERE}"]
    assert store.instances()[0].state == "running"  # not pretended
    backend.codes[a.id, 1] = 3
    c.tick()
    c.tick()
    assert [(x.number, x.state, x.message) for x in store.attempts()] == [
        (1, "failed", "retrying after attempt 1: exit code 3"),  # not "timed out"
        (2, "running", None),
    ]


def test_a_stop_it_cannot_carry_out_is_said_and_its_instance_not_retried(
    tmp_path: Path,
) -> None:
    run = {"command": ["hang"], "retries": 3}
    store = applied(tmp_path, node("a", run=run, resourceGroup="rg"), backfill())
    clock, backend = Clock(), OutOfReach()
    c, said = driving(store, backend, clock)
    c.tick()
    (a,) = store.instances()
    operate(store, "stop", [a], actor="alice", at=NOW.timestamp())
    for _ in range(3):
        c.tick()
    assert said == [f"cannot stop attempt 1 of {a.id} (stopped by alice): {ELSEWHERE}"]
    assert store.instances()[0].state == "running"
    backend.codes[a.id, 1] = 3
    c.tick()
    c.tick()
    (a,) = store.instances()
    assert (a.state, a.reason, a.attempts) == ("failed", "exit code 3", 1)
