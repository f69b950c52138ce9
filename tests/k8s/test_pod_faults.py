"""What production does to the pods of our Jobs, on the real cluster: a pod that can never
start (an image not present, an unschedulable request, a missing service account), a
command not found in the image, a pod deleted or evicted by someone, a Job deleted by
someone with kubectl's background or orphan propagation. Each attempt ends once, with
the cluster's reason, and never while a process of it still runs."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client

from backfill_ctl.backends import Outcome
from backfill_ctl.backends.kubernetes import KubernetesBackend, job_name
from tests.backends.contract import settle, spec
from tests.k8s.cluster import Cluster
from tests.k8s.helpers import GRACE, Backends, marker, running
from tests.test_reliability import wait_until

START = 3  # startTimeoutSeconds of these tests


def left(backends: Backends, batch: client.BatchV1Api, core: client.CoreV1Api) -> list[str]:
    jobs = batch.list_namespaced_job(backends.namespace).items
    pods = core.list_namespaced_pod(backends.namespace).items
    return [j.metadata.name for j in jobs] + [p.metadata.name for p in pods]


@pytest.mark.parametrize(
    ("changes", "run", "said"),
    [
        ({}, {"image": "backfillctl.local/absent:1"}, ("ErrImagePull", "ImagePullBackOff")),
        ({}, {"cpu": "64"}, ("Unschedulable: 0/1 nodes are available: 1 Insufficient cpu",)),
        (
            {"service_account": "absent"},
            {},
            ('no pod could be made for its Job: FailedCreate: Error creating: pods "',),
        ),
    ],
    ids=["image-not-present", "unschedulable", "missing-service-account"],
)
def test_a_pod_that_cannot_start_fails_the_attempt_with_the_clusters_reason(
    backends: Backends,
    batch: client.BatchV1Api,
    core: client.CoreV1Api,
    changes: dict[str, Any],
    run: dict[str, Any],
    said: tuple[str, ...],
) -> None:
    backend = backends(start_timeout=START, **changes)
    s = spec(("true",), **run)
    started = time.monotonic()
    handle, log = backend.start(s)
    outcome = settle(backend, {s.key: handle}, timeout=START + 30)[s.key]
    assert time.monotonic() - started < START + 30
    assert outcome.state == "failed"
    prefix = f"its pod did not start in {START}s (spec.kubernetes.startTimeoutSeconds): "
    assert outcome.message is not None and outcome.message.startswith(prefix), outcome
    assert any(outcome.message[len(prefix) :].startswith(x) for x in said), outcome.message
    assert not left(backends, batch, core)  # its Job and pod are gone before it ended
    assert backend.log_text(handle, log) == f"[backfillctl: {outcome.message}]\n"


def test_a_pod_that_is_slow_to_start_is_not_failed(backends: Backends) -> None:
    """An init container at work for longer than the start timeout has started."""
    backend = backends(
        start_timeout=1,
        pod_spec={
            "hostNetwork": True,
            "initContainers": [
                {"name": "warm", "image": backends.settings().image, "command": ["sleep", "6"]}
            ],
        },
    )
    s = spec(("echo", "warm"))
    handle, log = backend.start(s)
    assert settle(backend, {s.key: handle}, timeout=40)[s.key] == Outcome("succeeded", 0)
    assert backend.log_text(handle, log) == "warm\n"


def test_a_command_not_in_the_image_says_so(backends: Backends) -> None:
    backend = backends()
    s = spec(("/no/such/command", "--pt", "20240301"))
    handle, _ = backend.start(s)
    outcome = settle(backend, {s.key: handle}, timeout=30)[s.key]
    assert (outcome.state, outcome.exit_code) == ("failed", 128)
    assert outcome.message is not None
    assert outcome.message.startswith("exit code 128: StartError: "), outcome.message
    assert "/no/such/command" in outcome.message and "no such file" in outcome.message


def ended_once(backend: KubernetesBackend, s: Any, handle: Any, seconds: str) -> Outcome:
    """Poll until the attempt ends; at that moment its process must be gone already."""
    deadline = time.monotonic() + 60
    while not (ended := backend.poll({s.key: handle})):
        assert time.monotonic() < deadline, "the attempt did not end"
        backend.wait(0.2)
    assert not running(seconds), "the attempt ended while its command still ran"
    return ended[s.key]


def test_a_pod_deleted_by_someone_fails_the_attempt_saying_so(
    backends: Backends, core: client.CoreV1Api
) -> None:
    """Its log is kept: the node removes it with the pod."""
    backend = backends()
    seconds = marker()
    s = spec(("sh", "-c", f"echo loading 20240301; exec sleep {seconds}"))
    handle, log = backend.start(s)
    wait_until(lambda: bool(running(seconds)), 30, "the command did not start")
    (pod,) = core.list_namespaced_pod(
        backends.namespace, label_selector=f"job-name={job_name(s)}"
    ).items
    core.delete_namespaced_pod(pod.metadata.name, backends.namespace)
    outcome = ended_once(backend, s, handle, seconds)
    assert outcome == Outcome("failed", None, "its pod was deleted or evicted before it ended")
    assert backend.log_text(handle, log) == "loading 20240301\n"


def test_a_command_killed_for_its_memory_says_oomkilled(backends: Backends) -> None:
    backend = backends()
    s = spec(("sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo $x"), memory="32Mi")
    handle, _ = backend.start(s)
    outcome = settle(backend, {s.key: handle}, timeout=60)[s.key]
    assert outcome == Outcome("failed", 137, "exit code 137: OOMKilled")


def test_a_job_deleted_by_someone_ends_only_once_its_pod_is_gone(
    backends: Backends, batch: client.BatchV1Api
) -> None:
    """kubectl delete job: background propagation, the Job goes at once and its pod is
    killed after its grace period; a retry must not start before."""
    backend = backends()
    seconds = marker()
    s = spec(("sleep", seconds))
    handle, _ = backend.start(s)
    wait_until(lambda: bool(running(seconds)), 30, "the command did not start")
    deleted = time.monotonic()
    batch.delete_namespaced_job(job_name(s), backends.namespace, propagation_policy="Background")
    outcome = ended_once(backend, s, handle, seconds)
    assert time.monotonic() - deleted >= GRACE - 1
    assert outcome == Outcome(
        "lost",
        None,
        f"the Job {job_name(s)} was deleted before its end was recorded",
    )


def test_a_job_orphaned_by_someone_is_followed_to_its_pods_end(
    backends: Backends, batch: client.BatchV1Api
) -> None:
    """kubectl delete job --cascade=orphan: the pod runs on; its end is the attempt's."""
    backend = backends()
    seconds = marker()
    s = spec(("sh", "-c", f"echo begun; sleep {float(seconds) - 55:.6f}; echo done; exit 4"))
    handle, log = backend.start(s)
    wait_until(lambda: backend.log_text(handle, log) == "begun\n", 30, "it did not start")
    batch.delete_namespaced_job(job_name(s), backends.namespace, propagation_policy="Orphan")
    outcome = ended_once(backend, s, handle, f"{float(seconds) - 55:.6f}")
    name = job_name(s)
    assert outcome == Outcome(
        "failed",
        4,
        f"the Job {name} was deleted before its end was recorded; its pod ended with exit code 4",
    )
    assert backend.log_text(handle, log) == "begun\ndone\n"


def test_an_api_server_restart_mid_watch_loses_no_outcome(
    cluster: Cluster, backends: Backends
) -> None:
    """The watch drops; the new server's watch cache no longer holds our resourceVersion
    (410 Gone) or does: either way the end of the attempt is seen, once."""
    backend = backends()
    seconds = marker()
    s = spec(("sh", "-c", f"sleep {float(seconds) - 52:.6f}; echo done; exit 3"))
    handle, log = backend.start(s)
    wait_until(lambda: bool(running(f"{float(seconds) - 52:.6f}")), 30, "it did not start")
    assert backend.poll({s.key: handle}) == {}
    cluster.restart("kube-apiserver", down=2)
    outcome = settle(backend, {s.key: handle}, timeout=60)[s.key]
    assert outcome == Outcome("failed", 3, "exit code 3")
    assert backend.log_text(handle, log) == "done\n"


def test_a_node_that_stops_answering_neither_fails_nor_reruns_its_running_pod(
    cluster: Cluster, backends: Backends, core: client.CoreV1Api
) -> None:
    """The kubelet stopped past the node's grace period: the node is NotReady, its pods
    are marked not ready (the Job's `ready` drops to 0), but the command runs on. The
    attempt is not failed as a pod that never started, nor run again; when the kubelet
    is back, its end is recorded."""
    backend = backends(start_timeout=1)
    seconds = f"{float(marker()) + 40:.6f}"  # ~100 s
    s = spec(("sh", "-c", f"sleep {seconds}; echo done"))
    handle, log = backend.start(s)
    wait_until(lambda: bool(running(seconds)), 30, "it did not start")
    cluster.stop_one("kubelet")
    try:
        wait_until(lambda: not node_ready(core), 90, "the node stayed Ready")
        wait_until(
            lambda: not (backend.tracker.get(handle["job"]) or {}).get("status", {}).get("ready"),
            30,
            "the Job kept its pod ready",
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # several start timeouts with no ready pod
            assert backend.poll({s.key: handle}) == {}
            backend.wait(0.5)
        assert running(seconds)  # on, in its one pod
        selector = f"job-name={job_name(s)}"
        assert len(core.list_namespaced_pod(backends.namespace, label_selector=selector).items) == 1
    finally:
        cluster.start_one("kubelet")
    outcome = settle(backend, {s.key: handle}, timeout=120)[s.key]
    assert outcome == Outcome("succeeded", 0)
    assert backend.log_text(handle, log) == "done\n"


def node_ready(core: client.CoreV1Api) -> bool:
    (node,) = core.list_node().items
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)
