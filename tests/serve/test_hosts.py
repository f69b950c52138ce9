"""Which Host headers the server answers (serve/hosts.py): DNS rebinding protection.

Real servers and real requests with the Host header a browser would send after a
rebinding (`evil.example.com:PORT`), those of an operator's browser, an SSH tunnel, a
kubelet probe (the pod's IP) and a Prometheus scrape (a Service's name)."""

from __future__ import annotations

import http.client
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from backfill_ctl.errors import UsageError
from backfill_ctl.serve import Server
from backfill_ctl.serve.hosts import AllowedHosts, allowed_names
from backfill_ctl.state import open_store
from tests.test_reliability import wait_until

EVIL = "evil.example.com"
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PAGES = ("/", "/backfills/bf", "/api/backfills/bf/cells", "/instances/x", "/static/grid.js")
PROBES = ("/healthz", "/readyz", "/metrics")


def ask(url: str, path: str, host: str | None) -> tuple[int, str]:
    """GET `path` from the server at `url` with this Host header (None: none at all)."""
    where = urlsplit(url)
    connection = http.client.HTTPConnection(where.hostname or "", where.port, timeout=10)
    try:
        if host is None:  # (http.client adds one unless told not to)
            connection.putrequest("GET", path, skip_host=True)
            connection.endheaders()
        else:
            connection.request("GET", path, headers={"Host": host})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hosts") / "state.db"
    open_store(path).close()
    return path


def serve(db: Path, host: str, allow: tuple[str, ...] = ()) -> Server:
    return Server((host, 0), lambda: open_store(db, create=False), allow_hosts=allow)


@pytest.fixture
def loopback(db: Path) -> Iterator[str]:
    server = serve(db, "127.0.0.1")
    yield server.url
    server.stop()


def port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_on_loopback_a_page_answers_a_rebound_name_403_saying_why(loopback: str) -> None:
    for path in PAGES:
        code, text = ask(loopback, path, f"{EVIL}:{port(loopback)}")
        assert code == 403, path
        assert text == (
            f"the Host header names {EVIL}, which this server does not answer for (a "
            "protection against DNS rebinding): open it as localhost or 127.0.0.1, or "
            f"start it with --allow-host {EVIL}\n"
        )
        assert ask(loopback, path, "10.0.0.7")[0] == 403  # another machine's address too


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1:{port}",
        "localhost:{port}",
        "LocalHost.:{port}",  # (names are case-insensitive; a trailing dot is the root)
        "[::1]:{port}",
        "127.0.0.1",
        "localhost:9000",  # an SSH tunnel's or kubectl port-forward's own port
        None,  # no Host at all: HTTP/1.0, never a browser
    ],
)
def test_on_loopback_loopback_names_are_answered(loopback: str, host: str | None) -> None:
    sent = host.format(port=port(loopback)) if host else None
    assert ask(loopback, "/", sent)[0] == 200


def test_probes_and_scrapes_are_answered_whatever_the_host(loopback: str) -> None:
    for path in PROBES:
        assert ask(loopback, path, f"{EVIL}:{port(loopback)}")[0] == 200, path


def test_allow_host_adds_a_name(db: Path) -> None:
    server = serve(db, "127.0.0.1", allow=("Backfills.Example.com",))
    try:
        assert ask(server.url, "/", "backfills.example.com")[0] == 200
        assert ask(server.url, "/", "backfills.example.com:443")[0] == 200
        assert ask(server.url, "/", "x.backfills.example.com")[0] == 403
    finally:
        server.stop()


def test_on_every_interface_addresses_are_answered_and_names_are_not(db: Path) -> None:
    """As in a pod (`--serve :9090`): the kubelet and Prometheus name it by its IP, which
    a web page cannot rebind; a name still has to be one it was told."""
    server = serve(db, "0.0.0.0")
    try:
        local = f"http://127.0.0.1:{port(server.url)}"
        for host in ("10.244.1.7:9090", "[fd00::7]:9090", "localhost", "10.244.1.7"):
            assert ask(local, "/backfills/bf", host)[0] == 404, host  # (answered: no such)
        assert ask(local, "/", f"{EVIL}:9090")[0] == 403
        assert ask(local, "/", "backfillctl-controller.backfill:9090")[0] == 403
    finally:
        server.stop()


def test_on_a_named_address_that_name_is_answered(db: Path) -> None:
    server = serve(db, "localhost")
    try:
        assert ask(server.url, "/", f"localhost:{port(server.url)}")[0] == 200
        assert ask(server.url, "/", EVIL)[0] == 403
    finally:
        server.stop()


def test_the_deploy_manifests_probes_and_scrape_are_answered(db: Path) -> None:
    """deploy/'s probes (the kubelet sends Host: <pod IP>:<port>) and the Service that
    Prometheus scrapes by name, on the address the manifests serve on."""
    served, probes = set(), set()
    for path in sorted(DEPLOY.rglob("controller.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "Deployment":
                for c in doc["spec"]["template"]["spec"]["containers"]:
                    if c["name"] == "controller":
                        served.add(c["args"][c["args"].index("--serve") + 1])
                        probes |= {c[p]["httpGet"]["path"] for p in c if p.endswith("Probe")}
    assert served == {":9090"} and probes == {"/healthz", "/readyz"}
    server = serve(db, "0.0.0.0")
    try:
        local = f"http://127.0.0.1:{port(server.url)}"
        for path in sorted(probes):
            assert ask(local, path, "10.244.1.7:9090")[0] == 200, path
        assert ask(local, "/metrics", "backfillctl-controller.backfill:9090")[0] == 200
    finally:
        server.stop()


def test_which_hosts(tmp_path: Path) -> None:
    loopback = AllowedHosts.listening_on("127.0.0.1")
    assert loopback.refused("localhost:1") is None
    assert loopback.refused("127.9.9.9") is None
    assert loopback.refused("[::ffff:127.0.0.1]:80") is None
    assert loopback.refused("[::1") == "[::1"  # (not a host)
    assert loopback.refused("a:b:c") == "a:b:c"
    assert loopback.refused("localhost.evil.example.com") == "localhost.evil.example.com"
    everywhere = AllowedHosts.listening_on("::", allowed_names(["ops.example.com:443"]))
    assert everywhere.refused("[2001:db8::1]:8080") is None
    assert everywhere.refused("OPS.example.com:8800") is None
    assert everywhere.refused("example.com") == "example.com"


@pytest.mark.parametrize("value", ["http://dash.example.com", "dash.example.com/x", "a:b", ""])
def test_allow_host_takes_a_host_name_only(db: Path, value: str) -> None:
    with pytest.raises(UsageError, match=f"--allow-host {value}: not a host name"):
        serve(db, "127.0.0.1", allow=(value,))


def test_backfillctl_ui_refuses_a_rebound_name_and_takes_allow_host(
    db: Path, tmp_path: Path
) -> None:
    log = tmp_path / "ui.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "backfill_ctl", "ui", "--listen", "127.0.0.1:0",
         "--allow-host", "dash.example.com", "--state-file", str(db)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )  # fmt: skip
    try:
        (url,) = wait_until(
            lambda: re.findall(r"on (http://127\.0\.0\.1:\d+)/", log.read_text()), 30, "the url"
        )
        assert ask(url, "/", f"{EVIL}:{port(url)}")[0] == 403
        assert ask(url, "/", f"dash.example.com:{port(url)}")[0] == 200
        assert ask(url, "/", f"127.0.0.1:{port(url)}")[0] == 200
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    assert "Traceback" not in log.read_text()


def test_the_controller_s_pages_are_protected_and_its_probes_are_not(tmp_path: Path) -> None:
    from tests.builders import backfill, node
    from tests.test_reliability import controller, specs

    spec_dir = specs(
        tmp_path,
        node("work", resourceGroup="rg", command="true"),
        backfill(select={"method": "descendants", "roots": ["work"]}),
    )
    log = tmp_path / "controller.log"
    process = controller(
        spec_dir, tmp_path / "state.db", log, "--as", "ops",
        "--serve", "127.0.0.1:0", "--allow-host", "dash.example.com",
    )  # fmt: skip
    try:
        (url,) = wait_until(
            lambda: re.findall(r"on (http://127\.0\.0\.1:\d+)", log.read_text()), 30, "the url"
        )
        assert ask(url, "/", f"{EVIL}:{port(url)}")[0] == 403
        assert ask(url, "/", "dash.example.com")[0] == 200
        assert ask(url, "/healthz", "10.244.1.7:9090")[0] == 200  # a kubelet's probe
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    assert "Traceback" not in log.read_text()


def test_allow_host_needs_somewhere_to_serve(tmp_path: Path) -> None:
    from tests.cli.helpers import run

    result = run("controller", str(tmp_path), "--once", "--allow-host", "dash.example.com")
    assert result.exit_code == 2
    assert "--allow-host names who may ask for pages: it needs --serve" in result.stderr
