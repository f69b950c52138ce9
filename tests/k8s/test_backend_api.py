"""The behaviours tests/backends/test_kubernetes.py shows against the fake API server,
shown again against the real control plane (issue 12): adoption on 409, RBAC denials
of a real ServiceAccount, 401, a real ResourceQuota, the server's own validation, a Job
deleted behind the backend's back, run fields in the real Pod, `check()` through real
SelfSubjectAccessReviews, the watch the server ends, one watch for many Jobs, logs, a
restarted controller. The fake stays for the faults a healthy server does not make
(5xx, 429, dropped connections and watches, a 410 on demand)."""

from __future__ import annotations

import json
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from backfill_ctl.backends import AttemptSpec, BackendError, NotStarted, Outcome
from backfill_ctl.backends.kubernetes import (
    PERMISSIONS,
    KubernetesBackend,
    job_manifest,
    job_name,
    label_value,
)
from backfill_ctl.spec.model import Kubernetes
from tests.backends.contract import settle, spec
from tests.k8s.cluster import Cluster
from tests.k8s.cluster.images import BUSYBOX
from tests.k8s.helpers import STORE, Backends, configuration, marker, running
from tests.test_reliability import wait_until

NARROW = "narrow"  # a ServiceAccount whose Role lacks `create jobs`


def counted(backend: KubernetesBackend) -> list[tuple[str, str]]:
    """Every request the backend's Api makes from now on, as (verb, resource)."""
    api = backend.api
    real = api.call
    calls: list[tuple[str, str]] = []

    def call(verb: str, resource: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        calls.append((verb, resource))
        return real(verb, resource, fn, *args, **kw)

    api.call = call  # type: ignore[method-assign]
    return calls


def bearer(cluster: Cluster, token: str) -> client.Configuration:
    """A client configuration of the cluster's server and CA with this bearer token."""
    made = client.Configuration()
    made.host = cluster.server
    made.ssl_ca_cert = str(cluster.ca)
    made.api_key = {"authorization": token}
    made.api_key_prefix = {"authorization": "Bearer"}
    return made


def narrow_account(cluster: Cluster, namespace: str, core: client.CoreV1Api) -> str:
    """A real ServiceAccount bound to a Role with every rule of deploy/rbac.yaml but
    `create jobs`; a token of it from the TokenRequest API."""
    rbac = client.RbacAuthorizationV1Api(client.ApiClient(configuration(cluster)))
    core.create_namespaced_service_account(namespace, {"metadata": {"name": NARROW}})
    rules = [
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["delete"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    ]
    rbac.create_namespaced_role(namespace, {"metadata": {"name": NARROW}, "rules": rules})
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": NARROW},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NARROW},
            "subjects": [{"kind": "ServiceAccount", "name": NARROW, "namespace": namespace}],
        },
    )
    request = core.create_namespaced_service_account_token(
        NARROW, namespace, {"spec": {"expirationSeconds": 600}}
    )
    return str(request.status.token)


def own(backends: Backends, configuration: client.Configuration, **kw: Any) -> KubernetesBackend:
    """A backend of the test's settings with this client configuration (closed at the end)."""
    made = KubernetesBackend(
        kw.pop("settings", None) or backends.settings(),
        runs=backends.root / "runs",
        store_id=STORE,
        configuration=configuration,
        **kw,
    )
    backends.made.append(made)
    return made


def run_one_slowly(backend: KubernetesBackend, s: AttemptSpec) -> tuple[Outcome, str]:
    """contract.run_one with room for a loaded host (a first pod can take 15 s)."""
    handle, log = backend.start(s)
    outcome = settle(backend, {s.key: handle}, timeout=60)[s.key]
    return outcome, backend.log_text(handle, log)


def pods_of(core: client.CoreV1Api, namespace: str, job: str) -> list[client.V1Pod]:
    return list(core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items)


# -- creating the Job ------------------------------------------------------------------


def test_a_409_adopts_the_job_this_store_created(
    backends: Backends, batch: client.BatchV1Api
) -> None:
    s = spec(("sh", "-c", "echo once"))
    first, _ = backends().start(s)  # its response was lost: the controller tries again
    again = backends()
    calls = counted(again)

    handle, _ = again.start(s)

    assert handle["uid"] == first["uid"]
    assert [job.metadata.uid for job in batch.list_namespaced_job(backends.namespace).items] == [
        first["uid"]
    ]
    assert calls[:2] == [("create", "jobs"), ("get", "jobs")]  # the POST had its 409
    assert settle(again, {s.key: handle}, timeout=60)[s.key] == Outcome("succeeded", 0)


def test_a_409_on_another_store_s_job_is_refused(
    backends: Backends, batch: client.BatchV1Api
) -> None:
    s = spec(("true",))
    theirs, _ = backends(store="ffffffffffff").start(s)
    name, ns = job_name(s), backends.namespace
    with pytest.raises(BackendError) as caught:
        backends().start(s)
    assert str(caught.value) == (
        f"a Job named {name} in namespace {ns} belongs to another state store "
        f"(ffffffffffff; this one is {STORE}): delete it (kubectl -n {ns} delete job {name}) "
        "or use another namespace"
    )
    (job,) = batch.list_namespaced_job(ns).items
    assert job.metadata.uid == theirs["uid"]  # untouched


def test_a_missing_permission_names_the_verb_and_the_resource(
    backends: Backends, cluster: Cluster, core: client.CoreV1Api, batch: client.BatchV1Api
) -> None:
    ns = backends.namespace
    token = narrow_account(cluster, ns, core)
    s = spec(("true",))
    with pytest.raises(NotStarted) as caught:
        own(backends, bearer(cluster, token)).start(s)
    assert str(caught.value) == (
        f"forbidden: the identity in use may not create jobs in namespace {ns}; grant it in a "
        "Role (deploy/rbac.yaml has the rules backfillctl needs). The API server said: "
        f'jobs.batch is forbidden: User "system:serviceaccount:{ns}:{NARROW}" cannot create '
        f'resource "jobs" in API group "batch" in the namespace "{ns}"'
    )
    assert caught.value.state == "pending"
    assert not batch.list_namespaced_job(ns).items


def test_unauthorized_is_a_configuration_error(backends: Backends, cluster: Cluster) -> None:
    backend = own(backends, bearer(cluster, "not-a-token-" + secrets.token_hex(8)))
    message = (
        "the Kubernetes API server refused the credentials (401 Unauthorized): check the "
        "kubeconfig and context in use, or the controller's service account token"
    )
    with pytest.raises(NotStarted) as caught:
        backend.start(spec(("true",)))
    assert str(caught.value) == message
    assert backend.check() == [("connect to the API server", False, message)]


def test_a_full_quota_waits_for_resources(
    backends: Backends, core: client.CoreV1Api, batch: client.BatchV1Api
) -> None:
    """A real ResourceQuota, its status kept by the real resource-quota controller,
    enforced by the real quota admission (which counts every Job it admits)."""
    ns = backends.namespace
    hard = {"count/jobs.batch": "1"}
    core.create_namespaced_resource_quota(
        ns, {"metadata": {"name": "jobs"}, "spec": {"hard": hard}}
    )
    wait_until(
        lambda: (core.read_namespaced_resource_quota("jobs", ns).status.hard or {}) == hard,
        30,
        "the resource-quota controller wrote no status",
    )
    backend = backends()
    seconds = marker()
    long = spec(("sleep", seconds), instance="long")
    handle, _ = backend.start(long)

    with pytest.raises(NotStarted) as caught:
        backend.start(spec(("true",), instance="next"))

    assert caught.value.state == "waiting-for-resources"
    assert str(caught.value) == (
        f'the namespace {ns} is at its quota: jobs.batch "bf-load-next-1" is forbidden: '
        "exceeded quota: jobs, requested: count/jobs.batch=1, used: count/jobs.batch=1, "
        "limited: count/jobs.batch=1"
    )
    assert [j.metadata.name for j in batch.list_namespaced_job(ns).items] == [job_name(long)]
    backend.cancel(long.key, handle, "test over")
    settle(backend, {long.key: handle}, timeout=60)


def test_a_pod_template_value_the_server_rejects_fails_the_attempt(
    backends: Backends, batch: client.BatchV1Api
) -> None:
    backend = backends(pod_spec={"hostNetwork": True, "dnsPolicy": "Bogus"})
    s = spec(("true",))
    with pytest.raises(BackendError) as caught:
        backend.start(s)
    assert type(caught.value) is BackendError  # not NotStarted: trying again cannot help
    assert str(caught.value) == (
        f'the Kubernetes API server refused to create jobs: Job.batch "{job_name(s)}" is '
        'invalid: spec.template.spec.dnsPolicy: Unsupported value: "Bogus": supported '
        'values: "ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"'
    )
    assert not batch.list_namespaced_job(backends.namespace).items


def test_a_pod_template_field_the_server_would_drop_fails_before_it_is_sent(
    backends: Backends, cluster: Cluster, batch: client.BatchV1Api
) -> None:
    """The real server does not refuse an unknown field: by default (fieldValidation
    Warn) it drops it and says so in a Warning header only, so a misspelt key would be
    lost silently. The backend refuses it before sending (the client's model)."""
    settings = backends.settings(pod_spec={"hostNetwork": True, "nodeSelectr": {"a": "b"}})
    s = spec(("true",))
    with pytest.raises(BackendError, match=r"the Job is not valid .*nodeSelectr"):
        backends(pod_spec=settings.pod_spec).start(s)
    assert not batch.list_namespaced_job(backends.namespace).items

    api = client.ApiClient(configuration(cluster))  # what the server does with it
    method, url, headers, body, _ = api.param_serialize(
        "POST",
        "/apis/batch/v1/namespaces/{namespace}/jobs",
        path_params={"namespace": backends.namespace},
        query_params=[("dryRun", "All")],
        header_params={"Content-Type": "application/json"},
        body=job_manifest(s, settings, STORE),
        auth_settings=["BearerToken"],
    )
    answer = api.call_api(method, url, headers, body)
    created = json.loads(answer.read())
    assert answer.status == 201
    assert "nodeSelectr" not in created["spec"]["template"]["spec"]
    assert answer.getheader("Warning") == (
        '299 - "unknown field \\"spec.template.spec.nodeSelectr\\""'
    )


def test_long_names_and_odd_label_values_are_accepted_by_the_server(
    backends: Backends, batch: client.BatchV1Api
) -> None:
    """job_name and label_value against the server's own name and label validation."""
    s = replace(
        spec(("true",)),
        backfill="Fix_Orders.2024." + "x" * 80,
        node="dwd orders/" + "y" * 70,
        instance="0123456789abcdef",
        number=12,
    )
    manifest = job_manifest(s, backends.settings(), STORE)
    created = batch.create_namespaced_job(backends.namespace, manifest, dry_run="All")
    assert created.metadata.name == job_name(s) and len(job_name(s)) == 63
    assert created.metadata.labels["backfillctl.dev/node"] == label_value(s.node)
    assert created.metadata.annotations["backfillctl.dev/node"] == s.node  # the full name


# -- the attempt -----------------------------------------------------------------------


def test_a_job_deleted_behind_our_back_is_lost(
    backends: Backends, batch: client.BatchV1Api
) -> None:
    backend = backends()
    seconds = marker()
    s = spec(("sleep", seconds))
    handle, _ = backend.start(s)
    wait_until(lambda: bool(running(seconds)), 30, "the command did not start")
    # someone ran kubectl delete job (background propagation, as kubectl does)
    batch.delete_namespaced_job(handle["job"], backends.namespace, propagation_policy="Background")
    assert settle(backend, {s.key: handle}, timeout=60)[s.key] == Outcome(
        "lost", None, f"the Job {handle['job']} was deleted before its end was recorded"
    )
    assert handle["job"] not in backend.tracker.deleted  # reported once, then forgotten


def test_run_fields_reach_the_pod(backends: Backends, core: client.CoreV1Api) -> None:
    backend = backends(working_dir="/tmp")
    s = spec(
        ("sh", "-c", 'echo "$WHO"; pwd; cat /sys/fs/cgroup/memory/memory.limit_in_bytes'),
        env={"WHO": "the pod"},
        memory="64Mi",
        cpu="100m",
    )
    outcome, log = run_one_slowly(backend, s)
    assert (outcome, log) == (Outcome("succeeded", 0), f"the pod\n/tmp\n{64 * 2**20}\n")
    (pod,) = pods_of(core, backends.namespace, job_name(s))
    (container,) = pod.spec.containers
    assert container.working_dir == "/tmp"
    assert {(e.name, e.value) for e in container.env} >= {("WHO", "the pod")}
    assert container.resources.requests == {"cpu": "100m", "memory": "64Mi"}
    assert container.resources.limits == {"memory": "64Mi"}
    assert pod.status.qos_class == "Burstable"


def test_a_finished_attempt_s_log_is_copied_next_to_the_store(
    backends: Backends, tmp_path: Path
) -> None:
    backend = backends()
    s = spec(("sh", "-c", "echo one; echo two"))
    handle, log = backend.start(s)
    assert settle(backend, {s.key: handle}, timeout=60)[s.key] == Outcome("succeeded", 0)
    assert log == str(tmp_path / "runs" / "bf" / "i1.1.log")
    assert Path(log).read_text() == "one\ntwo\n"


def test_a_big_log_keeps_its_tail(backends: Backends, cluster: Cluster) -> None:
    backend = own(backends, configuration(cluster), max_log_size=100)
    _, log = run_one_slowly(backend, spec(("sh", "-c", "seq 1 1000")))
    assert log.startswith("[backfillctl: the first 3793 bytes were cut]\n")
    assert log.endswith("998\n999\n1000\n")
    assert len(log.split("\n", 1)[1]) == 100


def test_a_running_attempt_s_log_is_read_from_where_it_runs(
    backends: Backends, cluster: Cluster
) -> None:
    runner = backends()
    s = spec(("sh", "-c", "echo live; sleep 30"))
    handle, log = runner.start(s)
    reader = own(backends, configuration(cluster), settings=Kubernetes())  # `backfillctl logs`
    assert reader.settings.namespace != backends.namespace
    wait_until(lambda: reader.log_text(handle, log) == "live\n", 30, "the log never showed")
    runner.cancel(s.key, handle, "test over")
    settle(runner, {s.key: handle}, timeout=60)


def test_stop_keeps_what_the_attempt_printed_and_deletes_the_job_once(
    backends: Backends, batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    backend = backends()
    calls = counted(backend)
    seconds = marker()
    s = spec(("sh", "-c", f"echo started; sleep {seconds}"))
    handle, log = backend.start(s)
    wait_until(lambda: backend.log_text(handle, log) == "started\n", 30, "the log never showed")
    backend.cancel(s.key, handle, "stopped by ann")
    assert settle(backend, {s.key: handle}, timeout=60)[s.key] == Outcome(
        "failed", None, "stopped by ann"
    )
    assert not running(seconds)
    assert not batch.list_namespaced_job(backends.namespace).items
    assert not pods_of(core, backends.namespace, handle["job"])
    assert Path(str(log)).read_text() == "started\n"
    assert calls.count(("delete", "jobs")) == 1


def test_a_log_copied_before_stays_when_the_pod_is_gone(
    backends: Backends, core: client.CoreV1Api
) -> None:
    backend = backends()
    s = spec(("echo", "kept"))
    handle, log = backend.start(s)
    settle(backend, {s.key: handle}, timeout=60)
    backend.api.delete_job(handle["job"])  # foreground: its pod goes first
    wait_until(lambda: not pods_of(core, backends.namespace, handle["job"]), 30, "the pod stayed")
    assert backend._collect(handle["job"], handle) == (
        None,
        None,
        False,
    )  # no code, nothing said, no pod
    assert Path(str(log)).read_text() == "kept\n"


def test_an_unreachable_server_leaves_the_attempt_unstarted(
    backends: Backends, cluster: Cluster
) -> None:
    with socket.socket() as closed:  # a port of this host nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    made = configuration(cluster)
    made.host = f"https://127.0.0.1:{port}"
    backend = own(backends, made)
    backend.api.sleep = lambda seconds: None
    with pytest.raises(NotStarted, match="cannot reach the Kubernetes API server"):
        backend.start(spec(("true",)))
    (result,) = backend.check()
    assert result[:2] == ("connect to the API server", False)
    assert "cannot reach the Kubernetes API server" in result[2]


# -- backend check ---------------------------------------------------------------------


def test_check_reviews_every_permission(backends: Backends, cluster: Cluster) -> None:
    results = backends().check()
    assert results[0] == (f"connect to {cluster.server}", True, "Kubernetes v1.37.2")
    assert results[-1][:2] == ("write logs", True)
    assert [(what, ok) for what, ok, _ in results[1:-1]] == [
        (f"{verb} {resource}{'/' + sub if sub else ''}", True)
        for verb, _, resource, sub in PERMISSIONS
    ]


def test_check_names_the_permission_a_service_account_lacks(
    backends: Backends, cluster: Cluster, core: client.CoreV1Api
) -> None:
    token = narrow_account(cluster, backends.namespace, core)
    results = own(backends, bearer(cluster, token)).check()
    assert results[0][:2] == (f"connect to {cluster.server}", True)
    assert [(what, ok) for what, ok, _ in results[1:-1]] == [
        (f"{verb} {resource}{'/' + sub if sub else ''}", (verb, resource) != ("create", "jobs"))
        for verb, _, resource, sub in PERMISSIONS
    ]
    reasons = {what: why for what, _, why in results[1:-1]}
    assert reasons["create jobs"] == "denied"
    assert reasons["watch jobs"] == (
        f'RBAC: allowed by RoleBinding "{NARROW}/{backends.namespace}" of Role "{NARROW}" '
        f'to ServiceAccount "{NARROW}/{backends.namespace}"'
    )


# -- tracking --------------------------------------------------------------------------


def test_jobs_are_tracked_by_one_watch_not_a_get_per_job(backends: Backends) -> None:
    backend = backends()
    calls = counted(backend)
    specs = [spec(("sh", "-c", "sleep 0.2"), instance=f"i{n}") for n in range(6)]
    handles = {s.key: backend.start(s)[0] for s in specs}
    for _ in range(20):  # the controller polls many times while they run
        backend.poll(handles)
    ended = settle(backend, handles, timeout=60)
    assert set(ended.values()) == {Outcome("succeeded", 0)}
    jobs = [verb for verb, resource in calls if resource == "jobs"]
    assert sorted(jobs) == ["create"] * 6 + ["list", "watch"]  # no GET of a Job
    assert backend.tracker.lists == 1


def test_a_watch_the_server_ends_is_renewed_without_listing_again(
    backends: Backends, monkeypatch: pytest.MonkeyPatch
) -> None:
    import backfill_ctl.backends.kubernetes as module

    monkeypatch.setattr(module, "WATCH_SECONDS", 1)  # timeoutSeconds=1: the server ends it
    backend = backends()
    calls = counted(backend)
    assert backend.tracker.synced.wait(10)
    time.sleep(2.5)  # quiet: the server ends the watch after 1 s, twice
    s = spec(("true",))
    handle, _ = backend.start(s)
    assert settle(backend, {s.key: handle}, timeout=60)[s.key] == Outcome("succeeded", 0)
    assert backend.tracker.lists == 1
    assert calls.count(("list", "jobs")) == 1
    assert calls.count(("watch", "jobs")) >= 3
    assert backend.tracker.error == ""


# -- with the controller ---------------------------------------------------------------


def test_a_restarted_controller_adopts_running_jobs_and_never_duplicates_them(
    backends: Backends, batch: client.BatchV1Api, tmp_path: Path
) -> None:
    from backfill_ctl.runtime.controller import Controller
    from tests.builders import backfill, node
    from tests.running import applied

    store = applied(
        tmp_path / "store",
        node("a", resourceGroup="rg", run={"command": ["sleep", "2"], "image": BUSYBOX}),
        backfill(dates=["2024-03-01", "2024-03-02"], groups=2),
    )

    def jobs() -> list[client.V1Job]:
        return list(batch.list_namespaced_job(backends.namespace).items)

    first_backend = backends(store=store.store_id)
    before = counted(first_backend)
    first = Controller(store, first_backend)
    assert first.acquire(wait=False)
    first.load()
    first.tick()
    first.tick()  # (the handles of a tick's starts are written with the next tick's ends)
    assert len(first.running) == 2 and len(jobs()) == 2
    # The instance of 03-02 began an attempt whose Job was made, but the controller died
    # before it recorded the handle.
    first.release()
    started = store.attempts(states=["running"])
    store._db.execute(  # type: ignore[attr-defined]
        "UPDATE attempts SET handle = '{}', state = 'starting' WHERE number = 1 AND instance = ?",
        (started[1].instance,),
    )

    second_backend = backends(store=store.store_id)
    after = counted(second_backend)
    second = Controller(store, second_backend)
    assert second.acquire(wait=False)
    second.load()
    assert len(second.running) == 2  # both adopted, one by its recorded handle
    gate = second.scheduler.gates["bf"]
    deadline = time.monotonic() + 60
    second.run(
        interval=0.05,
        until=lambda tick: gate.record.finished_at is not None or time.monotonic() > deadline,
    )

    assert {i.state for i in store.instances()} == {"succeeded"}
    assert len(jobs()) == 2
    assert [a.number for a in store.attempts()] == [1, 1]
    assert (before + after).count(("create", "jobs")) == 2  # never a second Job
