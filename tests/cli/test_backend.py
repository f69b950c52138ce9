"""`backend check`, and backfills run as Kubernetes Jobs through the CLI: a kubeconfig
naming a loopback API server (tests/backends/k8s_api.py) that really runs the commands."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.backends.k8s_api import FakeKubeAPI
from tests.builders import API, backfill, dump, node, resource_group, workspace
from tests.cli.helpers import NOW, run, write_files

WRITE = ["sh", "-c", "echo $BACKFILL_NODE $BACKFILL_BIZDATE"]


@pytest.fixture
def server() -> Iterator[FakeKubeAPI]:
    with FakeKubeAPI() as api:
        yield api


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def kubeconfig(path: Path, server: FakeKubeAPI) -> Path:
    path.write_text(
        dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": server.url}}],
                "users": [{"name": "ops", "user": {"token": "t0ken"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "ops"}}],
                "current-context": "fake",
            }
        )
    )
    return path


def write_specs(root: Path, kube: dict[str, Any], *docs: dict[str, Any]) -> str:
    config = {
        "apiVersion": API,
        "kind": "Config",
        "spec": {"backend": "kubernetes", "kubernetes": kube},
    }
    write_files(
        root / "specs",
        {
            "backfillctl.yaml": dump(config),
            "catalog.yaml": dump(workspace(operators=("ops",)), resource_group("rg", 4), *docs),
        },
    )
    return str(root / "specs")


def settings(config: Path, **more: Any) -> dict[str, Any]:
    return {"namespace": "bf", "kubeconfig": str(config), "image": "busybox:1.36", **more}


def test_backend_check_passes_and_names_what_fails(repo: Path, server: FakeKubeAPI) -> None:
    path = write_specs(repo, settings(kubeconfig(repo / "kubeconfig", server)))

    ok = run("backend", "check", path)

    assert ok.exit_code == 0, ok.stderr
    lines = ok.stdout.splitlines()
    assert lines[0].split() == ["CHECK", "RESULT", "DETAIL"]
    assert lines[1].startswith(f"connect to {server.url}")
    assert [line.split()[:3] for line in lines[2:]] == [
        ["create", "jobs", "ok"],
        ["get", "jobs", "ok"],
        ["list", "jobs", "ok"],
        ["watch", "jobs", "ok"],
        ["delete", "jobs", "ok"],
        ["get", "pods", "ok"],
        ["list", "pods", "ok"],
        ["get", "pods/log", "ok"],
        ["write", "logs", "ok"],
    ]
    assert ok.stderr == "backend kubernetes: ready\n"
    assert not (repo / ".backfillctl").exists()  # it changed nothing

    server.deny("delete", "jobs")
    denied = run("backend", "check", path)
    assert denied.exit_code == 1
    (line,) = [x for x in denied.stdout.splitlines() if x.startswith("delete jobs")]
    assert line.split()[2] == "FAILED"
    assert denied.stderr == "backend kubernetes: 1 of 10 checks failed\n"


def test_a_kubeconfig_that_cannot_be_read_is_a_clear_error(repo: Path) -> None:
    path = write_specs(repo, settings(repo / "nowhere"))
    result = run("backend", "check", path)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[1].split("  FAILED  ") == [
        "connect to the API server",
        f"cannot load the kubeconfig: {repo / 'nowhere'} does not exist; set "
        "spec.kubernetes.kubeconfig and context in the Config, or $KUBECONFIG",
    ]


def test_apply_wait_runs_the_backfill_as_jobs_and_logs_shows_their_output(
    repo: Path, server: FakeKubeAPI
) -> None:
    path = write_specs(
        repo,
        settings(kubeconfig(repo / "kubeconfig", server)),
        node("a", resourceGroup="rg", command=WRITE),
        node("b", upstream=["a"], resourceGroup="rg", command=WRITE),
        backfill(dates=[{"from": "2024-03-01", "to": "2024-03-02"}]),
    )

    applied = run("apply", path, "--as", "ops", "--now", NOW, "--wait")

    assert applied.exit_code == 0, applied.stderr
    assert applied.stderr.splitlines()[-1] == "backfill/bf: succeeded"
    jobs = server.jobs("bf")
    assert len(jobs) == 4
    assert {j["metadata"]["labels"]["backfillctl.dev/node"] for j in jobs} == {"a", "b"}
    assert all(j["spec"]["backoffLimit"] == 0 for j in jobs)
    listed = run("get", "instances", "-o", "name").stdout.split()
    first = listed[0]
    shown = run("logs", first)
    assert (shown.exit_code, shown.stdout) == (0, "a 20240301\n")
    assert server.count("GET", resource="jobs", watch=False) == 1  # one list, then a watch


def test_apply_wait_refuses_to_apply_when_the_backend_is_not_ready(
    repo: Path, server: FakeKubeAPI
) -> None:
    server.deny("create", "jobs")
    path = write_specs(
        repo,
        settings(kubeconfig(repo / "kubeconfig", server)),
        node("a", resourceGroup="rg", command=WRITE),
        backfill(),
    )

    result = run("apply", path, "--now", NOW, "--wait")

    assert result.exit_code == 2
    assert result.stderr.startswith(
        "error: the kubernetes backend is not ready: create jobs: denied"
    )
    assert "hint: backfillctl backend check shows every check" in result.stderr
    assert server.jobs("bf") == []
    assert run("get", "backfills").exit_code == 0  # the store exists, nothing was applied
    assert run("get", "backfills", "-o", "name").stdout == ""


def test_backend_check_of_the_local_backend(repo: Path) -> None:
    write_files(repo, {"backfillctl.yaml": dump({"apiVersion": API, "kind": "Config"})})
    result = run("backend", "check")
    assert result.exit_code == 0
    assert [line.split()[:4] for line in result.stdout.splitlines()[1:]] == [
        ["run", "/bin/sh", "ok", "/bin/sh"],
        ["run", "the", "shim", "ok"],
        ["write", "logs", "ok", str(repo / ".backfillctl" / "runs")],
    ]


def test_the_controller_refuses_a_backend_that_is_not_ready(
    repo: Path, server: FakeKubeAPI
) -> None:
    server.deny("watch", "jobs")
    path = write_specs(
        repo,
        settings(kubeconfig(repo / "kubeconfig", server)),
        node("a", resourceGroup="rg", command=WRITE),
        backfill(),
    )
    result = run("controller", path, "--once")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: the kubernetes backend is not ready: watch jobs: ")
    assert server.jobs("bf") == []


def test_logs_of_a_running_job_are_read_from_the_cluster(repo: Path, server: FakeKubeAPI) -> None:
    live = ["sh", "-c", "echo live; sleep 30"]
    path = write_specs(
        repo,
        settings(kubeconfig(repo / "kubeconfig", server)),
        node("a", resourceGroup="rg", command=live),
        backfill(),
    )
    assert run("apply", path, "--now", NOW).exit_code == 0
    assert run("controller", path, "--once").exit_code == 0  # starts the Job, then exits
    (instance,) = run("get", "instances", "--state", "running", "-o", "name").stdout.split()
    deadline = time.monotonic() + 10
    while (shown := run("logs", instance, env={"KUBECONFIG": str(repo / "kubeconfig")})).stdout != (
        "live\n"
    ):
        assert time.monotonic() < deadline, shown.stderr
        time.sleep(0.1)
