"""usecases.events, conditions and log_lines: on a real SQLite store, with the clock given."""

from __future__ import annotations

from pathlib import Path

import pytest

from backfill_ctl.core.records import EventRecord
from backfill_ctl.errors import UsageError
from backfill_ctl.state import open_store
from backfill_ctl.usecases import conditions, log_lines
from backfill_ctl.usecases import events as events_
from tests.usecases.test_progress import T0, backfill, instance, save


def test_select_filters_by_backfill_instance_and_actor(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    save(store, backfill("r"), instance("r1", bf="r"), instance("r2", bf="r"))
    store.transition(
        ["r1"], "frozen", allowed=["pending"], at=T0 + 5, actor="bob", origin="cli", reason="hold"
    )
    assert store.events(), "apply writes events"

    by_bob = events_.select(store, events_.EventFilter(actor="bob"))
    assert [(e.instance, e.from_state, e.to_state) for e in by_bob] == [("r1", "pending", "frozen")]
    assert events_.message(by_bob[0]) == "pending -> frozen: hold"
    assert events_.row(by_bob[0], T0 + 65) == (
        "1m",
        "bob",
        by_bob[0].kind,
        "instance/r1",
        "pending -> frozen: hold",
    )
    assert events_.data(by_bob[0])["time"] == "2024-03-20T01:00:05Z"
    only_r2 = events_.select(store, events_.EventFilter(instance="r2"))
    assert only_r2
    assert {e.instance for e in only_r2} == {"r2"}
    of_r = events_.select(store, events_.EventFilter(backfill="r"))
    assert len(of_r) == len(store.events(backfill="r"))
    ids = [e.id for e in of_r]
    assert ids == sorted(ids)  # newest last


def test_follow_polls_by_id(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    save(store, backfill("r"), instance("r1", bf="r"))
    after = store.last_event_id()
    moves = iter(["frozen", "pending"])
    allowed = {"frozen": ["pending"], "pending": ["frozen"]}

    def sleep() -> None:
        to = next(moves, None)
        if to is not None:
            store.transition(["r1"], to, allowed=allowed[to], at=T0, actor="a", origin="cli")

    seen = list(events_.follow(store, events_.EventFilter(instance="r1"), after, sleep, 3))
    assert [[e.to_state for e in batch] for batch in seen] == [["frozen"], ["pending"], []]


def test_subject_and_message_of_events_without_a_state() -> None:
    e = EventRecord(1, T0, "gc", "collect", backfill="r", message="3 instances")
    assert (events_.subject(e), events_.message(e)) == ("backfill/r", "3 instances")
    bare = EventRecord(2, T0, "gc", "collect")
    assert (events_.subject(bare), events_.message(bare)) == ("-", "-")


# -- conditions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "fields", "counts", "verdict"),
    [
        ("Succeeded", {"outcome": "succeeded", "finished_at": T0}, {}, "met"),
        ("Succeeded", {"outcome": "failed", "finished_at": T0}, {}, "impossible"),
        ("Succeeded", {}, {"running": 1}, "pending"),
        ("Succeeded", {"status": "deleted"}, {}, "impossible"),
        ("Failed", {"outcome": "failed", "finished_at": T0}, {}, "met"),
        ("Failed", {"outcome": "succeeded", "finished_at": T0}, {}, "impossible"),
        ("Finished", {"outcome": "failed", "finished_at": T0}, {}, "met"),
        ("Finished", {}, {"pending": 2}, "pending"),
        ("Finished", {"status": "stopped"}, {"pending": 2}, "pending"),
    ],
)
def test_judge(
    condition: str, fields: dict[str, object], counts: dict[str, int], verdict: str
) -> None:
    assert conditions.judge(condition, backfill("r", **fields), counts).verdict == verdict


def test_parse_conditions() -> None:
    assert conditions.parse("condition=succeeded") == "Succeeded"
    assert conditions.parse("Condition=Finished") == "Finished"
    with pytest.raises(UsageError, match="unknown condition 'Suceeded'") as bad:
        conditions.parse("condition=Suceeded")
    assert bad.value.hint == "did you mean 'Succeeded'?"
    with pytest.raises(UsageError, match="expected condition=NAME"):
        conditions.parse("delete")


def test_wait_until_times_out_on_its_clock() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pending = [conditions.Judged("r", "Running", conditions.Verdict.pending)]
    judged, timed_out = conditions.wait_until(
        lambda: pending, timeout=2.5, clock=lambda: now[0], sleep=sleep, interval=1.0
    )
    assert (judged, timed_out, slept) == (pending, True, [1.0, 1.0, 0.5])


# -- log lines -------------------------------------------------------------------------------


def test_tail_and_since_and_stamps() -> None:
    text = "a\nb\nc"
    assert log_lines.tail(text, 2) == "b\nc"
    assert log_lines.tail(text, 0) == ""
    assert log_lines.tail(text, None) == text
    assert log_lines.tail(text, -1) == text
    written = log_lines.Written(T0, T0 + 60)
    assert log_lines.within(written, None)
    assert log_lines.within(written, T0 + 30)  # written across the cut: whole
    assert not log_lines.within(written, T0 + 61)
    stamp = log_lines.Stamper()
    assert stamp("a\nb", T0) == "2024-03-20T01:00:00Z a\n2024-03-20T01:00:00Z b"
    assert stamp("c\nd\n", T0 + 1) == "c\n2024-03-20T01:00:01Z d\n"  # b went on
    assert stamp("", T0) == ""
