"""A command's process ends without tearing the interpreter down (cli/teardown.py), in a
real process: its output whole and flushed, its exit code the command's, its `atexit`
handlers run and its stores closed, but nothing freed nor torn down (an object's
`__del__` at the interpreter's end does not run: os._exit). LARGE is lowered in the
child to keep the example's plan as a large one."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from backfill_ctl.usecases.plan_data import seal_of
from tests.cli.helpers import EXAMPLE_SPECS, REPO

CHILD = """
import atexit, sys
from pathlib import Path
import backfill_ctl.cli.teardown as teardown
teardown.LARGE = int(sys.argv[1])
marker = Path(sys.argv[2])
atexit.register(lambda: marker.with_suffix(".atexit").write_text("run"))


class Teardown:
    def __del__(self) -> None:  # when the interpreter tears its modules down
        marker.write_text("torn down")


kept_by_this_module = Teardown()
from backfill_ctl.cli.main import console
sys.argv = ["backfillctl", *sys.argv[3:]]
console()
"""


def python(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """`python -c CODE ARGS...` in a fresh process, this checkout first on its path."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def cli(
    tmp_path: Path, large: int, *argv: str, cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    """The console script's command `argv` (CHILD), its markers in `tmp_path`."""
    return python(CHILD, str(large), str(tmp_path / "marker"), *argv, cwd=cwd)


def plan(tmp_path: Path, large: int) -> subprocess.CompletedProcess[str]:
    argv = ["plan", str(EXAMPLE_SPECS), "--as", "oncall", "--now", "2024-03-20", "-o", "json"]
    return cli(tmp_path, large, *argv)


@pytest.mark.parametrize("large", [1, 10**9])
def test_a_plan_is_written_whole_then_the_process_ends_at_once(tmp_path: Path, large: int) -> None:
    done = plan(tmp_path, large)

    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)  # whole: every byte flushed
    assert data["seal"] == seal_of(data)
    assert sum(len(b["instances"]) for b in data["backfills"]) == 82
    assert not (tmp_path / "marker").exists()  # not torn down
    assert (tmp_path / "marker.atexit").read_text() == "run"


@pytest.mark.parametrize(
    ("code", "returncode", "stderr"), [(3, 3, ""), (None, 0, ""), ("stopped", 1, "stopped\n")]
)
def test_the_process_ends_with_the_command_s_exit_code(
    code: object, returncode: int, stderr: str
) -> None:
    child = (
        "import sys\nfrom backfill_ctl.cli import teardown\n"
        "print('written before', end='')\n"  # (buffered: flushed before the end)
        "from types import SimpleNamespace as Plan\n"
        "large = Plan(backfills=[Plan(instances=range(teardown.LARGE))])\n"
        f"teardown.keep_until_exit(large, object())\nteardown.end_now({code!r})\n"
        "print('never')\n"
    )
    done = python(child)
    assert (done.returncode, done.stdout, done.stderr) == (returncode, "written before", stderr)


def test_check_of_a_large_plan_also_ends_at_once(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    argv = ["check", str(EXAMPLE_SPECS), "--as", "oncall", "--now", "2024-03-20"]

    def check(large: int) -> subprocess.CompletedProcess[str]:
        return cli(tmp_path, large, *argv)

    done = check(1)
    assert not marker.exists()  # no teardown
    normal = check(10**9)
    assert not marker.exists()
    assert (done.returncode, done.stdout) == (normal.returncode, normal.stdout)
    assert done.stdout.endswith("\n") and "fix-orders-2024-03" in done.stdout


def test_a_store_written_to_the_end_is_closed_and_synced_before_the_process_ends(
    tmp_path: Path,
) -> None:
    """`apply --wait` ends at once, its SQLite store closed first: its WAL checkpointed
    into the file and removed, as a normal ending would (not left for the next open)."""
    true = shutil.which("true")
    assert true is not None
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "all.yaml").write_text(SPECS.replace("TRUE", true))
    done = cli(tmp_path, 1, "apply", "specs", "--as", "ops", "--wait", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert "backfill/noop: succeeded" in done.stderr
    assert not (tmp_path / "marker").exists()  # not torn down: ended at once
    assert not (tmp_path / "state.db-wal").exists()  # closed (checkpointed) first
    with contextlib.closing(sqlite3.connect(tmp_path / "state.db")) as db:
        states = db.execute("SELECT state, count(*) FROM instances GROUP BY state").fetchall()
    assert states == [("succeeded", 6)]


def test_a_store_still_held_at_the_end_is_closed_before_the_process_ends(
    tmp_path: Path,
) -> None:
    """A store something still holds (a module's global here) is closed by `end_now`
    (cli/teardown.py reads state.opened_stores), its last write synced into the file."""
    child = (
        "import sys\nfrom backfill_ctl.cli import teardown\n"
        "from backfill_ctl.state import open_store\n"
        "held = open_store(sys.argv[1])\n"
        "held.add_events('note', [(None, 'written last')], at=1.0, actor='t', origin='t')\n"
        "teardown.end_now(0)\n"
    )
    db_path = tmp_path / "state.db"
    done = python(child, str(db_path))

    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "state.db-wal").exists()
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        assert db.execute("SELECT message FROM events").fetchall() == [("written last",)]


def test_with_another_thread_running_the_process_ends_as_usual(tmp_path: Path) -> None:
    """A thread the interpreter's ending waits for (not a daemon) may still use what the
    command opened: the process then ends the usual way, the thread done first."""
    marker = tmp_path / "marker"
    child = (
        "import sys, threading, time\nfrom pathlib import Path\n"
        "from backfill_ctl.cli import teardown\n"
        "def late():\n    time.sleep(0.3)\n    Path(sys.argv[1]).write_text('done')\n"
        "threading.Thread(target=late).start()\n"
        "teardown.end_now(0)\nprint('returned', end='')\n"
    )
    done = python(child, str(marker))

    assert (done.returncode, done.stdout) == (0, "returned")
    assert marker.read_text() == "done"


SPECS = """
apiVersion: backfillctl.dev/v1alpha1
kind: Config
metadata: {name: t}
spec: {state: 'sqlite:///state.db', backend: local}
---
apiVersion: backfillctl.dev/v1alpha1
kind: Workspace
metadata: {name: ws}
spec: {timezone: UTC, operators: [ops]}
---
apiVersion: backfillctl.dev/v1alpha1
kind: Node
metadata: {name: a, workspace: ws}
spec: {schedule: '0 1 * * *', run: {command: [TRUE]}}
---
apiVersion: backfillctl.dev/v1alpha1
kind: Node
metadata: {name: b, workspace: ws}
spec: {schedule: '0 1 * * *', upstream: [a], run: {command: [TRUE]}}
---
apiVersion: backfillctl.dev/v1alpha1
kind: Backfill
metadata: {name: noop}
spec:
  select: {method: descendants, roots: [a]}
  dates: [{from: 2024-01-01, to: 2024-01-03}]
"""
