"""/healthz, /readyz and /metrics: a real server on a free port, a real SQLite store, and
a real `backfillctl controller --serve` process (a second one waiting for the lease)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from backfill_ctl.errors import UsageError
from backfill_ctl.serve import Health, Server, parse_address
from backfill_ctl.state import open_store
from tests.builders import backfill, node
from tests.test_reliability import specs, wait_until


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("8080", ("127.0.0.1", 8080)),
        ("127.0.0.1:9", ("127.0.0.1", 9)),
        (":8080", ("0.0.0.0", 8080)),
        ("[::1]:8080", ("::1", 8080)),
    ],
)
def test_the_address_to_serve_on(text: str, address: tuple[str, int]) -> None:
    assert parse_address(text) == address


@pytest.mark.parametrize("text", ["", "host:", "host:http", "127.0.0.1:70000"])
def test_a_bad_address_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="not an address"):
        parse_address(text)


def test_health_goes_stale_when_the_loop_stops_beating() -> None:
    health = Health(stale=0.2)
    health.beat("active", "")
    assert health.live()[0] and health.ready()[0]
    health.beat("standby", "waiting for the lease of pid 7 on h")
    assert health.live()[0]
    assert health.ready() == (False, "standby: waiting for the lease of pid 7 on h")
    time.sleep(0.3)
    alive, why = health.live()
    assert not alive and why.startswith("no tick for 0 s (stuck in standby")


def test_without_a_controller_ready_means_the_store_can_be_read(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    open_store(db).close()
    server = Server(("127.0.0.1", 0), lambda: open_store(db, create=False))
    try:
        assert get(server.url + "/healthz") == (200, "ok\n")
        assert get(server.url + "/readyz") == (200, "ok\n")
        code, text = get(server.url + "/metrics")
        assert code == 200 and "backfillctl_instances" in text
        assert get(server.url + "/nope")[0] == 404
        db.unlink()
        code, text = get(server.url + "/readyz")
        assert code == 503 and text.startswith("the state store cannot be read")
    finally:
        server.stop()


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    server = Server(("127.0.0.1", 0), lambda: open_store(tmp_path / "s.db"))
    try:
        port = int(server.url.rsplit(":", 1)[1])
        with pytest.raises(UsageError, match=f"cannot serve on 127.0.0.1:{port}"):
            Server(("127.0.0.1", port), lambda: open_store(tmp_path / "s.db"))
    finally:
        server.stop()


def serving(spec_dir: Path, db: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    process = subprocess.Popen(
        [
            sys.executable, "-m", "backfill_ctl", "controller", str(spec_dir),
            "--state", str(db), "--interval", "0.1", "--serve", "127.0.0.1:0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )  # fmt: skip

    def url() -> list[str]:
        if process.poll() is not None:
            pytest.fail(log.read_text())
        return re.findall(r"serving .* on (http://127\.0\.0\.1:\d+)", log.read_text())

    found = wait_until(url, 30, "the endpoints")
    return process, found[0]


def test_the_controller_serves_its_health_and_metrics(tmp_path: Path) -> None:
    work = node("work", resourceGroup="rg", command="sleep 0.2")
    spec_dir = specs(
        tmp_path,
        work,
        backfill(
            select={"method": "descendants", "roots": ["work"]},
            dates=[{"from": "2024-03-01", "to": "2024-03-04"}],
        ),
    )
    db = tmp_path / "state.db"
    from tests.cli.helpers import run

    assert run("apply", str(spec_dir), "--state", str(db)).exit_code == 0
    first, url = serving(spec_dir, db, tmp_path / "first.log")
    second = None
    try:
        store = open_store(db)
        wait_until(lambda: len(store.instances(states=["succeeded"])) == 4, 60, "the run")
        wait_until(lambda: get(url + "/readyz")[0] == 200, 10, "ready")
        assert get(url + "/healthz")[0] == 200
        code, metrics = get(url + "/metrics")
        assert code == 200
        assert 'backfillctl_instances{backfill="bf",state="succeeded"} 4.0' in metrics
        assert "backfillctl_attempts_started_total 4.0" in metrics
        assert 'backfillctl_attempts_ended_total{outcome="succeeded"} 4.0' in metrics
        assert re.search(rf'backfillctl_lease_holder{{.*pid="{first.pid}"}} 1\.0', metrics)
        ticks = re.search(r"backfillctl_tick_seconds_count (\d+)", metrics)
        assert ticks and int(ticks.group(1)) >= 4
        assert "backfillctl_queue_depth" in metrics
        code, page = get(url + "/backfills/bf")  # the dashboard is served there too
        assert code == 200 and 'data-cell="work|2024-03-04"' in page

        second, standby = serving(spec_dir, db, tmp_path / "second.log")
        assert get(standby + "/healthz")[0] == 200  # alive: it waits for the lease
        code, why = get(standby + "/readyz")
        assert code == 503 and why.startswith(f"standby: waiting for the lease of pid {first.pid}")
    finally:
        for process in (first, second):
            if process is not None:
                process.terminate()
                assert process.wait(20) == 0
