"""Contradicting options are refused (exit 2) naming both; an unopenable store is explained."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backfill_ctl.state import StateStore
from tests.builders import backfill, node
from tests.cli.helpers import run
from tests.running import applied

CHAIN = (node("a", resourceGroup="rg"), node("b", upstream=["a"], resourceGroup="rg"))


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return applied(tmp_path, *CHAIN, backfill(), backfill("other"), operators=("ops",))


@pytest.mark.parametrize("verb", ["stop", "rerun", "set-success", "freeze", "unfreeze"])
def test_an_instance_named_with_another_backfill_is_refused(store: StateStore, verb: str) -> None:
    iid = store.instances(backfill="bf", node="a")[0].id
    before = store.last_event_id()

    result = run(
        verb, iid, "--backfill", "other", "--state-file", store.path,
        env={"BACKFILLCTL_ACTOR": "ops"},
    )  # fmt: skip

    assert result.exit_code == 2
    assert f"instance {iid} belongs to backfill bf, not other" in result.stderr
    assert "--backfill other" in result.stderr
    assert store.last_event_id() == before


def test_a_store_that_is_a_directory_is_explained(tmp_path: Path) -> None:
    result = run("get", "backfills", "--state-file", str(tmp_path))

    assert result.exit_code == 2
    assert f"cannot open the state store {tmp_path}: it is a directory" in result.stderr
    assert f"hint: name the store file, like --state-file {tmp_path / 'state.db'}" in (
        result.stderr
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder")
def test_a_store_in_an_unreadable_folder_is_explained(tmp_path: Path) -> None:
    applied(tmp_path, *CHAIN, backfill())
    tmp_path.chmod(0)
    try:
        result = run("get", "backfills", "--state-file", str(tmp_path / "state.db"))
    finally:
        tmp_path.chmod(0o700)

    assert result.exit_code == 2
    assert "cannot be read and written by this user" in result.stderr
    assert "unable to open database file" not in result.stderr
