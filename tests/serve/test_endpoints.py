"""/healthz, /readyz and /metrics: a real server on a free port, a real SQLite store, and
a real `backfillctl controller --serve` process (a second one waiting for the lease).
What every request gets when the store cannot be read or its query is not understood,
and the addresses `ui --listen` takes."""

from __future__ import annotations

import json
import re
import signal
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
from tests.tools.postgres import PASSWORD, PostgresServer


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


# -- what every request gets back, whatever goes wrong -----------------------------------

ENDPOINTS = (
    "/",
    "/backfills/bf",
    "/backfills/bf?state=failed",
    "/api/backfills/bf/cells",
    "/instances/i1",
    "/api/instances/i1/log?offset=0",
    "/static/grid.js",
)


def answer(url: str, path: str) -> tuple[int | None, str, str]:
    """(status, body, Content-Type); status None when the server closed with no answer."""
    try:
        with urllib.request.urlopen(url + path, timeout=10) as response:
            return response.status, response.read().decode(), response.headers["Content-Type"]
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers["Content-Type"]
    except (urllib.error.URLError, ConnectionError) as exc:  # (no response at all)
        return None, str(exc), ""


def ui(db: Path | str, log: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "backfill_ctl", "ui", "--state-file", str(db), *extra],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )  # fmt: skip

    def url() -> list[str]:
        if process.poll() is not None:
            pytest.fail(log.read_text())
        return re.findall(r" on (http://\S+:\d+)/ ", log.read_text())

    return process, wait_until(url, 30, "the url")[0]


def stopped(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(10)


def assert_unavailable(url: str, reason: str) -> None:
    """Every page and API endpoint answers 503 with the reason (JSON for the API's);
    the probes say it too."""
    for path in ENDPOINTS:
        code, body, kind = answer(url, path)
        assert code == 503, (path, body)
        if path.startswith("/api/"):
            assert kind == "application/json", path
            assert json.loads(body)["error"].startswith(reason), path
        else:
            assert kind.startswith("text/html"), path
            assert reason in body, path
    assert answer(url, "/readyz")[0] == 503
    assert answer(url, "/metrics")[0] == 503


def test_a_store_that_cannot_be_read_is_a_503_with_the_reason_on_every_page(
    tmp_path: Path,
) -> None:
    db = tmp_path / "state.db"
    open_store(db).close()
    process, url = ui(db, tmp_path / "ui.log", "--listen", "127.0.0.1:0")
    try:
        assert answer(url, "/")[0] == 200
        db.rename(tmp_path / "away.db")
        assert_unavailable(url, f"the state store cannot be read: no state store at {db}")
    finally:
        assert stopped(process) == 0
    assert "Traceback" not in (tmp_path / "ui.log").read_text()


def test_a_postgresql_store_that_stopped_is_a_503_on_every_page(
    tmp_path: Path, pg_url: str, postgres: PostgresServer
) -> None:
    open_store(pg_url).close()
    process, url = ui(pg_url, tmp_path / "ui.log", "--listen", "127.0.0.1:0")
    try:
        assert answer(url, "/backfills/bf")[0] == 404  # (answered: no such backfill)
        postgres.stop()
        try:
            assert_unavailable(url, "the state store cannot be read: cannot reach the state store")
        finally:
            postgres.restart()
        assert answer(url, "/")[0] == 200  # the next request connects again
    finally:
        assert stopped(process) == 0
    text = (tmp_path / "ui.log").read_text()
    assert "Traceback" not in text and PASSWORD not in text


def test_a_query_that_is_not_understood_is_a_400_with_the_reason(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    open_store(db).close()
    process, url = ui(db, tmp_path / "ui.log", "--listen", "127.0.0.1:0")
    try:
        code, body, kind = answer(url, "/api/instances/i1/log?offset=abc")
        assert (code, kind) == (400, "application/json")
        assert json.loads(body) == {
            "error": "offset=abc: a number of bytes (0 or more) into the log, as the page sends"
        }
        for offset in ("-1", "1.5", "9" * 5000, "%00"):
            assert answer(url, f"/api/instances/i1/log?offset={offset}")[0] == 400, offset
        code, body, kind = answer(url, "/backfills/bf?state=%3Cb%3E")
        assert (code, kind) == (400, "text/html; charset=utf-8")
        assert "state=&lt;b&gt;: not a state; one of failed, blocked, running" in body
    finally:
        assert stopped(process) == 0
    assert "Traceback" not in (tmp_path / "ui.log").read_text()


def test_ui_listens_on_ipv6_loopback(tmp_path: Path) -> None:
    import socket

    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    db = tmp_path / "state.db"
    open_store(db).close()
    process, url = ui(db, tmp_path / "ui.log", "--listen", "[::1]:0")
    try:
        assert url.startswith("http://[::1]:")
        assert answer(url, "/")[0] == 200
    finally:
        assert stopped(process) == 0


def test_ui_s_errors_name_its_own_option(tmp_path: Path) -> None:
    from tests.cli.helpers import run

    db = tmp_path / "state.db"
    open_store(db).close()
    server = Server(("127.0.0.1", 0), lambda: open_store(db, create=False))
    try:
        busy = server.url.rsplit(":", 1)[1]
        taken = run("ui", "--listen", f"127.0.0.1:{busy}", "--state-file", str(db))
    finally:
        server.stop()
    assert taken.exit_code == 2
    assert taken.stderr.splitlines()[-1] == "  hint: choose a free port with --listen HOST:PORT"
    bad = run("ui", "--listen", "nowhere:http", "--state-file", str(db))
    assert bad.exit_code == 2 and bad.stderr.startswith("error: --listen nowhere:http: not")
