"""A large plan's process ends without freeing it (cli/teardown.py), in a real process:
its output whole and flushed, its exit code the command's, and no teardown run (an
atexit handler registered before is skipped: os._exit). LARGE is lowered to 1 in the
child, so that the example's plan counts as large."""

from __future__ import annotations

import json
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
atexit.register(lambda: marker.write_text("torn down"))
from backfill_ctl.cli.main import main
sys.argv = ["backfillctl", *sys.argv[3:]]
main()
"""


def plan(
    tmp_path: Path, large: int, specs: Path = EXAMPLE_SPECS
) -> subprocess.CompletedProcess[str]:
    marker = tmp_path / "marker"
    argv = ["plan", str(specs), "--as", "oncall", "--now", "2024-03-20", "-o", "json"]
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(large), str(marker), *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(("large", "torn_down"), [(1, False), (10**9, True)])
def test_a_large_plan_is_written_whole_then_the_process_ends_at_once(
    tmp_path: Path, large: int, torn_down: bool
) -> None:
    done = plan(tmp_path, large)

    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)  # whole: every byte flushed
    assert data["seal"] == seal_of(data)
    assert sum(len(b["instances"]) for b in data["backfills"]) == 82
    assert (tmp_path / "marker").exists() is torn_down


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
        f"teardown.keep_until_exit(large, object())\nteardown.exit_now_if_kept({code!r})\n"
        "print('never')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", child], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout, done.stderr) == (returncode, "written before", stderr)


def test_check_of_a_large_plan_also_ends_at_once(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    argv = ["check", str(EXAMPLE_SPECS), "--as", "oncall", "--now", "2024-03-20"]

    def check(large: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", CHILD, str(large), str(marker), *argv],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    done = check(1)
    assert not marker.exists()  # no teardown
    normal = check(10**9)
    assert marker.exists()
    assert (done.returncode, done.stdout) == (normal.returncode, normal.stdout)
    assert done.stdout.endswith("\n") and "fix-orders-2024-03" in done.stdout
