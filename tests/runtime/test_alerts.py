"""Alerts reach real peers on loopback: an HTTP server, shell commands, an SMTP server.

Every peer listens on 127.0.0.1 on a port the system picks, and every call is bounded
(the notifiers' timeout is cut to a few seconds), so a broken notifier fails its test
instead of hanging it. The last tests run a backfill to its end through the controller.
"""

from __future__ import annotations

import asyncio
import email
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

from backfill_ctl.backends.fake import FakeBackend
from backfill_ctl.core.records import BackfillRecord, InstanceRecord, Run
from backfill_ctl.runtime import alerts
from backfill_ctl.runtime.controller import Controller
from backfill_ctl.spec.model import Smtp
from backfill_ctl.state import open_store

AT = 1_710_896_400.0  # 2024-03-20T01:00:00Z
PAYLOAD = {"kind": "backfill-finished", "backfill": "bf", "outcome": "failed"}


@pytest.fixture(autouse=True)
def bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short timeouts, and no proxy between us and loopback."""
    monkeypatch.setattr(alerts, "TIMEOUT", 5.0)
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "*")


def record(*notify: dict[str, Any], when: str = "always") -> BackfillRecord:
    return BackfillRecord(
        "bf", "sha256:abc", {}, file="specs/bf.yaml", alert_when=when, notify=notify
    )


# -- an HTTP server ------------------------------------------------------------------------


class Hook:
    """A webhook receiver: what it was sent, and the status it answers with."""

    def __init__(self, status: int = 204) -> None:
        self.status = status
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.requests.append((self.command, self.path, dict(self.headers), body))
                self.send_response(hook.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def hook() -> Iterator[Hook]:
    found = Hook()
    yield found
    found.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when we leave: nobody listens


def test_a_webhook_is_a_json_post(hook: Hook) -> None:
    failures = alerts.notify(record({"webhook": hook.url}), PAYLOAD, None)

    assert failures == []
    ((method, path, headers, body),) = hook.requests
    assert (method, path) == ("POST", "/hook")
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == PAYLOAD


def test_a_webhook_that_answers_500_is_a_failure(hook: Hook) -> None:
    hook.status = 500

    failures = alerts.notify(record({"webhook": hook.url}), PAYLOAD, None)

    assert failures == [f"webhook {hook.url}: HTTP Error 500: Internal Server Error"]
    assert len(hook.requests) == 1


def test_a_webhook_nobody_listens_to_is_a_failure() -> None:
    url = f"http://127.0.0.1:{closed_port()}/hook"

    (failure,) = alerts.notify(record({"webhook": url}), PAYLOAD, None)

    assert failure.startswith(f"webhook {url}: ")
    assert "refused" in failure


def test_a_peer_that_is_not_http_is_a_failure_not_an_exception() -> None:
    """http.client's own errors (here BadStatusLine) are not OSErrors."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(5)

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    try:
        (failure,) = alerts.notify(record({"webhook": url}), PAYLOAD, None)
    finally:
        thread.join(5)
        listener.close()

    assert failure.startswith(f"webhook {url}: ")


# -- commands --------------------------------------------------------------------------


def test_a_command_gets_the_json_on_stdin(tmp_path: Path) -> None:
    argv = tmp_path / "argv.json"
    text = tmp_path / "text.json"
    notifiers = (
        {"command": ["/bin/sh", "-c", 'cat > "$0"', str(argv)]},
        {"command": f"cat > '{text}'"},  # a string runs with /bin/sh -c
    )

    failures = alerts.notify(record(*notifiers), PAYLOAD, None)

    assert failures == []
    assert json.loads(argv.read_text()) == PAYLOAD
    assert json.loads(text.read_text()) == PAYLOAD


def test_a_command_inherits_none_of_backfillctl_s_own_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not the store (whose URL may hold its password), libpq's password or passfile,
    nor the Config's SMTP password (backends/environment.py); the rest it inherits."""
    secret = "s3cr3t-pw"
    monkeypatch.setenv("BACKFILLCTL_STATE", f"postgresql://ann:{secret}@db/bf")
    monkeypatch.setenv("PGPASSWORD", secret)
    monkeypatch.setenv("PGPASSFILE", "/etc/backfillctl/pgpass")
    monkeypatch.setenv("SMTP_PASSWORD", secret)
    monkeypatch.setenv("BFC_KEPT", "kept")
    smtp = Smtp(host="mail", sender="bf@example.com", username="bf", password_env="SMTP_PASSWORD")
    out = tmp_path / "env"

    assert alerts.notify(record({"command": f"env > '{out}'"}), PAYLOAD, smtp) == []

    shown = out.read_text()
    assert secret not in shown and "PGPASSFILE" not in shown
    assert "BFC_KEPT=kept" in shown.splitlines()


def test_a_command_that_fails_is_reported_with_its_exit_code() -> None:
    argv = ["/bin/sh", "-c", "echo 'no route to pager' >&2; exit 3"]

    failures = alerts.notify(record({"command": argv}), PAYLOAD, None)

    assert failures == [f"command {argv}: exit code 3 no route to pager"]


def test_a_command_that_hangs_is_given_up_at_the_timeout_with_what_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its child keeps its output open: waiting for that to close would hold the
    controller's loop for as long as the child lives."""
    monkeypatch.setattr(alerts, "TIMEOUT", 0.5)
    child = tmp_path / "child.pid"
    argv = ["/bin/sh", "-c", f'sleep 60 & echo $! > "{child}"; wait']
    started = time.monotonic()

    failures = alerts.notify(record({"command": argv}), PAYLOAD, None)

    assert time.monotonic() - started < 5
    assert failures == [f"command {argv}: timed out after 0.5 s"]
    pid = int(child.read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_a_missing_command_is_a_failure(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-notifier")

    (failure,) = alerts.notify(record({"command": [missing]}), PAYLOAD, None)

    assert failure.startswith(f"command [{missing!r}]: ")
    assert "No such file" in failure


# -- email -------------------------------------------------------------------------------


class Inbox:
    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server (aiosmtpd) on loopback, in its own event loop thread."""
    inbox = Inbox()
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        loop.create_server(
            lambda: SMTPServer(inbox, hostname="localhost", loop=loop), "127.0.0.1", 0
        )
    )
    port = int(server.sockets[0].getsockname()[1])
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield inbox, port
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    server.close()
    loop.run_until_complete(server.wait_closed())
    loop.close()


def test_an_email_goes_through_the_configured_smtp_server(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    config = Smtp(host="127.0.0.1", sender="backfillctl@example.com", port=port)

    failures = alerts.notify(record({"email": "oncall@example.com"}), PAYLOAD, config)

    assert failures == []
    (envelope,) = inbox.envelopes
    assert (envelope.mail_from, envelope.rcpt_tos) == (
        "backfillctl@example.com",
        ["oncall@example.com"],
    )
    assert isinstance(envelope.content, bytes)
    message: Message = email.message_from_bytes(envelope.content)
    assert (message["From"], message["To"], message["Subject"]) == (
        "backfillctl@example.com",
        "oncall@example.com",
        "backfill bf failed",
    )
    assert message.get_content_type() == "text/plain"
    body = message.get_payload(decode=True)
    assert isinstance(body, bytes)
    assert json.loads(body) == PAYLOAD


def test_an_email_without_an_smtp_config_is_a_failure() -> None:
    failures = alerts.notify(record({"email": "oncall@example.com"}), PAYLOAD, None)

    assert failures == [
        "email oncall@example.com: no SMTP server: set spec.alerts.smtp in the Config"
    ]


def test_an_smtp_server_nobody_runs_is_a_failure() -> None:
    config = Smtp(host="127.0.0.1", sender="backfillctl@example.com", port=closed_port())

    (failure,) = alerts.notify(record({"email": "oncall@example.com"}), PAYLOAD, config)

    assert failure.startswith("email oncall@example.com: ")
    assert "refused" in failure


def test_every_notifier_is_tried_whatever_the_others_do(hook: Hook, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    notifiers = (
        {"command": ["/bin/sh", "-c", "exit 3"]},
        {"email": "oncall@example.com"},
        {"webhook": hook.url},
        {"command": ["/bin/sh", "-c", 'cat > "$0"', str(out)]},
    )

    failures = alerts.notify(record(*notifiers), PAYLOAD, None)

    assert [f.split(":")[0] for f in failures] == [
        "command ['/bin/sh', '-c', 'exit 3']",
        "email oncall@example.com",
    ]
    assert len(hook.requests) == 1 and json.loads(out.read_text()) == PAYLOAD


# -- when, and the event ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "outcome", "expected"),
    [
        ("always", "succeeded", True),
        ("always", "failed", True),
        ("never", "succeeded", False),
        ("never", "failed", False),
        ("failure", "succeeded", False),
        ("failure", "failed", True),
        ("success", "succeeded", True),
        ("success", "failed", False),
    ],
)
def test_wanted(when: str, outcome: str, expected: bool) -> None:
    assert alerts.wanted(when, outcome) is expected


def test_the_event_says_what_finished_and_how() -> None:
    bf = BackfillRecord("bf", "sha256:abc", {}, file="specs/bf.yaml", labels={"ticket": "DATA-1"})

    assert alerts.event(bf, "succeeded", {"succeeded": 3}, AT) == {
        "kind": "backfill-finished",
        "backfill": "bf",
        "outcome": "succeeded",
        "counts": {"succeeded": 3},
        "labels": {"ticket": "DATA-1"},
        "file": "specs/bf.yaml",
        "digest": "sha256:abc",
        "finishedAt": AT,
    }


# -- through the controller ------------------------------------------------------------------


def task(id: str, backfill: str, depends_on: tuple[str, ...] = ()) -> InstanceRecord:
    return InstanceRecord(
        id=id,
        backfill=backfill,
        node=f"node-{id}",
        bizdate="2024-03-01",
        cyctime="2024-03-02T02:00:00+00:00",
        cyctime_epoch=AT - 86400,
        timezone="UTC",
        group=0,
        sequence=0,
        priority=1,
        depends_on=depends_on,
        run=Run(command=("true",)),
        resource_group="default",
        created_at=AT - 3600,
        updated_at=AT - 3600,
    )


def test_the_controller_alerts_once_when_a_backfill_finishes_and_survives_a_failing_notifier(
    hook: Hook, tmp_path: Path
) -> None:
    store = open_store(tmp_path / "state.db")
    failing = ["/bin/sh", "-c", "echo pager down >&2; exit 3"]
    store.save_apply(
        [
            # "quick" finishes first, and one of its notifiers fails
            BackfillRecord(
                "quick",
                "sha256:q",
                {},
                alert_when="always",
                notify=({"command": failing}, {"webhook": hook.url}),
            ),
            # "chain" needs more ticks: the loop must go on after the failure to finish it
            BackfillRecord(
                "chain", "sha256:c", {}, alert_when="success", notify=({"webhook": hook.url},)
            ),
            BackfillRecord(
                "quiet", "sha256:n", {}, alert_when="failure", notify=({"webhook": hook.url},)
            ),
        ],
        [
            task("q1", "quick"),
            task("c1", "chain"),
            task("c2", "chain", ("c1",)),
            task("c3", "chain", ("c2",)),
            task("n1", "quiet"),
        ],
        [],
        [],
        at=AT - 3600,
        actor="tester",
        origin="test",
    )
    said: list[str] = []
    controller = Controller(store, FakeBackend(), clock=lambda: AT, say=said.append)
    assert controller.acquire(wait=False)
    controller.load()

    finished: list[str] = []
    for _ in range(20):
        finished += controller.tick().finished
    controller.release()

    assert sorted(finished) == ["chain", "quick", "quiet"]
    assert [json.loads(body)["backfill"] for _, _, _, body in hook.requests] == ["quick", "chain"]
    assert all(json.loads(body)["outcome"] == "succeeded" for *_, body in hook.requests)
    quick, chain, quiet = (store.backfill(n) for n in ("quick", "chain", "quiet"))
    assert quick is not None and chain is not None and quiet is not None
    assert (quick.finished_at, quick.outcome, quick.notified_at) == (AT, "succeeded", AT)
    assert (chain.outcome, chain.notified_at) == ("succeeded", AT)
    assert (quiet.outcome, quiet.notified_at) == ("succeeded", None)  # when: failure
    failure = f"alert failed: command {failing}: exit code 3 pager down"
    assert [e.message for e in store.events(backfill="quick") if e.kind == "backfill"] == [
        failure,
        "finished: succeeded",
    ]
    assert said == [f"alert for quick failed: command {failing}: exit code 3 pager down"]
    store.close()


def test_the_controller_imports_no_sender_until_it_sends() -> None:
    """http, smtplib, email and ssl cost ~15 ms on every controller's start (apply
    --wait): imported where an alert is sent."""
    probe = (
        "import sys\n"
        "import backfill_ctl.runtime.controller\n"
        "print(sorted(m for m in ('http.client', 'smtplib', 'ssl', 'email.message',"
        " 'urllib.request') if m in sys.modules))\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]"
