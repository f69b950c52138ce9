"""The chaos test of issue 8, short: `bench/chaos.py` with 30 faults on a 6 x 6 DAG.

It runs the bench script as a process of its own (it makes itself the subreaper of the
attempts' orphans and mounts a tmpfs; neither belongs in the pytest process) once for the
module, then asserts each invariant in a test of its own, so that a failure names the
invariant and prints the run's evidence (and its seed: `python bench/chaos.py --seed S
--faults 30 --nodes 6 --dates 6` replays the same choices, though not the same timing).
The invariants are defined in bench/chaos.py's docstring. Real controllers, real
kill -9 / SIGSTOP / full disk: about 45-60 s on a 2-core machine.

Each runs twice: on a SQLite store, and (under BACKFILLCTL_PG=1, .ci/run's PostgreSQL
tier, `-k postgresql`) on a new database of the tier's PostgreSQL server, where disk-full
is skipped (the server's disk is not the script's to fill).

A last test interrupts a run with SIGINT (Ctrl-C) and checks that nothing it started is
left: no controller, no process of an attempt, no mount.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAOS = ROOT / "bench" / "chaos.py"
FAULTS, SEED = 30, 8
INVARIANTS = (
    "no-double-run",
    "none-lost",
    "states-match",
    "converged",
    "no-process-left",
    "integrity",
    "controllers-survive",
    "lease",
)
KINDS = ("kill-controller", "kill-shim", "kill-job", "hang", "ops-offline")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def chaos(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("chaos") / "run"
    argv = [sys.executable, str(CHAOS), "--faults", str(FAULTS), "--seed", str(SEED)]
    argv += ["--nodes", "6", "--dates", "6", "--final-timeout", "60", "--workdir", str(work)]
    if request.param == "postgresql":
        argv += ["--state", request.getfixturevalue("postgres").database()]
    proc = subprocess.Popen(
        [*argv, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        # Ctrl-C, not a kill: the script then stops what it started (controllers, the
        # attempts' processes) and unmounts its tmpfs, which a kill would leave behind.
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        finally:
            proc.kill()
        pytest.fail("bench/chaos.py did not finish in 600 s (interrupted with Ctrl-C)")
    assert proc.returncode in (0, 1), stderr[-3000:]  # 1: an invariant is violated
    result: dict[str, Any] = json.loads(stdout)
    return result


def test_the_faults_were_injected(chaos: dict[str, Any]) -> None:
    faults = chaos["faults"]
    assert faults["total"] >= FAULTS
    for kind in KINDS:
        assert faults["by_kind"].get(kind), (kind, faults)
    # SIGSTOP past the lease, or within it while --lease-duration does not exist yet
    assert faults["by_kind"].get("sigstop") or faults["by_kind"].get("sigstop-within-lease")
    assert faults["by_kind"].get("disk-full") or "disk-full" in faults["skipped"]
    assert chaos["workload"]["instances"] == 36


@pytest.mark.parametrize("invariant", INVARIANTS)
def test_invariant(chaos: dict[str, Any], invariant: str) -> None:
    verdict = chaos["invariants"][invariant]
    assert verdict["ok"], (
        f"{invariant}: {verdict['count']} violation(s) (seed {chaos['seed']}, work dir "
        f"{chaos.get('workdir')}):\n" + "\n".join(verdict["evidence"])
    )


def _ours(work: Path) -> list[str]:
    """Live processes that name the work directory (controllers, operations) or carry it
    in their environment (every process of an attempt)."""
    needle = str(work).encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                continue
            cmd = Path(f"/proc/{entry.name}/cmdline").read_bytes()
            env = Path(f"/proc/{entry.name}/environ").read_bytes()
        except (OSError, IndexError):
            continue
        if needle in cmd or needle in env:
            words = cmd.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry.name}: {words}")
    return found


def test_ctrl_c_stops_everything_it_started(tmp_path: Path) -> None:
    work = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, str(CHAOS), "--faults", "1000", "--seed", "3", "--workdir", str(work)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 180  # a loaded CI machine starts python slowly
        trace = work / "trace"
        while not (trace.exists() and trace.read_text().count("start ") >= 3):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no attempt started"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # a failed assertion: still let it clean up after itself
            proc.send_signal(signal.SIGINT)
            try:
                proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 130, err
    assert b"interrupted" in err
    assert _ours(work) == []
    assert str(work / "store") not in Path("/proc/mounts").read_text()
