"""The dashboard's turns beside a controller: one answer at a time, and at most a share
of the wall, so that browsers left open on a big backfill do not starve its loop.

`bench/serve_load.py` measures what that is worth to a running backfill; here, the
mechanism: on a fake clock the exact rests, and with real threads and HTTP requests that
answers never overlap and rest as long as the share says.
"""

from __future__ import annotations

import itertools
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from backfill_ctl.serve import SHARE, Server, Turns
from backfill_ctl.state import StateStore, open_store


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_after_an_answer_the_next_rests_three_times_as_long_at_a_quarter() -> None:
    clock = Clock()
    turns = Turns(0.25, clock=clock, sleep=clock.sleep)

    with turns.turn():
        clock.now += 0.4  # an answer of 0.4 s
    clock.now += 0.5  # a client asks again 0.5 s later
    with turns.turn():
        clock.now += 0.1
    clock.now += 10  # long after: no rest left
    with turns.turn():
        pass

    assert clock.slept == pytest.approx(
        [0.7]
    )  # 3 x 0.4 = 1.2 s after the first ended, 0.5 of it gone


def test_without_a_share_answers_take_turns_but_never_rest() -> None:
    clock = Clock()
    turns = Turns(None, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        with turns.turn():
            clock.now += 1.0
    assert clock.slept == []


def test_a_failed_answer_still_ends_its_turn() -> None:
    clock = Clock()
    turns = Turns(0.5, clock=clock, sleep=clock.sleep)
    try:
        with turns.turn():
            clock.now += 0.2
            raise RuntimeError("a bug while rendering")
    except RuntimeError:
        pass
    with turns.turn():  # (a lock left held would hang here)
        pass
    assert clock.slept == pytest.approx([0.2])


def test_pages_asked_at_once_are_answered_one_after_another_with_rests(tmp_path: Path) -> None:
    """Four clients ask for a page at once from a server with the controller's share;
    each answer takes at least 0.15 s (its store opens slowly). The answers never
    overlap, and each begins at least three times the last one's length after it."""
    db = tmp_path / "state.db"
    open_store(db).close()
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()

    class Slow:
        def __init__(self) -> None:
            self.began = time.monotonic()
            time.sleep(0.15)
            self.store = open_store(db, create=False)

        def __getattr__(self, name: str) -> object:
            return getattr(self.store, name)

        def close(self) -> None:
            self.store.close()
            with lock:
                spans.append((self.began, time.monotonic()))

    def slow_store() -> StateStore:
        return Slow()  # type: ignore[return-value]  # (a StateStore in all but its type)

    server = Server(("127.0.0.1", 0), slow_store, share=SHARE)
    codes: list[int] = []

    def ask() -> None:
        with urllib.request.urlopen(server.url + "/", timeout=60) as answer:
            codes.append(answer.status)

    try:
        clients = [threading.Thread(target=ask) for _ in range(4)]
        for c in clients:
            c.start()
        for c in clients:
            c.join(60)
    finally:
        server.stop()

    assert codes == [200] * 4
    spans.sort()
    rest = 1 / SHARE - 1
    for (began, ended), (next_began, _) in itertools.pairwise(spans):
        assert next_began >= ended + rest * (ended - began) - 0.01


def test_the_pages_scripts_do_not_wait_for_a_turn(tmp_path: Path) -> None:
    """A script asked right after a page comes at once, not after the page's rest."""
    db = tmp_path / "state.db"
    open_store(db).close()
    server = Server(("127.0.0.1", 0), lambda: open_store(db, create=False), share=1e-5)
    try:
        with urllib.request.urlopen(server.url + "/", timeout=60) as page:
            page.read()
        began = time.monotonic()
        with urllib.request.urlopen(server.url + "/static/backfills.js", timeout=60) as script:
            assert script.status == 200
        took = time.monotonic() - began
    finally:
        server.stop()
    # The page's rest at a share of 1/100,000 is 99,999 times its answer: minutes.
    assert took < 5
