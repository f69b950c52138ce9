"""`shared_map`: a fork does the last items, with real processes; what it could not do
is done here, so the results never depend on it."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from backfill_ctl.spec import forked
from backfill_ctl.spec.forked import shared_map

PARENT = os.getpid()


def square_and_pid(n: int) -> tuple[int, int]:
    return n * n, os.getpid()


def test_the_last_items_are_done_by_another_process_in_order() -> None:
    found = shared_map(square_and_pid, list(range(10)), [1] * 10, least=1)

    assert [square for square, _ in found] == [n * n for n in range(10)]
    pids = [pid for _, pid in found]
    assert pids[:5] == [PARENT] * 5  # half of the weight here
    assert len(set(pids[5:])) == 1 and pids[5] != PARENT  # the rest in one fork


def test_weights_split_the_work_not_the_count() -> None:
    found = shared_map(square_and_pid, [1, 2, 3, 4], [10, 1, 1, 8], least=1)
    assert [pid == PARENT for _, pid in found] == [True, False, False, False]


def test_too_little_work_is_done_here_alone() -> None:
    found = shared_map(square_and_pid, list(range(10)), [1] * 10, least=11)
    assert {pid for _, pid in found} == {PARENT}


def fails_in_a_fork(n: int) -> tuple[int, int]:
    if os.getpid() != PARENT:
        raise RuntimeError("the fork fails")
    return square_and_pid(n)


def dies_in_a_fork(n: int) -> tuple[int, int]:
    if os.getpid() != PARENT:
        os.kill(os.getpid(), signal.SIGKILL)
    return square_and_pid(n)


@pytest.mark.parametrize("func", [fails_in_a_fork, dies_in_a_fork], ids=["raises", "killed"])
def test_what_the_fork_could_not_do_is_done_here(func: object) -> None:
    before = children()
    found = shared_map(func, list(range(6)), [1] * 6, least=1)  # type: ignore[arg-type]

    assert found == [(n * n, PARENT) for n in range(6)]
    assert children() <= before  # and the fork was waited for: no zombie of it is left


def children() -> set[int]:
    """This process's children (of every thread), zombies included."""
    return {
        int(pid)
        for task in Path(f"/proc/{os.getpid()}/task").iterdir()
        for pid in (task / "children").read_text().split()
    }


def test_one_cpu_means_no_fork(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(forked.os, "sched_getaffinity", lambda _: {0})
    found = shared_map(square_and_pid, list(range(4)), [1] * 4, least=1)
    assert {pid for _, pid in found} == {PARENT}


def stuck_in_a_fork(n: int) -> tuple[int, int]:
    if os.getpid() != PARENT:
        time.sleep(60)
    return square_and_pid(n)


def test_a_fork_that_takes_far_longer_than_this_process_is_given_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(forked, "PATIENCE", 0.5)
    before = children()
    began = time.monotonic()

    found = shared_map(stuck_in_a_fork, list(range(4)), [1] * 4, least=1)

    assert found == [(n * n, PARENT) for n in range(4)]
    assert time.monotonic() - began < 10
    assert children() <= before  # stopped and waited for


def test_a_process_with_threads_does_not_fork() -> None:
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        found = shared_map(square_and_pid, list(range(4)), [1] * 4, least=1)
    finally:
        stop.set()
        other.join()
    assert {pid for _, pid in found} == {PARENT}
