"""Operations on a whole backfill on a real store: delete's checks and its changes are one
transaction, and what it says it cancelled is what it cancelled."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from backfill_ctl.core.records import NOT_STARTED, InstanceRecord
from backfill_ctl.state import open_store
from backfill_ctl.usecases.backfill_ops import delete_backfill
from tests.builders import backfill, node
from tests.running import NOW, applied, where

AT = NOW.timestamp()
CHAIN = (node("a", resourceGroup="rg"), node("b", upstream=["a"], resourceGroup="rg"))
TWO_DAYS = [{"from": "2024-03-01", "to": "2024-03-02"}]


def test_no_instance_starts_between_the_checks_of_a_delete_and_its_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A controller (another connection) starts an instance just after the delete read
    what to cancel. Before, the delete went on: it said it cancelled 4, cancelled 3, and
    left a running instance in a backfill marked deleted (which no controller loads)."""
    store = applied(tmp_path, *CHAIN, backfill(dates=TWO_DAYS), sqlite=True)
    controller = open_store(where(store))
    read = store.instances
    racers: list[threading.Thread] = []

    def instances(**kw: Any) -> list[InstanceRecord]:
        found = read(**kw)
        if kw.get("states") == NOT_STARTED and not racers:  # what the delete cancels
            racer = threading.Thread(
                target=controller.begin_attempt,
                args=(found[0].id, "fake"),
                kwargs={"at": AT, "actor": "controller", "origin": "controller"},
            )
            racers.append(racer)
            racer.start()
            racer.join(timeout=0.5)  # it waits for the delete's transaction, or is done
        return found

    monkeypatch.setattr(store, "instances", instances)

    done = delete_backfill(store, "bf", actor=None, by=lambda _: "ops", clock=lambda: AT)
    racers[0].join()

    monkeypatch.undo()
    record = store.backfill("bf")
    assert record is not None and record.status == "deleted"
    assert [i.state for i in store.instances()] == ["cancelled"] * 4
    assert (done.refused, done.count) == (None, 4)
    cancels = [e for e in store.events(backfill="bf") if e.to_state == "cancelled"]
    assert [(e.kind, e.from_state, e.at) for e in cancels] == [("delete", "pending", AT)] * 4
    controller.close()
