"""`backfillctl events` through the real app, on a real SQLite store (test_progress's)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from backfill_ctl.cli import events
from backfill_ctl.state import StateStore, open_store
from tests.cli.helpers import run
from tests.usecases.test_progress import T0, make_store


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StateStore:
    monkeypatch.setattr(events, "clock", lambda: T0)
    (tmp_path / "logs").mkdir()
    return make_store(tmp_path / "s.db", tmp_path / "logs")


def cli(store: StateStore, *args: str) -> str:
    result = run("events", *args, "--state-file", store.path)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_events_of_an_instance_newest_last(store: StateStore) -> None:
    assert cli(store, "instance/b1").splitlines() == [
        "LAST SEEN  ACTOR       KIND        OBJECT       MESSAGE",
        "2h         alice       created     instance/b1  -> pending",
        "50m        controller  transition  instance/b1  pending -> running: attempt 1",
        "49m        controller  transition  instance/b1  running -> failed: exit code 2",
    ]


def test_events_of_a_backfill_by_an_actor_as_data(store: StateStore) -> None:
    shown = yaml.safe_load(cli(store, "backfill/old", "--actor", "bob", "-o", "yaml"))
    assert [(e["object"], e["kind"], e["actor"]) for e in shown] == [
        ("instance/o1", "delete", "bob"),
        ("backfill/old", "backfill", "bob"),
    ]
    every = json.loads(cli(store, "fix-orders", "-o", "json"))  # a bare name: the backfill
    assert {e["backfill"] for e in every} == {"fix-orders"}
    assert [e["id"] for e in every] == sorted(e["id"] for e in every)
    assert json.loads(cli(store, "a1", "-o", "json"))[0]["instance"] == "a1"  # else an instance


def test_events_of_an_unknown_object(store: StateStore) -> None:
    result = run("events", "backfill/nope", "--state-file", store.path)
    assert result.exit_code == 2
    assert f"error: no backfill 'nope' in {store.path}" in result.stderr


def test_watch_prints_new_events_as_they_come(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = open_store(Path(store.path))
    moves = iter([("frozen", ["pending"], "alice"), ("pending", ["frozen"], "bob")])

    def sleep(seconds: float) -> None:
        assert seconds == events.WATCH_INTERVAL
        move = next(moves, None)
        if move is not None:
            to, allowed, who = move
            writer.transition(["b2"], to, allowed=allowed, at=T0, actor=who, origin="cli")

    monkeypatch.setattr(events, "_sleep", sleep)
    shown = cli(store, "b2", "-w", "--watch-limit", "3")
    assert shown.splitlines()[-2:] == [
        "0s         alice  transition  instance/b2  pending -> frozen",
        "0s         bob    transition  instance/b2  frozen -> pending",
    ]
    only_bob = cli(store, "b2", "--actor", "bob", "-w", "--watch-limit", "1", "-o", "json")
    assert [e["actor"] for e in json.loads(only_bob)] == ["bob"]


def test_help_has_examples() -> None:
    assert "Examples:\n    backfillctl events" in run("events", "-h").stdout
