"""`backfillctl gc` through the real app: what it prints, --dry-run, the Config, errors."""

from __future__ import annotations

import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backfill_ctl.state import open_store
from backfill_ctl.state import sqlite as sqlite_store
from backfill_ctl.usecases.log_cuts import cut_header
from backfill_ctl.usecases.progress import utc
from tests.builders import config, dump, resource_group
from tests.cli.helpers import NOW as NOW_ISO
from tests.cli.helpers import files_under, interruptible, ran_checkout, run, write_files
from tests.usecases.test_retention import DAY, NOW, World, instance

KEEP = 30 * DAY
LATER = "2099-01-01T00:00:00+00:00"  # past every default retention


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    found = World(tmp_path)
    yield found
    found.store.close()


def gc(world: World, *args: str) -> tuple[int, str, str]:
    result = run("gc", "--state", str(world.root / "state.db"), "--now", NOW_ISO, *args)
    return result.exit_code, result.stdout, result.stderr


def every_rule(world: World) -> dict[str, Path]:
    """Backfill "old" (finished) loses everything; "bf" loses a log and has one cut."""
    world.apply(
        instance("o1", "old"),
        instance("b1", "bf"),
        instance("b2", "bf", group="rg-exclusive"),
        instance("b3", "bf"),
        instance("b4", "bf"),
        backfills=("bf", "old"),
    )
    logs = {
        "o1": world.run("o1", ended=NOW - KEEP - 1, log=b"o" * 10),
        "b1": world.run("b1", ended=NOW - 7 * DAY - 1, log=b"1" * 20),
        "b2": world.run("b2", ended=NOW - 7 * DAY - 1, log=b"2" * 20),  # exclusive: 30d
        "b3": world.run("b3", ended=NOW - DAY, log=b"3" * (3 * 2**20 + 5)),
    }
    world.finish("old", NOW - KEEP - 1)
    return logs


def snapshot(world: World) -> tuple[list[str], dict[str, bytes]]:
    db = sqlite3.connect(world.root / "state.db")
    try:
        rows = list(db.iterdump())
    finally:
        db.close()
    files = {str(p): p.read_bytes() for p in sorted(world.root.rglob("runs/**/*")) if p.is_file()}
    return rows, files


def test_gc_says_per_rule_what_it_did_and_does_it(world: World) -> None:
    logs = every_rule(world)

    code, out, err = gc(world)

    assert code == 0
    assert out.splitlines() == [
        "Retention: instances 30d; logs shared 7d, exclusive 30d, serverless 30d; "
        "maxLogSize 3MiB (defaults).",
        "Backfills finished more than 30d ago:",
        "  - backfill/old: 1 instance(s) deleted, with 1 attempt(s) and 1 log file(s) (10B); "
        "the backfill kept as collected: applying its unchanged spec does not run it again",
        "Logs older than the retention of their resource group type:",
        "  - backfill/bf: 1 log(s) removed (20B; shared 1)",
        "Logs of finished instances larger than 3MiB:",
        "  ~ backfill/bf: 1 log(s) cut (5B removed)",
        "Collection complete: 1 instance(s) and 0 backfill(s) deleted, 1 log(s) removed, "
        "1 log(s) cut; 35B freed.",
    ]
    assert err == ""
    assert [(b.name, b.status) for b in world.store.backfills(include_deleted=True)] == [
        ("bf", "active"),
        ("old", "collected"),
    ]
    assert world.ids() == ["b1", "b2", "b3", "b4"]
    assert not logs["o1"].exists() and not logs["o1"].parent.exists()  # runs/old is gone
    assert not logs["b1"].exists() and logs["b2"].exists()
    assert logs["b3"].read_bytes() == b"[cut by backfillctl gc: 5 bytes removed]\n" + b"3" * (
        3 * 2**20
    )
    assert [(e.kind, e.backfill, e.message) for e in world.store.events() if e.kind == "gc"] == [
        ("gc", "bf", "1 log(s) removed, 1 log(s) cut"),
        ("gc", "old", "1 instance(s) deleted, the backfill kept as collected"),
    ]


def test_dry_run_says_what_it_would_do_and_changes_nothing(world: World) -> None:
    every_rule(world)
    before = snapshot(world)

    code, out, _ = gc(world, "--dry-run")

    assert code == 0
    assert out.splitlines()[2:] == [
        "  - backfill/old: 1 instance(s) to delete, with 1 attempt(s) and 1 log file(s) (10B); "
        "the backfill to keep as collected: applying its unchanged spec does not run it again",
        "Logs older than the retention of their resource group type:",
        "  - backfill/bf: 1 log(s) to remove (20B; shared 1)",
        "Logs of finished instances larger than 3MiB:",
        "  ~ backfill/bf: 1 log(s) to cut (5B to remove)",
        "Plan: 1 instance(s) and 0 backfill(s) to delete, 1 log(s) to remove, 1 log(s) to cut; "
        "35B to free.",
    ]
    assert snapshot(world) == before


def test_the_retention_and_group_types_come_from_the_specs(world: World, tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    write_files(
        specs,
        {
            "backfillctl.yaml": dump(
                config(
                    retention={
                        "instances": "2d",
                        "logs": {"shared": "1h", "exclusive": "1d"},
                        "maxLogSize": "1KiB",
                    }
                )
            ),
            "groups.yaml": dump(resource_group("rg-spec", type="exclusive")),
        },
    )
    world.apply(
        instance("gone"), instance("log", group="rg-spec"), instance("kept", group="rg-spec")
    )
    world.run("gone", ended=NOW - 2 * DAY - 1)
    world.run("log", ended=NOW - DAY - 1)
    world.run("kept", ended=NOW - DAY + 1)

    code, out, _ = gc(world, str(specs))

    assert code == 0
    assert out.splitlines()[0] == (
        "Retention: instances 2d; logs shared 1h, exclusive 1d, serverless 30d; "
        f"maxLogSize 1KiB (from {specs / 'backfillctl.yaml'}:1)."
    )
    # bf is under way (not finished): its instances stay, only their old logs go.
    assert "  - backfill/bf: 2 log(s) removed (14B; exclusive 1, shared 1)" in out.splitlines()
    assert world.ids() == ["gone", "kept", "log"]
    assert [a.log is None for a in world.store.attempts("log")] == [True]
    assert [a.log is None for a in world.store.attempts("kept")] == [False]


def test_specs_with_errors_are_refused(world: World, tmp_path: Path) -> None:
    world.apply(instance("i"))
    world.run("i", ended=NOW - KEEP - 1)
    write_files(tmp_path / "specs", {"c.yaml": dump(config(retention={"instance": "2d"}))})

    code, out, err = gc(world, str(tmp_path / "specs"))

    assert (code, out) == (1, "")
    assert "unknown field 'instance'" in err
    assert err.endswith(
        "gc refused: the retention is read from these specs; fix their errors first\n"
    )
    assert world.ids() == ["i"]


def test_nothing_to_collect(world: World) -> None:
    world.apply(instance("running"), instance("fresh"))
    world.start("running", at=NOW - 365 * DAY)
    world.run("fresh", ended=NOW - DAY)

    code, out, err = gc(world)

    assert (code, err) == (0, "")
    assert out.splitlines()[1:] == [
        "No changes: nothing is older or larger than the retention allows."
    ]


def test_a_deleted_backfill_is_removed_with_its_instances(world: World) -> None:
    world.apply(instance("i"))
    world.run("i", ended=NOW - KEEP - 10, state="failed")
    world.store.update_backfill("bf", at=NOW - KEEP - 1, actor="ops", origin="t", status="deleted")

    code, out, _ = gc(world, "--dry-run")

    assert code == 0
    assert out.splitlines()[1:3] == [
        "Backfills finished more than 30d ago:",
        "  - backfill/bf: 1 instance(s) to delete, with 1 attempt(s) and 1 log file(s) (7B); "
        "the backfill to delete (nothing left)",
    ]


def test_a_locked_store_is_a_clear_error_and_nothing_changes(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    every_rule(world)
    before = snapshot(world)
    monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT", 0.1)
    holder = sqlite3.connect(world.root / "state.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        code, _, err = gc(world)
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    assert code == 2
    assert f"error: the state store {world.root / 'state.db'} is locked by another process" in err
    assert snapshot(world) == before


def test_a_missing_store_or_a_bad_time_is_unusable_input(tmp_path: Path) -> None:
    missing = run("gc", "--state", str(tmp_path / "none.db"))
    bad_time = run("gc", "--state", str(tmp_path / "none.db"), "--now", "yesterday")

    assert (missing.exit_code, missing.stdout) == (2, "")
    assert f"error: no state store at {tmp_path / 'none.db'}" in missing.stderr
    assert not (tmp_path / "none.db").exists()
    assert (bad_time.exit_code, bad_time.stdout) == (2, "")
    assert "--now: 'yesterday' is not an ISO 8601 time" in bad_time.stderr


def test_a_file_that_cannot_be_removed_fails_the_run(world: World) -> None:
    world.apply(instance("i"))
    log = world.run("i", ended=NOW - 8 * DAY)
    log.unlink()
    log.mkdir()  # unlink() of a directory fails: as a file gc may not remove
    try:
        code, out, err = gc(world)
    finally:
        log.rmdir()

    assert code == 1
    assert "Collection complete: 0 instance(s) and 0 backfill(s) deleted, 1 log(s) removed" in out
    assert err.startswith(f"error: cannot remove {log}: ")


def test_gc_in_a_copy_of_a_checkout_removes_the_copy_s_files_not_the_original_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy's store names the original's files (absolute paths, as written): gc
    removes the files beside the store it collects, and nothing of the original."""
    ran_checkout(tmp_path / "a", monkeypatch)
    original = files_under(tmp_path / "a" / ".backfillctl" / "runs")
    assert [p.suffix for p in original] == [".log", ".pid"]
    shutil.copytree(tmp_path / "a", tmp_path / "b", symlinks=True)
    monkeypatch.chdir(tmp_path / "b")

    result = run("gc", "--now", LATER)

    assert result.exit_code == 0, result.stderr
    assert "1 instance(s) deleted, with 1 attempt(s) and 1 log file(s) (4B)" in result.stdout
    assert files_under(tmp_path / "a" / ".backfillctl" / "runs") == original
    assert files_under(tmp_path / "b" / ".backfillctl" / "runs") == {}


def test_gc_in_a_checkout_that_moved_removes_its_files_where_they_are_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran_checkout(tmp_path / "a", monkeypatch)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a").rename(tmp_path / "c")
    monkeypatch.chdir(tmp_path / "c")

    result = run("gc", "--now", LATER)

    assert result.exit_code == 0, result.stderr
    assert "1 instance(s) deleted, with 1 attempt(s) and 1 log file(s) (4B)" in result.stdout
    assert files_under(tmp_path / "c" / ".backfillctl" / "runs") == {}


def test_a_runs_directory_that_is_a_symlink_is_refused_and_nothing_changes(
    world: World, tmp_path: Path
) -> None:
    every_rule(world)
    (world.root / "runs").rename(tmp_path / "elsewhere")
    (world.root / "runs").symlink_to(tmp_path / "elsewhere")
    rows, _ = snapshot(world)
    files = files_under(tmp_path / "elsewhere")

    code, out, err = gc(world)

    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"error: {world.root / 'runs'} is a symlink, not a directory: refusing to use it; "
        "remove it (backfillctl makes it again, private to this user)",
        "gc refused: nothing was changed",
    ]
    assert snapshot(world)[0] == rows
    assert files_under(tmp_path / "elsewhere") == files


def test_a_log_gc_removed_is_said_removed_by_gc_and_when(world: World) -> None:
    """`logs`, `describe` and the dashboard say that gc removed the log (and when), not
    that the command wrote nothing."""
    from backfill_ctl.serve import views

    world.apply(instance("i"))
    log = world.run("i", ended=NOW - 8 * DAY)
    before = time.time()
    assert gc(world)[0] == 0
    after = time.time()
    assert not log.exists()
    db = ["--state", str(world.root / "state.db")]

    logs = run("logs", "i", *db)
    described = run("describe", "instance/i", *db)
    _, page, _ = views.route(world.store, "/instances/i")

    assert (logs.exit_code, logs.stdout) == (0, "")
    said = re.fullmatch(
        r"note: the log of attempt 1 of i was removed by gc at (\S+)\n", logs.stderr
    )
    assert said, logs.stderr
    when = said[1]
    assert utc(int(before)) <= when <= utc(after)
    row = next(line for line in described.stdout.splitlines() if line.startswith("  1 "))
    assert row.endswith(f"removed by gc at {when}")
    html = page.decode()
    assert f"The log was removed by gc at {when}." in html and "No output." not in html


def test_ctrl_c_while_a_log_is_cut_leaves_no_partial_file(world: World, tmp_path: Path) -> None:
    """Interrupted while it writes a cut log (a real process, SIGINT as Ctrl-C sends
    it): exit 130, each log whole or cut, and no `.gc-partial` copy left beside them."""
    specs = tmp_path / "specs"
    write_files(specs, {"backfillctl.yaml": dump(config(retention={"maxLogSize": "48MiB"}))})
    ids = [f"i{n}" for n in range(4)]
    world.apply(*(instance(i) for i in ids))
    logs = [world.run(i, ended=NOW - DAY, log=b"x" * (64 << 20)) for i in ids]
    world.store.close()
    db = str(world.root / "state.db")
    proc = subprocess.Popen(
        [sys.executable, "-m", "backfill_ctl", "gc", str(specs), "--now", NOW_ISO, "--state", db],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(world.root.rglob("*.gc-partial")):
            assert proc.poll() is None and time.monotonic() < deadline, "no partial file seen"
            time.sleep(0.0005)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
        world.store = open_store(world.root / "state.db")
    assert proc.returncode == 130, stderr
    assert stderr.splitlines()[-1] == "interrupted"
    assert list(world.root.rglob("*.gc-partial")) == []
    assert {log.stat().st_size for log in logs} <= {
        64 << 20,
        (48 << 20) + len(cut_header(16 << 20)),
    }
