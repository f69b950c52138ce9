"""The fake Kubernetes API server, through the real `kubernetes` client only.

Every call carries `_request_timeout` and every watch `timeout_seconds`, so no test can hang;
the server is stopped (and its pod processes killed) by the fixture.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import pytest

pytest.importorskip("kubernetes")

import urllib3
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from tests.backends.k8s_api import FakeKubeAPI

NS = "ns"
T = 5  # _request_timeout of every call
R = TypeVar("R")


class Kube(NamedTuple):
    api: FakeKubeAPI
    batch: client.BatchV1Api
    core: client.CoreV1Api
    authz: client.AuthorizationV1Api


@contextlib.contextmanager
def serving(api: FakeKubeAPI) -> Iterator[Kube]:
    """The server started, clients on it; then stopped, with no pod process left."""
    try:
        api.start()
        with client.ApiClient(api.configuration()) as c:
            yield Kube(api, client.BatchV1Api(c), client.CoreV1Api(c), client.AuthorizationV1Api(c))
    finally:
        api.stop()
    assert api.running_pids() == []


@pytest.fixture
def k() -> Iterator[Kube]:
    with serving(FakeKubeAPI()) as kube:
        yield kube


@pytest.fixture
def quick() -> Iterator[Kube]:
    """Pods that "run" instantly instead of running their command."""
    with serving(FakeKubeAPI(run_commands=False)) as kube:
        yield kube


def job(name: str, *command: str, env: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "busybox", "command": list(command)}
    if env:
        container["env"] = [{"name": n, "value": v} for n, v in env.items()]
    pod = {"restartPolicy": "Never", "containers": [container]}
    return {
        "metadata": {"name": name, "labels": {"app": "bf", "run": name}},
        "spec": {"backoffLimit": 0, **spec, "template": {"spec": pod}},
    }


def create(k: Kube, name: str, *command: str, **kw: Any) -> client.V1Job:
    return k.batch.create_namespaced_job(NS, job(name, *command, **kw), _request_timeout=T)


def eventually(fn: Callable[[], R], timeout: float = 5.0) -> R:
    deadline = time.monotonic() + timeout
    while True:
        if value := fn():
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def outcome(k: Kube, name: str) -> client.V1Job:
    """Wait for the Job's terminal condition."""

    def ended() -> client.V1Job | None:
        j = k.batch.read_namespaced_job(name, NS, _request_timeout=T)
        types = {c.type for c in j.status.conditions or [] if c.status == "True"}
        return j if types & {"Complete", "Failed"} else None

    return eventually(ended)


def pod_of(k: Kube, name: str) -> client.V1Pod:
    pods = k.core.list_namespaced_pod(NS, label_selector=f"job-name={name}", _request_timeout=T)
    assert len(pods.items) == 1
    return pods.items[0]


def log(k: Kube, name: str, **kw: Any) -> str:
    pod = pod_of(k, name).metadata.name
    text: str = k.core.read_namespaced_pod_log(pod, NS, _request_timeout=T, **kw)
    return text


def started_log(k: Kube, name: str) -> str:
    """The log once the pod runs and has written something."""

    def running() -> str:
        pod = pod_of(k, name)
        return "" if pod.status.phase == "Pending" else log(k, name)

    return eventually(running)


def conditions(j: client.V1Job) -> list[tuple[str, str | None]]:
    return [(c.type, c.reason) for c in j.status.conditions]


def body(e: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(e.value.body)
    return parsed


def alive(pid: int) -> bool:
    """Linux: a zombie nobody reaped counts as dead."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:  # no such file, or no such process while reading it
        return False


# -- create, read, run ------------------------------------------------------------------


def test_create_is_201_with_server_fields_and_a_duplicate_is_409(k: Kube) -> None:
    created, code, _ = k.batch.create_namespaced_job_with_http_info(
        NS, job("j1", "true"), _request_timeout=T
    )
    assert code == 201
    assert created.metadata.uid and created.metadata.namespace == NS
    assert int(created.metadata.resource_version) > 0
    assert created.metadata.creation_timestamp is not None
    labels = created.spec.template.metadata.labels
    assert labels["job-name"] == labels["batch.kubernetes.io/job-name"] == "j1"
    assert labels["controller-uid"] == created.metadata.uid
    assert created.metadata.labels == {"app": "bf", "run": "j1"}
    with pytest.raises(ApiException) as e:
        create(k, "j1", "true")
    assert e.value.status == 409
    assert body(e)["reason"] == "AlreadyExists"
    assert body(e)["message"] == 'jobs.batch "j1" already exists'


def test_a_failing_command_fails_the_job_with_its_merged_output_as_the_log(k: Kube) -> None:
    create(k, "bad", "sh", "-c", "echo hi; echo err >&2; exit 3")
    j = outcome(k, "bad")
    assert conditions(j) == [
        ("FailureTarget", "BackoffLimitExceeded"),
        ("Failed", "BackoffLimitExceeded"),
    ]
    assert j.status.failed == 1 and not j.status.active and j.status.completion_time is None
    assert log(k, "bad") == "hi\nerr\n"
    pod = pod_of(k, "bad")
    assert pod.status.phase == "Failed"
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (3, "Error")


def test_exit_zero_completes_the_job(k: Kube) -> None:
    create(k, "good", "echo", "loaded")
    j = outcome(k, "good")
    assert conditions(j)[-1] == ("Complete", "CompletionsReached")
    assert j.status.succeeded == 1 and j.status.completion_time and j.status.start_time
    assert pod_of(k, "good").status.phase == "Succeeded"
    assert log(k, "good") == "loaded\n"


def test_the_container_env_and_working_dir_reach_the_process(k: Kube, tmp_path: Path) -> None:
    body_ = job("env", "sh", "-c", 'printf "%s %s" "$GREETING" "$(pwd)"', env={"GREETING": "hi"})
    body_["spec"]["template"]["spec"]["containers"][0]["workingDir"] = str(tmp_path)
    k.batch.create_namespaced_job(NS, body_, _request_timeout=T)
    outcome(k, "env")
    assert log(k, "env") == f"hi {tmp_path}"


def test_a_missing_executable_fails_to_start(k: Kube) -> None:
    create(k, "nope", "/no/such/binary")
    assert conditions(outcome(k, "nope"))[-1] == ("Failed", "BackoffLimitExceeded")
    terminated = pod_of(k, "nope").status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (128, "StartError")


def test_active_deadline_kills_the_whole_process_group(k: Kube) -> None:
    started = time.monotonic()
    create(k, "slow", "sh", "-c", "sleep 60 & echo $!; wait", active_deadline_seconds=1)
    pid = int(started_log(k, "slow"))
    j = outcome(k, "slow")
    assert time.monotonic() - started < 4
    assert conditions(j)[-1] == ("Failed", "DeadlineExceeded")
    assert j.status.conditions[-1].message == "Job was active longer than specified deadline"
    eventually(lambda: not alive(pid))
    terminated = eventually(lambda: pod_of(k, "slow").status.container_statuses[0].state.terminated)
    assert terminated.exit_code == 137


def test_a_pending_pod_is_not_running_and_has_no_log_yet(k: Kube) -> None:
    k.api.pod_delay = 0.5
    create(k, "later", "true")
    j = k.batch.read_namespaced_job("later", NS, _request_timeout=T)
    assert not j.status.active and not j.status.conditions
    pod = pod_of(k, "later")
    assert pod.status.phase == "Pending"
    assert pod.status.container_statuses[0].state.waiting.reason == "ContainerCreating"
    with pytest.raises(ApiException) as e:
        log(k, "later")
    assert e.value.status == 400
    assert body(e)["message"] == (
        f'container "main" in pod "{pod.metadata.name}" is waiting to start: ContainerCreating'
    )
    assert conditions(outcome(k, "later"))[-1][0] == "Complete"


def test_invalid_jobs_are_422(k: Kube) -> None:
    bad = [
        job("Upper_case", "true"),
        job("x" * 64, "true"),
        {**job("labels", "true"), "metadata": {"name": "labels", "labels": {"a": "-bad-"}}},
    ]
    always = job("always", "true")
    always["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    for body_ in [*bad, always]:
        with pytest.raises(ApiException) as e:
            k.batch.create_namespaced_job(NS, body_, _request_timeout=T)
        assert (e.value.status, body(e)["reason"]) == (422, "Invalid")
    assert "restartPolicy" in body(e)["message"]
    assert k.api.jobs(NS) == []


def test_missing_objects_are_404(k: Kube) -> None:
    for call in (
        lambda: k.batch.read_namespaced_job("gone", NS, _request_timeout=T),
        lambda: k.batch.delete_namespaced_job("gone", NS, _request_timeout=T),
        lambda: k.core.read_namespaced_pod("gone", NS, _request_timeout=T),
    ):
        with pytest.raises(ApiException) as e:
            call()
        assert (e.value.status, body(e)["reason"]) == (404, "NotFound")
    assert body(e)["message"] == 'pods "gone" not found'


def test_list_filters_by_label_selector(quick: Kube) -> None:
    for name in ("a", "b", "c"):
        create(quick, name, "true")

    def names(selector: str) -> list[str]:
        jobs = quick.batch.list_namespaced_job(NS, label_selector=selector, _request_timeout=T)
        return sorted(j.metadata.name for j in jobs.items)

    assert names("") == ["a", "b", "c"]
    assert names("app=bf,run!=b") == ["a", "c"]
    assert names("run in (a, c)") == ["a", "c"]
    assert names("run notin (a),app==bf") == ["b", "c"]
    assert names("!run") == names("nolabel") == []
    listing = quick.batch.list_namespaced_job(NS, _request_timeout=T)
    assert int(listing.metadata.resource_version) == quick.api.resource_version
    assert quick.batch.list_namespaced_job("other", _request_timeout=T).items == []


def test_logs_limit_bytes_tail_lines_and_follow(k: Kube) -> None:
    create(k, "lines", "sh", "-c", "printf 'one\\ntwo\\nthree\\n'")
    outcome(k, "lines")
    assert log(k, "lines", limit_bytes=5) == "one\nt"
    assert log(k, "lines", tail_lines=2) == "two\nthree\n"
    assert log(k, "lines", container="main") == "one\ntwo\nthree\n"
    create(k, "slowlog", "sh", "-c", "echo a; sleep 0.3; echo b")
    pod = eventually(
        lambda: pod_of(k, "slowlog").status.phase == "Running" and pod_of(k, "slowlog")
    )
    followed = k.core.read_namespaced_pod_log(
        pod.metadata.name, NS, follow=True, _request_timeout=T
    )
    assert followed == "a\nb\n"


def test_delete_in_background_kills_the_pod_and_is_watched(k: Kube) -> None:
    create(k, "victim", "sh", "-c", "echo $$; exec sleep 60")
    pid = int(started_log(k, "victim"))
    since = k.batch.list_namespaced_job(NS, _request_timeout=T).metadata.resource_version
    k.batch.delete_namespaced_job("victim", NS, propagation_policy="Background", _request_timeout=T)
    eventually(lambda: not alive(pid))
    assert k.core.list_namespaced_pod(NS, _request_timeout=T).items == []
    events = list(
        watch.Watch().stream(
            k.batch.list_namespaced_job,
            NS,
            resource_version=since,
            timeout_seconds=1,
            _request_timeout=T,
        )
    )
    assert [(e["type"], e["object"].metadata.name) for e in events] == [("DELETED", "victim")]


def test_delete_orphan_keeps_the_pod(quick: Kube) -> None:
    create(quick, "keep", "hang")
    quick.batch.delete_namespaced_job("keep", NS, body={"propagationPolicy": "Orphan"})
    assert quick.api.jobs(NS) == [] and len(quick.api.pods(NS)) == 1


def test_ttl_after_finished_deletes_the_job_and_its_pods(k: Kube) -> None:
    create(k, "brief", "true", ttl_seconds_after_finished=0)
    eventually(lambda: k.api.jobs(NS) == [] and k.api.pods(NS) == [])


# -- watches ------------------------------------------------------------------------------


def test_watch_from_a_resource_version_replays_what_was_missed(quick: Kube) -> None:
    create(quick, "before", "true")
    outcome(quick, "before")
    since = quick.batch.list_namespaced_job(NS, _request_timeout=T).metadata.resource_version
    create(quick, "after1", "true")
    create(quick, "after2", "false")
    w = watch.Watch()
    events = list(
        w.stream(
            quick.batch.list_namespaced_job,
            NS,
            resource_version=since,
            timeout_seconds=1,
            _request_timeout=T,
        )
    )
    seen = [(e["type"], e["object"].metadata.name) for e in events]
    assert ("ADDED", "after1") in seen and ("ADDED", "after2") in seen
    assert all(name != "before" for _, name in seen)
    assert [int(e["object"].metadata.resource_version) for e in events] == sorted(
        int(e["object"].metadata.resource_version) for e in events
    )
    assert w.resource_version == events[-1]["object"].metadata.resource_version
    last = events[-1]["object"]
    assert conditions(last)[-1] == ("Failed", "BackoffLimitExceeded")


def test_watch_without_a_resource_version_lists_then_follows(quick: Kube) -> None:
    create(quick, "old", "true")
    outcome(quick, "old")
    got: list[tuple[str, str]] = []
    w = watch.Watch()

    def later() -> None:
        eventually(lambda: quick.api.active_watches == 1)
        create(quick, "new", "hang")

    threading.Thread(target=later).start()
    for e in w.stream(
        quick.batch.list_namespaced_job,
        NS,
        label_selector="app=bf",
        timeout_seconds=5,
        _request_timeout=T,
    ):
        got.append((e["type"], e["object"].metadata.name))
        if e["object"].metadata.name == "new" and e["object"].status.active:
            w.stop()
    assert got == [("ADDED", "old"), ("ADDED", "new"), ("MODIFIED", "new")]


def test_a_watch_ends_cleanly_after_timeout_seconds_with_a_bookmark(quick: Kube) -> None:
    started = time.monotonic()
    events = list(
        watch.Watch().stream(
            quick.batch.list_namespaced_job,
            NS,
            timeout_seconds=1,
            allow_watch_bookmarks=True,
            _request_timeout=T,
        )
    )
    assert 0.9 < time.monotonic() - started < 3
    assert [e["type"] for e in events] == ["BOOKMARK"]
    # The server's handler lets go just after the client read the end of the stream.
    eventually(lambda: quick.api.active_watches == 0)


def test_request_timeout_on_an_idle_watch_raises_and_the_server_lets_go(quick: Kube) -> None:
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        list(
            watch.Watch().stream(
                quick.batch.list_namespaced_job, NS, timeout_seconds=30, _request_timeout=0.3
            )
        )
    eventually(lambda: quick.api.active_watches == 0)


def test_gone_next_watch_is_an_api_exception_410_when_retries_are_off(quick: Kube) -> None:
    quick.api.gone_next_watch()
    with pytest.raises(ApiException) as e:
        list(
            watch.Watch().stream(
                quick.batch.list_namespaced_job, NS, timeout_seconds=5, _request_timeout=T
            )
        )
    assert e.value.status == 410
    assert "Expired: too old resource version" in e.value.reason


def test_gone_next_watch_is_retried_once_by_the_client_from_its_resource_version(
    quick: Kube,
) -> None:
    """Without timeout_seconds, Watch.stream re-watches once from the same resourceVersion."""
    since = str(quick.api.resource_version)
    create(quick, "x", "hang")
    quick.api.gone_next_watch()
    w = watch.Watch()
    for e in w.stream(
        quick.batch.list_namespaced_job, NS, resource_version=since, _request_timeout=T
    ):
        assert (e["type"], e["object"].metadata.name) == ("ADDED", "x")
        w.stop()
    watches = [r for r in quick.api.requests if r.watch]
    assert [r.query["resourceVersion"] for r in watches] == [since, since]


def test_gone_without_a_resource_version_ends_the_stream_quietly(quick: Kube) -> None:
    """The client has nothing to resume from, so it stops: no event and no exception."""
    create(quick, "x", "true")
    quick.api.gone_next_watch()
    assert list(watch.Watch().stream(quick.batch.list_namespaced_job, NS, _request_timeout=T)) == []


def test_a_resource_version_older_than_the_history_is_410() -> None:
    with serving(FakeKubeAPI(history=5, run_commands=False)) as quick:  # a short memory
        # Each create stores two events at once (its Job and its pod added); the pod's
        # start and end come later, from the fake kubelet's timer, which a busy machine
        # delays. Four creates alone push version 1's successors out of a history of 5;
        # no pod starts here, so the test does not hang on that timer.
        quick.api.pod_delay = 60.0
        for i in range(4):
            create(quick, f"j{i}", "true")
        watch_from_1 = {"resource_version": "1", "_request_timeout": T}
        with pytest.raises(ApiException) as e:
            list(
                watch.Watch().stream(
                    quick.batch.list_namespaced_job, NS, timeout_seconds=5, **watch_from_1
                )
            )
        assert e.value.status == 410
        assert "too old resource version: 1" in e.value.reason
        # without timeout_seconds the client retries once, from the same too-old version
        with pytest.raises(ApiException) as e:
            list(watch.Watch().stream(quick.batch.list_namespaced_job, NS, **watch_from_1))
        assert e.value.status == 410
        assert quick.api.count("GET", resource="jobs", watch=True) == 3


def test_a_watch_dropped_mid_stream_raises_a_protocol_error(quick: Kube) -> None:
    for i in range(4):
        create(quick, f"j{i}", "hang")
    quick.api.drop_watch_after(2)
    got = []
    with pytest.raises(urllib3.exceptions.ProtocolError):
        for e in watch.Watch().stream(
            quick.batch.list_namespaced_job, NS, timeout_seconds=5, _request_timeout=T
        ):
            got.append(e["object"].metadata.name)
    assert got == ["j0", "j1"]
    # The server's thread forgets the watch once its write failed: the client may see
    # the dropped stream first (a race seen under load).
    deadline = time.monotonic() + 5
    while quick.api.active_watches and time.monotonic() < deadline:
        time.sleep(0.01)
    assert quick.api.active_watches == 0


def test_pods_can_be_watched_too(quick: Kube) -> None:
    create(quick, "p", "true")
    outcome(quick, "p")
    events = list(
        watch.Watch().stream(
            quick.core.list_namespaced_pod,
            NS,
            resource_version="0",
            timeout_seconds=1,
            _request_timeout=T,
        )
    )
    assert [e["object"].status.phase for e in events] == ["Succeeded"]


# -- faults, RBAC, quota, auth, counting ----------------------------------------------


def test_fail_next_answers_a_status_then_the_retry_succeeds(k: Kube) -> None:
    k.api.fail_next("POST", "jobs", 500, message="etcdserver: request timed out")
    with pytest.raises(ApiException) as e:
        create(k, "retry", "true")
    assert e.value.status == 500
    assert body(e)["message"] == "etcdserver: request timed out"
    assert body(e)["reason"] == "InternalError"
    assert create(k, "retry", "true").metadata.name == "retry"
    assert k.api.count("POST", resource="jobs") == 2


def test_drop_next_closes_the_connection(quick: Kube) -> None:
    quick.api.drop_next("POST", "jobs")
    with pytest.raises(urllib3.exceptions.ProtocolError):
        create(quick, "dropped", "true")
    assert quick.api.jobs(NS) == []
    # urllib3 retries an idempotent GET on its own: the drop is invisible but counted
    quick.api.drop_next("GET", "jobs")
    assert quick.batch.list_namespaced_job(NS, _request_timeout=T).items == []
    assert quick.api.count("GET", resource="jobs") == 2


def test_quota_forbids_creating_past_the_active_limit(quick: Kube) -> None:
    quick.api.quota(1)
    create(quick, "first", "hang")
    with pytest.raises(ApiException) as e:
        create(quick, "second", "true")
    assert (e.value.status, body(e)["reason"]) == (403, "Forbidden")
    assert body(e)["message"] == (
        'jobs.batch "second" is forbidden: exceeded quota: backfill-quota, requested: '
        "count/jobs.batch=1, used: count/jobs.batch=1, limited: count/jobs.batch=1"
    )
    quick.batch.delete_namespaced_job("first", NS, propagation_policy="Background")
    create(quick, "second", "true")


def test_deny_forbids_with_the_rbac_message_and_ssar_says_no(k: Kube) -> None:
    k.api.deny("create", "jobs")
    k.api.deny("get", "pods", "log")
    with pytest.raises(ApiException) as e:
        create(k, "nope", "true")
    assert (e.value.status, body(e)["reason"]) == (403, "Forbidden")
    assert body(e)["message"] == (
        'jobs.batch is forbidden: User "system:serviceaccount:default:default" cannot create '
        'resource "jobs" in API group "batch" in the namespace "ns"'
    )

    def review(verb: str, resource: str, subresource: str | None = None) -> bool:
        attributes = client.V1ResourceAttributes(
            namespace=NS, verb=verb, group="batch", resource=resource, subresource=subresource
        )
        ssar = client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attributes)
        )
        answer = k.authz.create_self_subject_access_review(ssar, _request_timeout=T)
        return bool(answer.status.allowed)

    assert not review("create", "jobs")
    assert review("list", "jobs") and review("get", "pods")
    assert not review("get", "pods", "log")
    assert k.batch.list_namespaced_job(NS, _request_timeout=T).items == []


def test_unauthorized_is_401_for_everything(k: Kube) -> None:
    k.api.unauthorized = True
    with pytest.raises(ApiException) as e:
        k.batch.list_namespaced_job(NS, _request_timeout=T)
    assert (e.value.status, body(e)["reason"]) == (401, "Unauthorized")
    k.api.unauthorized = False
    assert k.batch.list_namespaced_job(NS, _request_timeout=T).items == []


def test_requests_are_recorded_and_counted(quick: Kube) -> None:
    create(quick, "a", "true")
    quick.batch.read_namespaced_job("a", NS, _request_timeout=T)
    w = watch.Watch()
    for _ in w.stream(quick.batch.list_namespaced_job, NS, timeout_seconds=5, _request_timeout=T):
        w.stop()
    quick.core.read_namespaced_pod_log(pod_of(quick, "a").metadata.name, NS, _request_timeout=T)
    api = quick.api
    assert api.count() == 5
    assert api.count("POST", resource="jobs") == 1
    assert api.count("GET", resource="jobs") == 2
    assert api.count(resource="jobs", watch=True) == 1
    assert api.count(resource="pods") == api.count(resource="log") == 1
    assert api.requests[0].path == f"/apis/batch/v1/namespaces/{NS}/jobs"
    assert api.requests[2].query["watch"] == "true"


def test_quick_pods_follow_the_words_of_their_command(quick: Kube) -> None:
    create(quick, "ok", "sh", "-c", "true")
    create(quick, "no", "sh", "-c", "false")
    create(quick, "stuck", "hang")
    assert conditions(outcome(quick, "ok"))[-1][0] == "Complete"
    assert conditions(outcome(quick, "no"))[-1][0] == "Failed"
    assert log(quick, "ok") == "ran sh -c true\n"
    stuck = eventually(
        lambda: quick.batch.read_namespaced_job("stuck", NS, _request_timeout=T).status.active
    )
    assert stuck == 1
    assert not quick.batch.read_namespaced_job("stuck", NS, _request_timeout=T).status.conditions


def test_many_jobs_from_many_threads(quick: Kube) -> None:
    def worker(i: int) -> None:
        for n in range(50):
            create(quick, f"w{i}-{n}", "true")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    eventually(lambda: len(quick.api.jobs(NS)) == 200)
    done = eventually(
        lambda: all(j["status"].get("succeeded") == 1 for j in quick.api.jobs(NS)), timeout=10
    )
    assert done
