"""What a command inherits of backfillctl's environment: all of it but backfillctl's own
variables (backends/environment.py). Real commands print what they got: through the
local backend and its shim, through `backfillctl apply --wait` on a PostgreSQL store
whose URL holds the password (the log, the store's copy of it, the dashboard's page),
and the Job the kubernetes backend makes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from backfill_ctl.backends.environment import command_environment, own_variables
from backfill_ctl.backends.local import LocalBackend
from backfill_ctl.spec.model import Kubernetes, Smtp
from tests.backends.contract import run_one, spec
from tests.builders import backfill, config, dump, node, resource_group, workspace

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-pw"
# backfillctl's own (the store, where libpq finds its password, the actor, the clock,
# the Config's SMTP password), each set in the controller's environment
OWN = {
    "BACKFILLCTL_STATE": f"postgresql://ann:{SECRET}@db:5432/bf",
    "BACKFILLCTL_ACTOR": "controller-bot",
    "BACKFILLCTL_NOW": "2024-03-20T00:00:00Z",
    "PGPASSWORD": SECRET,
    "PGPASSFILE": "/etc/backfillctl/pgpass",
    "PGHOST": "db.internal",
    "PGSSLKEY": "/etc/backfillctl/client.key",
    "SMTP_PASSWORD": SECRET,
}
SMTP = Smtp(host="mail", sender="bf@example.com", username="bf", password_env="SMTP_PASSWORD")


def names(text: str) -> set[str]:
    return {line.split("=", 1)[0] for line in text.splitlines() if "=" in line}


@pytest.fixture
def controller_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in OWN.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BFC_KEPT", "kept")  # anything else is inherited as it is


def test_what_is_backfillctl_s_own() -> None:
    env = {**OWN, "PATH": "/usr/bin", "PGX": "x", "MYPGPASSWORD": "no", "_BACKFILLCTL_X": "1"}
    assert command_environment(env, own_variables(SMTP)) == {
        "PATH": "/usr/bin",
        "MYPGPASSWORD": "no",
    }
    assert own_variables(None) == frozenset()


def test_a_command_of_the_local_backend_inherits_none_of_backfillctl_s_own(
    tmp_path: Path, controller_env: None
) -> None:
    """Nor does the shim it is started by (its /proc environ, readable by the command);
    the node's own run.env still sets what it asks for."""
    backend = LocalBackend(tmp_path / "runs", hidden=own_variables(SMTP))
    shown = 'env; echo ---; tr "\\0" "\\n" < /proc/$PPID/environ'
    outcome, log = run_one(backend, spec(("sh", "-c", shown), env={"PGHOST": "warehouse"}))
    assert outcome.state == "succeeded", log
    command, shim = log.split("---\n")
    assert SECRET not in log
    assert names(command) & set(OWN) == {"PGHOST"}  # (the node's)
    assert "PGHOST=warehouse" in command.splitlines()
    assert "BFC_KEPT=kept" in command.splitlines()
    assert names(shim) & set(OWN) == set()


def test_the_job_of_the_kubernetes_backend_carries_only_the_node_s_env(
    controller_env: None,
) -> None:
    from backfill_ctl.backends.kubernetes import job_manifest

    settings = Kubernetes(namespace="bf", image="busybox:1.36")
    job = job_manifest(spec(("env",), env={"TABLE": "t"}), settings, "store")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["env"] == [{"name": "TABLE", "value": "t"}]
    assert SECRET not in str(job)


# -- PostgreSQL (BACKFILLCTL_PG=1) ------------------------------------------------------


def test_apply_wait_on_postgresql_shows_no_password_in_the_command_s_environment(
    pg_url: str, tmp_path: Path
) -> None:
    """The README's example: BACKFILLCTL_STATE holds the URL with its password (and
    PGPASSWORD is set too); the command prints its environment. Neither the log, nor the
    store's copy of it, nor the dashboard's page of the instance shows them."""
    from backfill_ctl.serve import views
    from backfill_ctl.state import open_store
    from backfill_ctl.state.postgres.url import secrets_of

    (password,) = secrets_of(pg_url)
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "backfillctl.yaml").write_text(dump(config(backend="local")))
    (specs / "all.yaml").write_text(
        dump(
            workspace(operators=("ops",)),
            resource_group("rg"),
            node("show", resourceGroup="rg", command="env | sort"),
            backfill(select={"method": "descendants", "roots": ["show"]}),
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKFILLCTL_", "PG"))}
    env.update(PYTHONPATH=str(ROOT), BACKFILLCTL_STATE=pg_url, PGPASSWORD=password)
    applied = subprocess.run(
        [sys.executable, "-m", "backfill_ctl", "apply", ".", "--as", "ops", "--wait"],
        capture_output=True, text=True, check=False, cwd=specs, env=env, timeout=300,
    )  # fmt: skip
    assert applied.returncode == 0, applied.stderr

    store = open_store(pg_url, create=False)
    try:
        (attempt,) = store.attempts()
        log = Path(attempt.log or "").read_text()
        kept = store.stored_log(attempt.instance, attempt.number)
        _, page, _ = views.route(store, f"/instances/{attempt.instance}")
    finally:
        store.close()
    assert "BFC_" not in log and "PATH=" in log  # (it printed its environment)
    assert kept is not None
    for shown in (log, kept.text, page.decode()):
        assert password not in shown
        assert "BACKFILLCTL_STATE" not in shown and "PGPASSWORD" not in shown
