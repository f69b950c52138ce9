"""Attempts the backend cannot reach from this controller (the local backend's, running
in another pid namespace or on another host): adopted saying so, a stop or a timeout
that cannot be carried out said once and not pretended, their ends recorded as they
come; an attempt begun there is settled with what it was begun with. The in-memory
backend, made to say so."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from backfill_ctl.backends import AttemptSpec, BackendError, Handle, Key, Outcome
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
        self.begun_with: list[Handle] = []

    def poll(self, running: Mapping[Key, Handle]) -> dict[Key, Outcome]:
        ended = {k: self.codes[k] for k in running if k in self.codes}
        return {
            k: Outcome("succeeded", 0) if c == 0 else Outcome("failed", c, f"exit code {c}")
            for k, c in ended.items()
        }

    def cancel(self, key: Key, handle: Handle, reason: str) -> None:
        raise BackendError(ELSEWHERE)

    def unstarted_handle(self) -> Handle:
        return {"place": "there"}

    def recover(self, spec: AttemptSpec, begun: Handle) -> Handle | None:
        self.begun_with.append(begun)
        return {"fake": f"{spec.instance}.{spec.number}"}

    def adopt(self, handle: Handle) -> str | None:
        return ELSEWHERE


def driving(store: StateStore, backend: OutOfReach, clock: Clock) -> tuple[Controller, list[str]]:
    said: list[str] = []
    c = Controller(store, backend, clock=clock, timer=clock, say=said.append)
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


def test_an_attempt_begun_elsewhere_is_settled_with_what_it_was_begun_with(
    tmp_path: Path,
) -> None:
    """The first controller began it (recording the backend's `unstarted_handle`) and
    stopped before its start was recorded; the next one hands that to `recover`, and
    says what the backend cannot do for it."""
    store = applied(tmp_path, node("a", command=["hang"], resourceGroup="rg"), backfill())
    clock = Clock()
    first, _ = driving(store, OutOfReach(), clock)
    first.tick()  # begun and started; its handle is written with the next tick
    (attempt,) = store.attempts()
    assert (attempt.state, attempt.handle) == ("starting", {"place": "there"})
    first.release()
    backend = OutOfReach()
    _, said = driving(store, backend, clock)
    assert backend.begun_with == [{"place": "there"}]
    (a,) = store.instances()
    assert said == [f"adopted attempt 1 of {a.id} (a): {ELSEWHERE}"]
    assert [(x.state, x.handle) for x in store.attempts()] == [("running", {"fake": f"{a.id}.1"})]
