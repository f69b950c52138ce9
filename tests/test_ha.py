"""Highly available controllers on one PostgreSQL store (issue 14), with the real server
(BACKFILLCTL_PG=1, tests/tools/postgres.py), real `backfillctl controller` processes and
real signals. The workload is the README's example (specs/), its job wrapped so that each
run writes `start` and `end` lines to a trace: what ran is proved from the trace, not
from what the store says.

- two controllers, the active one killed with -9 mid-run: the standby takes over,
  adopts the running attempts, and every instance runs exactly once;
- the active one stopped (SIGSTOP) past its lease: the standby takes over when the lease
  expires; continued (SIGCONT), the old one starts nothing more and waits as a standby;
- the database stopped mid-run and started again: the controllers say so once, are not
  ready meanwhile, then carry on; nothing lost, nothing run twice.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from backfill_ctl.state import StateStore, StoreUnavailable, open_store
from tests.cli.helpers import run
from tests.test_reliability import controller, wait_until
from tests.tools.postgres import PostgresServer, free_port

ROOT = Path(__file__).resolve().parent.parent
LEASE = 3.0  # seconds: --lease-duration of the controllers here
TRACED = '''"""The example's job, traced: a start and an end line around it (tests/test_ha.py)."""
import os, runpy, sys, time
from pathlib import Path

def trace(word):
    line = f"{time.time():.3f} {word} {os.environ['BACKFILL_TASKID']} {os.getpid()}\\n"
    fd = os.open(os.environ["HA_TRACE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, line.encode())
    os.close(fd)

trace("start")
time.sleep(float(os.environ.get("HA_SLEEP", "0.4")))
sys.argv[0] = str(Path(__file__).with_name("etl_real.py"))
runpy.run_path(sys.argv[0], run_name="__main__")
trace("end")
'''


def example(tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """The README's example applied to the store at `url`, its job traced. (specs, trace)"""
    spec_dir = tmp_path / "specs"
    shutil.copytree(ROOT / "specs", spec_dir, ignore=shutil.ignore_patterns("out", "__pycache__"))
    jobs = spec_dir / "jobs"
    (jobs / "etl.py").rename(jobs / "etl_real.py")
    (jobs / "etl.py").write_text(TRACED)
    monkeypatch.chdir(tmp_path)  # a PostgreSQL store's backend files: .backfillctl/ here
    applied = run("apply", str(spec_dir), "--as", "oncall", "--state", url)
    assert applied.exit_code == 0, applied.stderr
    trace = tmp_path / "trace"
    monkeypatch.setenv("HA_TRACE", str(trace))  # the controllers' attempts inherit it
    return spec_dir, trace


def start(spec_dir: Path, url: str, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    return controller(spec_dir, url, log, "--lease-duration", str(LEASE), "--as", "oncall", *extra)


def runs(trace: Path) -> list[tuple[float, str, str]]:
    """(time, start | end, instance) of every line of the trace."""
    if not trace.exists():
        return []
    lines = [line.split() for line in trace.read_text().splitlines()]
    return [(float(t), word, task) for t, word, task, _ in lines]


def real_instances(store: StateStore) -> set[str]:
    return {i.id for i in store.instances() if not i.dry_run}


def finished(store: StateStore) -> bool:
    try:
        backfills = store.backfills()
    except StoreUnavailable:  # the test's own connection, after a restart: once
        return False
    return len(backfills) == 3 and all(b.outcome == "succeeded" for b in backfills)


def assert_exactly_once(store: StateStore, trace: Path) -> None:
    """Every instance that runs something ran once, start to end; nothing else ran."""
    lines = runs(trace)
    starts = Counter(task for _, word, task in lines if word == "start")
    ends = Counter(task for _, word, task in lines if word == "end")
    real = real_instances(store)
    assert len(real) == 71
    assert {t: n for t, n in starts.items() if n != 1} == {}, "run twice"
    assert set(starts) == real == set(ends)
    assert set(ends.values()) == {1}
    succeeded = Counter(a.instance for a in store.attempts() if a.state == "succeeded")
    assert set(succeeded) == real and set(succeeded.values()) == {1}


def origin_of(log: Path) -> str:
    found = re.search(r"controller (controller:\S+) drives", log.read_text())
    assert found, log.read_text()
    return found.group(1)


def stop_all(*procs: subprocess.Popen[bytes] | None) -> list[int | None]:
    codes: list[int | None] = []
    for proc in procs:
        if proc is None:
            continue
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)
        try:
            codes.append(proc.wait(20))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(proc.wait())
    return codes


def two_controllers(
    spec_dir: Path, url: str, tmp_path: Path, *extra: tuple[str, ...]
) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes], Path, Path]:
    """A, once it drives the store, then B, once it says it waits for the lease."""
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    a = start(spec_dir, url, log_a, *(extra[0] if extra else ()))
    wait_until(lambda: log_a.exists() and "drives" in log_a.read_text(), 60, "A to drive")
    b = start(spec_dir, url, log_b, *(extra[1] if extra else ()))
    wait_until(
        lambda: log_b.exists() and "waiting for the lease" in log_b.read_text(), 60, "B to wait"
    )
    return a, b, log_a, log_b


def test_kill_9_of_the_active_controller_the_standby_runs_the_rest_exactly_once(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_dir, trace = example(tmp_path, pg_url, monkeypatch)
    store = open_store(pg_url)
    a, b, _, log_b = two_controllers(spec_dir, pg_url, tmp_path)
    try:
        wait_until(lambda: len(runs(trace)) >= 20, 120, "the run to be under way")
        a.send_signal(signal.SIGKILL)
        killed = time.time()
        a.wait(10)
        wait_until(lambda: finished(store), 240, "every backfill to succeed")
    finally:
        codes = stop_all(a, b)
    assert codes[1] == 0
    assert_exactly_once(store, trace)
    first = min(t for t, word, _ in runs(trace) if word == "start" and t > killed)
    assert first - killed < LEASE + 1.0, f"the standby's first start {first - killed:.2f} s"
    text = log_b.read_text()
    assert "taking over the lease of a controller that is gone" in text
    assert "adopted attempt" in text
    # An operator elsewhere (another directory, no specs, no files of the run) sees it.
    laptop = tmp_path / "laptop"
    laptop.mkdir()
    seen = subprocess.run(
        ["backfillctl", "get", "backfills", "--state-file", pg_url],
        cwd=laptop,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert seen.returncode == 0, seen.stderr
    rows = [line.split() for line in seen.stdout.splitlines()[1:]]
    assert len(rows) == 3 and all("Succeeded" in row for row in rows), seen.stdout


def test_sigstop_past_the_lease_the_old_controller_starts_nothing_more_and_waits(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_dir, trace = example(tmp_path, pg_url, monkeypatch)
    store = open_store(pg_url)
    a, b, log_a, log_b = two_controllers(spec_dir, pg_url, tmp_path)
    try:
        wait_until(lambda: len(runs(trace)) >= 10, 120, "the run to be under way")
        a.send_signal(signal.SIGSTOP)
        paused = time.time()
        wait_until(lambda: "drives" in log_b.read_text(), LEASE + 10, "B to take over")
        took_over = time.time() - paused
        time.sleep(max(0.0, LEASE + 2 - took_over))
        a.send_signal(signal.SIGCONT)
        wait_until(
            lambda: "back to standby" in log_a.read_text(),
            30,
            "A to step down",
            lambda: f"A said:\n{log_a.read_text()[-3000:]}",
        )
        wait_until(lambda: finished(store), 240, "every backfill to succeed")
        assert a.poll() is None  # a standby: it waits, it did not exit
        wait_until(
            lambda: "waiting for the lease" in log_a.read_text().split("standby")[-1],
            10,
            "A to wait",
        )
    finally:
        codes = stop_all(a, b)
    assert codes == [0, 0]
    assert LEASE - 1.0 < took_over < LEASE + 3.0  # at the lease's end, not before
    assert_exactly_once(store, trace)
    # From B's first event on, A began no attempt.
    origin_a, origin_b = origin_of(log_a), origin_of(log_b)
    events = store.events(limit=100_000)
    b_first = min(e.id for e in events if e.origin == origin_b)
    late = [
        e for e in events if e.origin == origin_a and e.id > b_first and e.to_state == "running"
    ]
    assert late == []


def ready(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def test_the_database_restarted_mid_run_controllers_wait_and_resume(
    tmp_path: Path,
    pg_url: str,
    postgres: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec_dir, trace = example(tmp_path, pg_url, monkeypatch)
    store = open_store(pg_url)
    ports = free_port(), free_port()
    serve = tuple(("--serve", f"127.0.0.1:{p}") for p in ports)
    a, b, log_a, log_b = two_controllers(spec_dir, pg_url, tmp_path, *serve)
    try:
        wait_until(lambda: ready(ports[0]) == 200, 30, "A to be ready")
        wait_until(lambda: len(runs(trace)) >= 20, 120, "the run to be under way")
        postgres.stop()
        try:
            wait_until(lambda: ready(ports[0]) == 503, 20, "A to be not ready")
            time.sleep(LEASE + 1)  # longer than the lease: whoever writes first drives
            assert [ready(p) for p in ports] == [503, 503]
        finally:
            postgres.restart()
        wait_until(lambda: 200 in [ready(p) for p in ports], 60, "a controller to be ready")
        wait_until(lambda: finished(store), 240, "every backfill to succeed")
        assert sorted(ready(p) for p in ports) == [200, 503]  # one active, one standby
    finally:
        codes = stop_all(a, b)
    assert codes == [0, 0]
    assert_exactly_once(store, trace)
    text = log_a.read_text()
    told = [line for line in text.splitlines() if "nothing new starts" in line]
    assert len(told) == 1, text
    assert a.poll() is not None and b.poll() is not None
    _ = log_b
    os.environ.pop("HA_TRACE", None)


def test_the_lease_runs_on_the_database_clock(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A controller whose clock is an hour ahead neither expires anybody's lease early
    nor holds its own an hour too long: the times are the server's."""
    store = open_store(pg_url)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3600)  # this host's clock is skewed
    held = store.acquire_lease("A", pid=1, host="elsewhere", ttl=30)
    assert abs(held.expires_at - (real() + 30)) < 5
    assert store.acquire_lease("B", pid=2, host="here", ttl=30).holder == "A"  # not expired
