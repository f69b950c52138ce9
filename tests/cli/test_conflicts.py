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


@pytest.mark.parametrize(
    "args",
    [
        ("validate", "specs"),
        ("plan", "specs"),
        ("check", "specs"),
        ("diff", "specs"),
        ("get", "backfills"),
        ("get", "instances"),
        ("describe", "backfill/bf"),
        ("events",),
    ],
)
def test_output_given_twice_is_refused_for_every_command_that_has_it(
    store: StateStore, args: tuple[str, ...]
) -> None:
    result = run(*args, "-o", "json", "--output", "yaml", "--state-file", store.path)

    assert result.exit_code == 2
    assert "-o/--output given twice (json, yaml): give it once" in result.stderr
    assert result.stdout == ""


def test_other_options_given_twice_keep_the_last_as_kubectl_does(store: StateStore) -> None:
    twice = run(
        "get", "instances", "--backfill", "bf", "-b", "other", "-o", "name",
        "--state-file", store.path,
    )  # fmt: skip
    other = run("get", "instances", "--backfill", "other", "-o", "name", "--state-file", store.path)

    assert twice.exit_code == 0, twice.stderr
    assert twice.stdout == other.stdout != ""


def test_get_instances_refuses_an_instance_named_with_another_backfill(store: StateStore) -> None:
    iid = store.instances(backfill="bf", node="a")[0].id

    result = run("get", "instances", iid, "--backfill", "other", "--state-file", store.path)
    agreeing = run("get", "instances", iid, "--backfill", "bf", "-o", "name",
                   "--state-file", store.path)  # fmt: skip

    assert result.exit_code == 2
    assert f"instance {iid} belongs to backfill bf, not other" in result.stderr
    assert result.stdout == ""
    assert (agreeing.exit_code, agreeing.stdout) == (0, f"instance/{iid}\n")
