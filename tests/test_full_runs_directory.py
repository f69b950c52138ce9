"""A full runs directory (the local backend's logs and pid files), with real controller
processes: the disk that holds them has no room for a new file (no free inode) while
attempts start, and when a controller adopts attempts begun but not recorded as started.
A command whose files cannot be made never runs: the controller says so, does not crash,
and no instance fails or loses a try for it; once there is room, each runs once.
(Needs root to mount a tmpfs; CI runs as root.)"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from backfill_ctl.backends.local import LocalBackend
from backfill_ctl.state import open_store
from tests.cli.helpers import run
from tests.test_faults import _nothing_left_running, lines, start, stop, traced
from tests.test_reliability import wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["_nothing_left_running"]  # (the fixture: nothing of a test runs on after it)


@pytest.fixture
def runs_dir(tmp_path: Path) -> Iterator[Path]:
    """Where the store's runs directory goes (beside `tmp_path/state/state.db`): a tmpfs
    of 64 inodes, unmounted after the test."""
    runs = tmp_path / "state" / "runs"
    runs.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,nr_inodes=64,mode=0700", "tmpfs", str(runs)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here (run as root to test a full disk)")
    try:
        yield runs
    finally:
        subprocess.run(["umount", "-l", str(runs)], check=False)


def _fill(runs: Path) -> Path:
    """Every free inode of `runs` taken by an empty file (in a folder removed to free
    them); the folder."""
    filler = runs / "filler"
    filler.mkdir()
    n = 0
    while True:
        try:
            (filler / str(n)).touch()
        except OSError:
            return filler
        n += 1


def _backfill_dir(db: Path) -> Path:
    """The backfill's runs directory of the store `db`, made now (as a start makes it)."""
    store = open_store(db)
    directory = db.parent / "runs" / store.store_id / "bf"
    store.close()
    directory.mkdir(mode=0o700, parents=True)
    return directory


def test_attempts_started_while_the_runs_directory_is_full_neither_crash_nor_fail(
    tmp_path: Path, runs_dir: Path
) -> None:
    """The shim cannot create an attempt's log: the command never ran, its instance gets
    its try back and waits (said once), the controller goes on; with room, each runs once."""
    spec_dir, db, trace = traced(tmp_path, "true", days=3)
    _backfill_dir(db)
    filler = _fill(runs_dir)
    log = tmp_path / "controller.log"
    proc = start(spec_dir, db, log)
    store = open_store(db)
    try:
        wait_until(
            lambda: "did not run" in log.read_text(), 30, "the full disk said", log.read_text
        )
        wait_until(lambda: len(store.attempts()) >= 6, 30, "starts tried again", log.read_text)
        assert proc.poll() is None, log.read_text()
        assert store.instances(states=["failed"]) == []
        shutil.rmtree(filler)
        wait_until(
            lambda: len(store.instances(states=["succeeded"])) == 3, 60, "all", log.read_text
        )
    finally:
        stop(proc)
    text = log.read_text()
    assert "internal error" not in text
    assert text.count("did not run") == 1, text  # said once, not at every try
    assert len([x for x in lines(trace) if x[0] == "end"]) == 3
    ran = [a for a in store.attempts() if a.state != "lost"]
    assert sorted(a.instance for a in ran) == sorted(i.id for i in store.instances())
    assert {i.tries_left for i in store.instances()} == {0}  # no try lost to the disk
    for attempt in store.attempts(states=["lost"]):
        assert attempt.exit_code is None
        assert "No space left on device" in (attempt.message or "")


def test_a_controller_adopting_unstarted_attempts_on_a_full_runs_directory_waits(
    tmp_path: Path, runs_dir: Path
) -> None:
    """Attempts begun by a controller that died before recording their start: the next
    one cannot claim their pid files (no room), so it cannot tell whether they started;
    it keeps their instances running and asks again, then settles them once it can."""
    spec_dir, db, trace = traced(tmp_path, "true", days=2)
    directory = _backfill_dir(db)
    store = open_store(db)
    handle = LocalBackend(directory.parent).unstarted_handle()
    ids = [i.id for i in store.instances()]
    begun = store.begin_attempts(ids, "local", at=1.0, actor="c", origin="gone", handle=handle)
    assert sorted(begun) == sorted(ids)
    filler = _fill(runs_dir)
    log = tmp_path / "controller.log"
    proc = start(spec_dir, db, log)
    try:
        wait_until(lambda: "cannot tell yet" in log.read_text(), 30, "the wait", log.read_text)
        assert proc.poll() is None, log.read_text()
        assert {i.state for i in store.instances()} == {"running"}
        shutil.rmtree(filler)
        wait_until(
            lambda: len(store.instances(states=["succeeded"])) == 2, 60, "all", log.read_text
        )
    finally:
        stop(proc)
    assert "internal error" not in log.read_text()
    assert len([x for x in lines(trace) if x[0] == "end"]) == 2
    first = [a for a in store.attempts() if a.number == 1]
    assert {a.state for a in first} == {"lost"}  # settled as never started: claimed


def test_a_controller_whose_runs_directory_cannot_be_made_waits_for_room(
    tmp_path: Path, runs_dir: Path
) -> None:
    """The store's runs directory does not exist and there is no inode to make it: the
    controller says so once and waits (as for a store it cannot write), not exit 2;
    once there is room it makes it and runs the backfill."""
    spec_dir, db, trace = traced(tmp_path, "true", days=2)
    filler = _fill(runs_dir)
    log = tmp_path / "controller.log"
    proc = start(spec_dir, db, log)
    try:
        wait_until(
            lambda: "waiting until it can be" in log.read_text(), 30, "a wait", log.read_text
        )
        time.sleep(1.5)
        assert proc.poll() is None, log.read_text()
        said = log.read_text()
        shutil.rmtree(filler)
        store = open_store(db)
        wait_until(lambda: len(store.instances(states=["succeeded"])) == 2, 60, "the run")
        store.close()
    finally:
        stop(proc)
    assert said.count("waiting until it can be") == 1, said
    assert "not ready" not in log.read_text()
    assert len([x for x in lines(trace) if x[0] == "end"]) == 2


def test_a_runs_directory_refused_or_not_permitted_is_still_an_error(tmp_path: Path) -> None:
    """Only want of room is waited for: a runs directory that is a symlink ends the
    controller at once (exit 2), naming it."""
    spec_dir, db, _ = traced(tmp_path, "true", days=1)
    runs = db.parent / "runs"
    runs.symlink_to(tmp_path)
    refused = run("controller", str(spec_dir), "--state", str(db), "--once")
    assert refused.exit_code == 2, refused.stderr
    assert "the local backend is not ready: write logs:" in refused.stderr
    assert "waiting" not in refused.stderr
