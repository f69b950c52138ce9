"""The kubernetes backend against a real cluster: the real API server, Job, TTL and
garbage-collector controllers, scheduler and kubelet. The backend contract, the deadline,
stop, TTL deletion, logs of running and finished attempts, adoption, the Job's validation
by the server."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client

from backfill_ctl.backends import Outcome
from backfill_ctl.backends.kubernetes import KubernetesBackend, job_name
from tests.backends.contract import BackendContract, Make, settle, spec
from tests.k8s.helpers import GRACE, STORE, Backends, marker, running
from tests.test_reliability import wait_until


class TestRealKubernetesBackend(BackendContract):
    @pytest.fixture
    def make(self, backends: Backends) -> Make:
        return lambda: backends()


def ended_after_the_process(
    backend: KubernetesBackend, s: Any, handle: Any, seconds: str
) -> Outcome:
    """Poll until the attempt ends; at that moment its process must be gone already
    (a terminating pod is not an end: a retry must not start beside it)."""
    deadline = time.monotonic() + 60
    while not (ended := backend.poll({s.key: handle})):
        assert time.monotonic() < deadline, "the attempt did not end"
        backend.wait(0.2)
    assert not running(seconds), "the attempt ended while its command still ran"
    return ended[s.key]


def test_the_job_deadline_is_enforced_by_the_job_controller(
    backends: Backends, batch: client.BatchV1Api
) -> None:
    backend = backends()
    seconds = marker()
    s = spec(("sleep", seconds), timeout=2)
    started = time.monotonic()
    handle, _ = backend.start(s)
    wait_until(lambda: bool(running(seconds)), 30, "the command did not start")
    outcome = ended_after_the_process(backend, s, handle, seconds)
    assert (outcome.state, outcome.message) == (
        "failed",
        "timed out: the Job ran longer than its 2s deadline",
    )
    assert 2 + GRACE <= time.monotonic() - started < 2 + GRACE + 15
    job = batch.read_namespaced_job(job_name(s), backends.namespace)
    reasons = [(c.type, c.reason) for c in job.status.conditions if c.status == "True"]
    assert ("Failed", "DeadlineExceeded") in reasons


def test_conditions_of_a_real_job_in_the_order_the_controller_sets_them(
    backends: Backends, batch: client.BatchV1Api
) -> None:
    """Recent releases set SuccessCriteriaMet / FailureTarget before Complete / Failed;
    the backend ends an attempt on the latter only, with no pod left."""
    backend = backends()
    good, bad = spec(("true",), instance="good"), spec(("sh", "-c", "exit 5"), instance="bad")
    handles = {s.key: backend.start(s)[0] for s in (good, bad)}
    ended = settle(backend, handles, timeout=30)
    assert ended == {
        good.key: Outcome("succeeded", 0),
        bad.key: Outcome("failed", 5, "exit code 5"),
    }

    def types(s: Any) -> list[str]:
        job = batch.read_namespaced_job(job_name(s), backends.namespace)
        return [c.type for c in job.status.conditions if c.status == "True"]

    assert types(good) == ["SuccessCriteriaMet", "Complete"]
    assert types(bad) == ["FailureTarget", "Failed"]


def test_stop_deletes_the_job_its_pod_and_kills_the_command(
    backends: Backends, batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    backend = backends()
    seconds = marker()
    s = spec(("sleep", seconds))
    handle, _ = backend.start(s)
    wait_until(lambda: bool(running(seconds)), 30, "the command did not start")
    stopped = time.monotonic()
    backend.cancel(s.key, handle, "stopped by ann")
    outcome = ended_after_the_process(backend, s, handle, seconds)
    assert (outcome.state, outcome.message) == ("failed", "stopped by ann")
    assert GRACE <= time.monotonic() - stopped < GRACE + 15  # SIGKILL after the grace
    assert not batch.list_namespaced_job(backends.namespace).items  # foreground: all gone
    selector = f"job-name={job_name(s)}"
    assert not core.list_namespaced_pod(backends.namespace, label_selector=selector).items


def test_stop_of_a_command_that_handles_sigterm_ends_it_at_once(backends: Backends) -> None:
    backend = backends(pod_spec={"hostNetwork": True, "terminationGracePeriodSeconds": 30})
    seconds = marker()
    s = spec(("sh", "-c", f"trap 'echo bye; exit 143' TERM; sleep {seconds} & wait"))
    handle, _ = backend.start(s)
    wait_until(lambda: bool(running(seconds)), 30, "the command did not start")
    stopped = time.monotonic()
    backend.cancel(s.key, handle, "stopped by ann")
    outcome = settle(backend, {s.key: handle}, timeout=30)[s.key]
    assert (outcome.state, outcome.message) == ("failed", "stopped by ann")
    assert time.monotonic() - stopped < 10  # not the default 30 s grace


def test_a_finished_job_is_deleted_by_the_ttl_controller_and_its_outcome_kept(
    backends: Backends, batch: client.BatchV1Api
) -> None:
    backend = backends(ttl_after_finished=1)
    s = spec(("sh", "-c", "echo kept; exit 2"))
    handle, log = backend.start(s)
    assert settle(backend, {s.key: handle})[s.key] == Outcome("failed", 2, "exit code 2")
    wait_until(
        lambda: not batch.list_namespaced_job(backends.namespace).items,
        30,
        "the TTL controller left the Job",
    )
    restarted = backends(ttl_after_finished=1)  # after the Job is gone
    assert restarted.log_text(handle, log) == "kept\n"


def test_the_log_of_a_running_attempt_comes_through_the_api_server(
    backends: Backends,
) -> None:
    backend = backends()
    s = spec(("sh", "-c", "echo first; echo second; sleep 30"))
    handle, log = backend.start(s)
    wait_until(
        lambda: backend.log_text(handle, log) == "first\nsecond\n",
        30,
        "no log of the running attempt",
    )
    assert backend.poll({s.key: handle}) == {}
    backend.cancel(s.key, handle, "done looking")
    settle(backend, {s.key: handle})


def test_the_job_is_accepted_by_server_side_validation(
    backends: Backends, batch: client.BatchV1Api
) -> None:
    from backfill_ctl.backends.kubernetes import job_manifest

    settings = backends.settings(
        service_account="default",
        working_dir="/work",
        pod_spec={"nodeSelector": {"kubernetes.io/os": "linux"}, "hostNetwork": True},
        pod_metadata={"labels": {"team": "dw"}, "annotations": {"note": "x"}},
    )
    s = spec(
        "python etl.py --pt $BACKFILL_BIZDATE",
        timeout=90,
        cpu="500m",
        memory="256Mi",
        image="python:3.11-slim",
    )
    manifest = job_manifest(s, settings, STORE)
    created = batch.create_namespaced_job(backends.namespace, manifest, dry_run="All")
    assert created.metadata.name == job_name(s)
    assert created.spec.template.spec.containers[0].resources.limits == {"memory": "256Mi"}
