"""Extension checks (issue 9, item 7): real policy commands and a real webhook on
loopback, through the real CLI. A failed check blocks apply; check shows it at the
Backfill's line; a broken policy blocks too (it fails closed)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from backfill_ctl.state import open_store
from tests.builders import API, backfill, dump, node, resource_group, workspace
from tests.cli.helpers import NOW, REPO, run, write_files

POLICY = REPO / "specs" / "policies" / "max_dates.py"
THREE_DAYS = [{"from": "2024-03-01", "to": "2024-03-03"}]


def repo(root: Path, policies: list[dict[str, Any]], days: list[Any]) -> str:
    config = {"apiVersion": API, "kind": "Config", "spec": {"policies": policies}}
    write_files(
        root / "specs",
        {
            "backfillctl.yaml": dump(config),
            "catalog.yaml": dump(
                workspace("dw", operators=("ops",)),
                resource_group("rg", 2),
                node("a", workspace="dw", resourceGroup="rg", command="true"),
            ),
            "backfill.yaml": dump(backfill(dates=days)),
        },
    )
    return str(root / "specs")


def max_dates(n: int) -> dict[str, Any]:
    argv = ["python3", str(POLICY), "--workspace", "dw", "--max-dates", str(n)]
    return {"name": "max-dates", "command": argv}


def test_a_failed_policy_is_shown_by_check_and_blocks_apply(tmp_path: Path) -> None:
    path = repo(tmp_path, [max_dates(2)], THREE_DAYS)

    check = run("check", path, "--as", "ops", "--now", NOW)
    applied = run("apply", path, "--as", "ops", "--now", NOW, "--state", str(tmp_path / "s.db"))

    assert check.exit_code == 1
    assert (
        f"{path}/backfill.yaml:5:1: error [policy:max-dates]: $.spec: policy max-dates: it runs "
        "3 business dates of workspace dw; at most 2 are allowed"
    ) in check.stdout + check.stderr
    assert applied.exit_code == 1
    assert "apply refused" in applied.stderr
    assert not (tmp_path / "s.db").exists() or open_store(tmp_path / "s.db").instances() == []


def test_a_policy_that_passes_lets_apply_go_on(tmp_path: Path) -> None:
    path = repo(tmp_path, [max_dates(3)], THREE_DAYS)
    applied = run("apply", path, "--as", "ops", "--now", NOW, "--state", str(tmp_path / "s.db"))
    assert applied.exit_code == 0, applied.stderr
    assert len(open_store(tmp_path / "s.db").instances()) == 3


def test_a_policy_command_inherits_none_of_backfillctl_s_own_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """apply runs policies with the store's URL (and its password) at hand: the policy
    gets neither (backends/environment.py)."""
    secret = "s3cr3t-pw"
    monkeypatch.setenv("PGPASSWORD", secret)
    monkeypatch.setenv("BACKFILLCTL_NOW", NOW)
    out = tmp_path / "env"
    shown = f"import os, json; open({str(out)!r}, 'w').write(json.dumps(dict(os.environ)))"
    answer = "print(json.dumps({'findings': []}))"
    policy = {"name": "env", "command": ["python3", "-c", f"{shown}; {answer}"]}
    path = repo(tmp_path, [policy], THREE_DAYS)
    state = f"sqlite:///{tmp_path}/s.db"
    monkeypatch.setenv("BACKFILLCTL_STATE", state)

    applied = run("apply", path, "--as", "ops")

    assert applied.exit_code == 0, applied.stderr
    seen = json.loads(out.read_text())
    assert not {"PGPASSWORD", "BACKFILLCTL_STATE", "BACKFILLCTL_NOW"} & set(seen)
    assert "PATH" in seen


@pytest.mark.parametrize(
    ("command", "why"),
    [
        (["python3", "-c", "import sys; sys.exit(4)"], "it exited 4"),
        (["python3", "-c", "print('yes')"], "its answer is not JSON"),
        (["no-such-policy-program"], "it cannot be run"),
    ],
)
def test_a_broken_policy_blocks(tmp_path: Path, command: list[str], why: str) -> None:
    path = repo(tmp_path, [{"name": "broken", "command": command}], THREE_DAYS)
    check = run("check", path, "--as", "ops", "--now", NOW)
    assert check.exit_code == 1
    text = check.stdout + check.stderr
    assert "policy broken could not check the plan: " + why in text
    assert f"{path}/backfillctl.yaml:" in text  # at the policy's entry in the Config


def test_a_webhook_policy_receives_the_plan_and_its_findings_count(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            body = json.dumps(
                {"findings": [{"backfill": "bf", "severity": "warning", "message": "looked"}]}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/review"
        path = repo(tmp_path, [{"name": "hook", "url": url}], THREE_DAYS)
        check = run("check", path, "--as", "ops", "--now", NOW)
    finally:
        server.shutdown()
    assert check.exit_code == 0  # a warning does not block
    assert "warning [policy:hook]: $.spec: policy hook: looked" in check.stdout + check.stderr
    (review,) = seen
    assert review["kind"] == "PolicyReview"
    assert review["nodes"] == {"a": {"workspace": "dw", "owners": ["alice"]}}
    assert len(review["plan"]["backfills"][0]["instances"]) == 3
