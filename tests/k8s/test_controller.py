"""The controller on the real cluster: kill -9 while its Jobs run, then a new controller
adopts them; the cluster's own record (Jobs and their pods) shows nothing ran twice."""

from __future__ import annotations

import itertools
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from backfill_ctl.state import open_store
from tests.builders import API, backfill, dump, node, resource_group, workspace
from tests.cli.helpers import run, write_files
from tests.k8s.cluster import Cluster
from tests.k8s.cluster.images import BUSYBOX
from tests.k8s.helpers import configuration
from tests.test_reliability import controller, wait_until

INSTANCE = "backfillctl.dev/instance"
ATTEMPT = "backfillctl.dev/attempt"


def applied(
    cluster: Cluster, namespace: str, tmp_path: Path, *docs: dict[str, Any], **spec: Any
) -> tuple[Path, Path]:
    """`docs` (a workspace added) with a Config of the kubernetes backend on the cluster,
    applied to a new store: (the specs' directory, the store)."""
    config = {
        "apiVersion": API,
        "kind": "Config",
        "spec": {
            "backend": "kubernetes",
            "kubernetes": {
                "kubeconfig": str(cluster.admin),
                "namespace": namespace,
                "image": BUSYBOX,
                "podTemplate": {"spec": {"hostNetwork": True}},
            },
            **spec,
        },
    }
    spec_dir, db = tmp_path / "specs", tmp_path / "state.db"
    all_docs = dump(workspace(operators=("ops",)), *docs)
    write_files(spec_dir, {"backfillctl.yaml": dump(config), "all.yaml": all_docs})
    assert run("apply", str(spec_dir), "--state", str(db)).exit_code == 0
    return spec_dir, db


def test_kill_9_of_the_controller_then_a_new_one_adopts_its_jobs(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    work = node("work", resourceGroup="rg", command="echo start; sleep 3; echo end")
    spec_dir, db = applied(
        cluster,
        namespace,
        tmp_path,
        work,
        resource_group("rg", 3),
        backfill(
            select={"method": "descendants", "roots": ["work"]},
            dates=[{"from": "2024-03-01", "to": "2024-03-06"}],
            groups=3,
        ),
    )
    store = open_store(db)
    log = tmp_path / "controller.log"

    first = controller(spec_dir, db, log)
    try:
        wait_until(lambda: len(store.attempts(states=["running"])) >= 2, 60, "two Jobs")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    second = controller(spec_dir, db, log)
    try:
        wait_until(lambda: len(store.instances(states=["succeeded"])) == 6, 120, "every instance")
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0, log.read_text()

    api = client.ApiClient(configuration(cluster))
    jobs = client.BatchV1Api(api).list_namespaced_job(namespace).items
    per_instance = Counter(j.metadata.labels[INSTANCE] for j in jobs)
    assert sorted(per_instance.values()) == [1] * 6, per_instance  # one Job each
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace).items
    assert len(pods) == 6  # and one pod each: no Job was started twice
    assert all(p.status.phase == "Succeeded" for p in pods)
    # An attempt the first controller had begun but not yet sent when it was killed is
    # `lost` and tried again (adoption by name found no Job): it never ran.
    ran = {(j.metadata.labels[INSTANCE], j.metadata.labels[ATTEMPT]) for j in jobs}
    for a in store.attempts():
        if a.state == "lost":
            assert a.message == "the controller stopped before it started", a
            assert (a.instance, str(a.number)) not in ran
        else:
            assert a.state == "succeeded" and (a.instance, str(a.number)) in ran, a
    text = log.read_text()
    assert "adopted attempt" in text, text
    for instance in store.instances():
        shown = run("logs", instance.id, "--state", str(db))
        assert shown.stdout == "start\nend\n", shown.stderr


def test_a_failed_job_is_retried_as_a_new_job(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    """run.retries on the real cluster: each try is a Job of its own (backoffLimit 0),
    the next starts once the failed one has ended, and the instance fails after the last."""
    flaky = node(
        "flaky",
        resourceGroup="rg",
        run={"command": "echo try; exit 3", "retries": 2, "retryDelay": "0s"},
    )
    spec_dir, db = applied(
        cluster,
        namespace,
        tmp_path,
        flaky,
        resource_group("rg", 1),
        backfill(select={"method": "descendants", "roots": ["flaky"]}, dates=["2024-03-01"]),
    )
    waited = run("apply", str(spec_dir), "--state", str(db), "--wait", "--timeout", "3m")
    assert waited.exit_code == 1, waited.stderr  # applied already: it runs and waits
    store = open_store(db)
    (instance,) = store.instances()
    assert instance.state == "failed"
    attempts = store.attempts(instance.id)
    assert [(a.number, a.state, a.exit_code) for a in attempts] == [
        (1, "failed", 3),
        (2, "failed", 3),
        (3, "failed", 3),
    ]
    for before, after in itertools.pairwise(attempts):
        assert before.finished_at is not None and after.started_at >= before.finished_at
    api = client.ApiClient(configuration(cluster))
    jobs = client.BatchV1Api(api).list_namespaced_job(namespace).items
    assert sorted(j.metadata.labels[ATTEMPT] for j in jobs) == ["1", "2", "3"]
    assert all(j.status.failed == 1 and not j.status.succeeded for j in jobs)


def test_logs_of_a_running_attempt_read_the_cluster_of_the_config(
    cluster: Cluster, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`logs` is given no specs: the attempt's handle says where it runs (the Config's
    kubeconfig and context), not $KUBECONFIG or ~/.kube/config, which may name another
    cluster or none."""
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.setenv("HOME", str(tmp_path))
    work = node("work", resourceGroup="rg", command="echo begun; sleep 30")
    spec_dir, db = applied(
        cluster,
        namespace,
        tmp_path,
        work,
        resource_group("rg", 1),
        backfill(select={"method": "descendants", "roots": ["work"]}),
    )
    store = open_store(db)
    first = controller(spec_dir, db, tmp_path / "controller.log")
    try:
        wait_until(lambda: bool(store.attempts(states=["running"])), 60, "the Job")
        (attempt,) = store.attempts(states=["running"])
        wait_until(
            lambda: run("logs", attempt.instance, "--state", str(db)).stdout == "begun\n",
            30,
            "no log of the running attempt",
        )
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(30)


def test_logs_follow_of_a_running_pod_past_max_log_size_prints_each_line_once(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    """While a Job runs, `logs -f` reads its pod's log through the API, its last
    maxLogSize bytes (3 MiB): a window that slides as the log grows past it. What was
    printed is not printed again."""
    count = (  # 600000 lines, about 4.3 MB, in 12 pieces 0.7 s apart
        "i=0; while [ $i -lt 12 ]; do seq $((i*50000+1)) $((i*50000+50000)); i=$((i+1)); "
        "sleep 0.7; done; sleep 1"
    )
    spec_dir, db = applied(
        cluster,
        namespace,
        tmp_path,
        node("work", resourceGroup="rg", command=count),
        resource_group("rg", 1),
        backfill(select={"method": "descendants", "roots": ["work"]}),
    )
    store = open_store(db)
    first = controller(spec_dir, db, tmp_path / "controller.log")
    try:
        wait_until(lambda: bool(store.attempts(states=["running"])), 60, "the Job")
        (attempt,) = store.attempts(states=["running"])
        followed = run("logs", attempt.instance, "-f", "--state", str(db))
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(30)
    assert followed.exit_code == 0, followed.stderr
    numbers = [int(line) for line in followed.stdout.splitlines() if line.isdigit()]
    assert numbers[-1] == 600000
    assert numbers == sorted(set(numbers)), f"lines printed again: {len(numbers)} lines"
