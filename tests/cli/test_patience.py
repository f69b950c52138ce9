"""Patience: reads that wait for a store away for a while, on a clock the test moves.
(Real processes on a real outage: tests/test_store_outage.py.)"""

from __future__ import annotations

import pytest

from backfill_ctl.cli.patience import Patience, StoreGone
from backfill_ctl.state import StateError, StoreLocked, StoreUnavailable

AWAY = StoreUnavailable("cannot reach the state store pg://x", hint="nothing was changed")


class Store:
    """Answers 7, except while `away` (a StateError to raise); counts its reads."""

    def __init__(self) -> None:
        self.away: StateError | None = None
        self.reads = 0

    def read(self) -> int:
        self.reads += 1
        if self.away is not None:
            raise self.away
        return 7


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def patient(limit: float = 60.0) -> tuple[Patience, Store, Clock, list[str]]:
    said: list[str] = []
    clock = Clock()
    return Patience(said.append, limit=limit, clock=clock, sleep=clock.sleep), Store(), clock, said


def test_ask_goes_on_without_the_store_says_so_once_and_again_when_it_answers() -> None:
    patience, store, clock, said = patient()
    assert patience.ask(store.read, -1) == 7
    store.away = AWAY
    assert [patience.ask(store.read, -1) for _ in range(3)] == [-1, -1, -1]
    assert store.reads == 2  # tried again only when due (0.5 s later)
    clock.now += 0.5
    assert patience.ask(store.read, -1) == -1
    assert store.reads == 3
    store.away = StoreLocked("the state store x is locked by another process")
    clock.now += 1.0
    assert (patience.ask(store.read, -1), patience.away) == (-1, True)
    store.away = None
    clock.now += 2.0
    assert (patience.ask(store.read, -1), patience.away) == (7, False)
    assert said == [
        "cannot reach the state store pg://x: waiting for the state store (1 min at most)",
        "the state store answers again: carrying on",
    ]


def test_read_tries_until_the_store_answers_waiting_longer_each_time() -> None:
    patience, store, clock, said = patient()
    store.away = AWAY
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.now += seconds
        if len(waits) == 6:
            store.away = None

    patience.sleep = sleep
    assert patience.read(store.read) == 7
    assert waits == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert len(said) == 2


def test_a_store_away_past_the_limit_is_a_clear_error() -> None:
    patience, store, clock, said = patient(limit=30.0)
    store.away = AWAY
    with pytest.raises(StoreGone) as gone:
        patience.read(store.read)
    assert clock.now >= 30.0
    assert gone.value.message.startswith("the state store has been away for 3")
    assert gone.value.message.endswith(
        ": stopped waiting for it (cannot reach the state store pg://x)"
    )
    assert gone.value.hint is not None and "nothing was changed by waiting" in gone.value.hint
    assert len(said) == 1
    store2 = Store()
    store2.away = AWAY
    with pytest.raises(StoreGone):
        while True:
            clock.now += 1.0
            patience.ask(store2.read, -1)


def test_an_error_that_will_not_pass_is_raised_at_once() -> None:
    patience, store, _, said = patient()
    store.away = StateError("the state store x is not a usable SQLite database")
    with pytest.raises(StateError) as raised:
        patience.ask(store.read, -1)
    assert not isinstance(raised.value, StoreGone)
    with pytest.raises(StateError):
        patience.read(store.read)
    assert store.reads == 2 and said == []
