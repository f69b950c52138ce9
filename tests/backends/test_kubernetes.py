"""The kubernetes backend through the real `kubernetes` client, against a loopback API
server that really runs each Job's command (tests/backends/k8s_api.py): the backend
contract, the Job it makes, tracking by watch (410, dropped streams), and API errors."""

from __future__ import annotations

import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from backfill_ctl.backends import AttemptSpec, BackendError, NotStarted, Outcome
from backfill_ctl.backends.kubernetes import (
    PERMISSIONS,
    KubernetesBackend,
    job_manifest,
    job_name,
    job_result,
    label_value,
)
from backfill_ctl.spec.model import Kubernetes
from backfill_ctl.usecases import reconcile
from backfill_ctl.usecases.plan import make_plan
from tests.backends.contract import BackendContract, Make, run_one, settle, spec
from tests.backends.k8s_api import FakeKubeAPI
from tests.builders import NOW, backfill, node, specs_of, workspace

SETTINGS = Kubernetes(namespace="bf", image="busybox:1.36", ttl_after_finished=600)
STORE = "0123456789ab"


@pytest.fixture
def server() -> Iterator[FakeKubeAPI]:
    with FakeKubeAPI() as api:
        yield api
    assert api.running_pids() == []


class Backends:
    """Makes backends on one server and one directory; closes them all at the end."""

    def __init__(self, server: FakeKubeAPI, root: Path) -> None:
        self.server, self.root = server, root
        self.made: list[KubernetesBackend] = []

    def __call__(
        self, settings: Kubernetes = SETTINGS, store: str = STORE, **kw: Any
    ) -> KubernetesBackend:
        backend = KubernetesBackend(
            settings,
            runs=self.root / "runs",
            store_id=store,
            configuration=self.server.configuration(),
            **kw,
        )
        self.made.append(backend)
        return backend

    def close(self) -> None:
        for backend in self.made:
            backend.close()


@pytest.fixture
def backends(server: FakeKubeAPI, tmp_path: Path) -> Iterator[Backends]:
    made = Backends(server, tmp_path)
    yield made
    made.close()


class TestKubernetesBackend(BackendContract):
    @pytest.fixture
    def make(self, backends: Backends) -> Make:
        return lambda: backends()


# -- the Job ---------------------------------------------------------------------------


def attempt(**run: Any) -> AttemptSpec:
    return spec(run.pop("command", ("python", "etl.py", "--pt", "20240301")), **run)


def test_job_names_are_dns_labels_unique_by_instance_and_attempt() -> None:
    s = replace(spec(("true",)), backfill="Fix_Orders.2024", node="dwd_orders", instance="ab12")
    assert job_name(s) == "fix-orders-2024-dwd-orders-ab12-1"
    long = replace(s, backfill="x" * 80, instance="0123456789abcdef", number=12)
    name = job_name(long)
    assert len(name) <= 63 and name.endswith("-0123456789abcdef-12")
    assert job_name(replace(long, number=13)) != name


def test_label_values_are_kept_when_valid_and_hashed_when_not() -> None:
    assert label_value("dwd_orders") == "dwd_orders"
    assert label_value("x" * 63) == "x" * 63
    long = label_value("x" * 64)
    assert len(long) <= 63 and long != label_value("x" * 65)
    assert label_value("a b/c") == f"a_b_c-{label_value('a b/c').rsplit('-', 1)[1]}"


def test_the_job_of_an_attempt() -> None:
    s = replace(
        attempt(env={"BACKFILL_BIZDATE": "20240301", "A": "$gmtdate"}, timeout=90.5, retries=3),
        digest="sha256:feed",
    )
    job = job_manifest(s, SETTINGS, STORE, now=1710000000)  # 2024-03-10 in Shanghai

    assert job["metadata"]["name"] == "bf-load-i1-1"
    assert job["metadata"]["namespace"] == "bf"
    assert job["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "backfillctl",
        "backfillctl.dev/store": STORE,
        "backfillctl.dev/backfill": "bf",
        "backfillctl.dev/node": "load",
        "backfillctl.dev/instance": "i1",
        "backfillctl.dev/attempt": "1",
    }
    assert job["metadata"]["annotations"] == {
        "backfillctl.dev/backfill": "bf",
        "backfillctl.dev/node": "load",
        "backfillctl.dev/bizdate": "2024-03-01",
        "backfillctl.dev/cyctime": "2024-03-02T02:00:00+08:00",
        "backfillctl.dev/digest": "sha256:feed",
    }
    assert job["spec"]["backoffLimit"] == 0  # retries are the controller's
    assert job["spec"]["activeDeadlineSeconds"] == 91
    assert job["spec"]["ttlSecondsAfterFinished"] == 600
    pod = job["spec"]["template"]
    assert pod["metadata"]["labels"] == job["metadata"]["labels"]
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["containers"] == [
        {
            "name": "main",
            "image": "busybox:1.36",
            "command": ["python", "etl.py", "--pt", "20240301"],
            "env": [
                {"name": "A", "value": "20240310"},
                {"name": "BACKFILL_BIZDATE", "value": "20240301"},
            ],
        }
    ]
    kubernetes_validate.validate(job, kubernetes_validate.latest_version(), strict=True)


def test_a_parameter_of_a_string_command_is_in_the_container_s_environment() -> None:
    """DESIGN §7: the command text holds the expansion, the Job's env the exact value."""
    value = "$(touch PWN); x'; touch PWN2; #\n"
    specs = specs_of(
        workspace(),
        node(
            "a",
            command='echo "p=${p}"',
            parameters={"p": "safe"},
            run={"command": 'echo "p=${p}"', "image": "etl:2"},
        ),
        backfill(parameters={"p": value.replace("$", "$$")}),
    )
    plan, _ = make_plan(specs, NOW, None)
    ((wanted,),) = [d.instances for d in reconcile.desired(specs, plan, None, 0.0)]
    s = AttemptSpec(wanted.id, 1, "bf", "a", wanted.bizdate, wanted.cyctime, wanted.run)

    (container,) = job_manifest(s, SETTINGS, STORE)["spec"]["template"]["spec"]["containers"]

    assert container["command"] == ["/bin/sh", "-c", 'echo "p=${BACKFILL_PARAM_P}"']
    assert {"name": "BACKFILL_PARAM_P", "value": value} in container["env"]


def test_a_string_command_resources_account_and_pod_template() -> None:
    settings = replace(
        SETTINGS,
        service_account="backfill-runner",
        working_dir="/app/specs",
        pod_metadata={"labels": {"team": "dw"}, "annotations": {"owner": "dw@example.com"}},
        pod_spec={"nodeSelector": {"pool": "batch"}, "imagePullSecrets": [{"name": "reg"}]},
    )
    s = attempt(command="echo $X > out", image="etl:2", cpu="500m", memory="1Gi")

    job = job_manifest(s, settings, STORE)

    pod = job["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "etl:2"  # the node's image wins over the Config's
    assert container["command"] == ["/bin/sh", "-c", "echo $X > out"]
    assert container["workingDir"] == "/app/specs"
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"memory": "1Gi"},
    }
    assert pod["spec"]["serviceAccountName"] == "backfill-runner"
    assert pod["spec"]["nodeSelector"] == {"pool": "batch"}
    assert pod["spec"]["imagePullSecrets"] == [{"name": "reg"}]
    assert pod["metadata"]["labels"]["team"] == "dw"
    assert pod["metadata"]["annotations"]["owner"] == "dw@example.com"
    assert "activeDeadlineSeconds" not in job["spec"]
    kubernetes_validate.validate(job, kubernetes_validate.latest_version(), strict=True)


def test_a_node_without_an_image_cannot_run_as_a_job() -> None:
    with pytest.raises(BackendError, match=r"node load names no run\.image and the Config"):
        job_manifest(attempt(), replace(SETTINGS, image=None), STORE)


@pytest.mark.parametrize(
    ("conditions", "result"),
    [
        ([], None),
        ([{"type": "FailureTarget", "status": "True"}], None),
        ([{"type": "Complete", "status": "True"}], ("succeeded", None)),
        ([{"type": "Complete", "status": "False"}], None),
        (
            [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}],
            ("failed", None),
        ),
        (
            [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}],
            ("failed", "timed out: the Job ran longer than its 30s deadline"),
        ),
        (
            [{"type": "Failed", "status": "True", "reason": "PodFailurePolicy", "message": "m"}],
            ("failed", "m"),
        ),
    ],
)
def test_how_a_job_ended(conditions: list[dict[str, str]], result: Any) -> None:
    job = {"spec": {"activeDeadlineSeconds": 30}, "status": {"conditions": conditions}}
    assert job_result(job) == result


@pytest.mark.parametrize("pods", [{"active": 1}, {"terminating": 1}])
def test_a_job_whose_pod_still_runs_has_not_ended(pods: dict[str, int]) -> None:
    """A terminal condition while a pod is still active or terminating (a deadline's
    kill in progress): the attempt goes on until the pod is gone (issue 8, item 1)."""
    failed = [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]
    job = {"spec": {"activeDeadlineSeconds": 30}, "status": {"conditions": failed, **pods}}
    assert job_result(job) is None


# -- against the API server ------------------------------------------------------------


def test_a_finished_attempt_s_log_is_copied_next_to_the_store(
    backends: Backends, tmp_path: Path
) -> None:
    backend = backends()
    s = spec(("sh", "-c", "echo one; echo two"))
    handle, log = backend.start(s)
    assert settle(backend, {s.key: handle})[s.key] == Outcome("succeeded", 0)
    assert log == str(tmp_path / "runs" / "bf" / "i1.1.log")
    assert Path(log).read_text() == "one\ntwo\n"


def test_the_log_copies_are_private_and_never_written_through_a_planted_link(
    backends: Backends, tmp_path: Path
) -> None:
    """A runs directory is this user's and 0700, its copies 0600, as the local backend's
    files; a backfill's directory that is a symlink takes no copy elsewhere, and `backend
    check` says what is wrong with it."""
    backend = backends()
    s = spec(("sh", "-c", "echo one"))
    _, log = run_one(backend, s)
    copy = tmp_path / "runs" / "bf" / "i1.1.log"
    assert (log, copy.read_text()) == ("one\n", "one\n")
    modes = [stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "runs", copy.parent, copy)]
    assert modes == [0o700, 0o700, 0o600]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(copy.parent)
    copy.parent.symlink_to(elsewhere)
    outcome, log = run_one(backends(), s)
    assert outcome == Outcome("succeeded", 0)
    assert list(elsewhere.iterdir()) == []

    shutil.rmtree(tmp_path / "runs")
    (tmp_path / "runs").symlink_to(elsewhere)
    (_, ok, why), *_ = (r for r in backends().check() if r[0] == "write logs")
    assert (ok, why) == (
        False,
        f"{tmp_path / 'runs'} is a symlink, not a directory: refusing to use it; remove it "
        "(backfillctl makes it again, private to this user)",
    )


def test_a_big_log_keeps_its_tail(backends: Backends) -> None:
    backend = backends(max_log_size=100)
    _, log = run_one(backend, spec(("sh", "-c", "seq 1 1000")))
    assert log.startswith("[backfillctl: the first ")
    assert log.endswith("998\n999\n1000\n")
    assert len(log.split("\n", 1)[1]) == 100


def test_the_job_deadline_fails_the_attempt(backends: Backends, server: FakeKubeAPI) -> None:
    outcome, _ = run_one(backends(), spec(("sleep", "30"), timeout=1))
    assert (outcome.state, outcome.message) == (
        "failed",
        "timed out: the Job ran longer than its 1s deadline",
    )


def test_a_409_adopts_the_job_this_store_created(backends: Backends, server: FakeKubeAPI) -> None:
    s = spec(("sh", "-c", "echo once"))
    first, _ = backends().start(s)  # its response was lost: the controller tries again

    again, _ = backends().start(s)

    assert again["uid"] == first["uid"]
    assert len(server.jobs("bf")) == 1
    assert server.count("POST", resource="jobs") == 2


def test_recover_claims_the_job_name_of_an_attempt_that_never_started(
    backends: Backends, server: FakeKubeAPI
) -> None:
    """A controller paused between begin and create while a newer one took the lease:
    the newer one's recover finds no Job, claims its name with a suspended Job (no pod),
    and the paused one's create then gets a 409 on a claim: its attempt ends unstarted
    and nothing runs twice. A third controller's recover sees the claim: never started."""
    s = spec(("sh", "-c", "echo ran"))
    assert backends().recover(s, {}) is None
    (claim,) = server.jobs("bf")
    assert claim["spec"]["suspend"] is True
    assert claim["metadata"]["annotations"]["backfillctl.dev/claim"] == "never-started"
    late = backends()
    handle, _ = late.start(s)
    assert late.poll({s.key: handle})[s.key].started is False
    late.cancel(s.key, handle, "stopped")  # (the claim is not deleted)
    assert backends().recover(s, {}) is None
    assert server.pods("bf") == [] and len(server.jobs("bf")) == 1


def test_recover_asks_a_failing_server_again_rather_than_claim_or_guess(
    backends: Backends, server: FakeKubeAPI
) -> None:
    """The claim's create fails with a server error: recover raises (the controller asks
    again next tick), it does not declare the attempt unstarted."""
    backend = backends()
    backend.api.sleep = lambda seconds: None
    for _ in range(10):
        server.fail_next("POST", "jobs", 500)
    with pytest.raises(BackendError):
        backend.recover(spec(("true",)), {})


def test_a_409_on_another_store_s_job_is_refused(backends: Backends) -> None:
    s = spec(("true",))
    backends(store="ffffffffffff").start(s)
    with pytest.raises(BackendError, match="belongs to another state store"):
        backends().start(s)


def test_server_errors_are_retried(backends: Backends, server: FakeKubeAPI) -> None:
    backend = backends()
    backend.api.sleep = lambda seconds: None
    server.fail_next("POST", "jobs", 500)
    server.fail_next("POST", "jobs", 429, message="slow down")
    s = spec(("true",))
    handle, _ = backend.start(s)
    assert settle(backend, {s.key: handle})[s.key] == Outcome("succeeded", 0)
    assert server.count("POST", resource="jobs") == 3


def test_a_dropped_connection_is_retried(backends: Backends, server: FakeKubeAPI) -> None:
    backend = backends()
    backend.api.sleep = lambda seconds: None
    server.drop_next("POST", "jobs")
    s = spec(("true",))
    handle, _ = backend.start(s)
    assert settle(backend, {s.key: handle})[s.key] == Outcome("succeeded", 0)


def test_errors_that_persist_leave_the_attempt_unstarted(
    backends: Backends, server: FakeKubeAPI
) -> None:
    backend = backends()
    backend.api.sleep = lambda seconds: None
    server.fail_next("POST", "jobs", 503, times=10)
    with pytest.raises(NotStarted, match="keeps failing") as caught:
        backend.start(spec(("true",)))
    assert caught.value.state == "pending"


def test_a_missing_permission_names_the_verb_and_the_resource(
    backends: Backends, server: FakeKubeAPI
) -> None:
    server.deny("create", "jobs")
    with pytest.raises(NotStarted) as caught:
        backends().start(spec(("true",)))
    assert str(caught.value).startswith(
        "forbidden: the identity in use may not create jobs in namespace bf; grant it in a "
        "Role (deploy/rbac.yaml has the rules backfillctl needs)."
    )


def test_unauthorized_is_a_configuration_error(backends: Backends, server: FakeKubeAPI) -> None:
    server.unauthorized = True
    with pytest.raises(NotStarted, match=r"refused the credentials \(401 Unauthorized\)"):
        backends().start(spec(("true",)))


def test_a_full_quota_waits_for_resources(backends: Backends, server: FakeKubeAPI) -> None:
    server.quota(1)
    backend = backends()
    long, _ = backend.start(spec(("sleep", "30"), instance="long"))
    with pytest.raises(NotStarted) as caught:
        backend.start(spec(("true",), instance="next"))
    assert caught.value.state == "waiting-for-resources"
    assert "is at its quota: " in str(caught.value)
    backend.cancel(("long", 1), long, "test over")
    settle(backend, {("long", 1): long})


def test_an_unreachable_server_leaves_the_attempt_unstarted(tmp_path: Path) -> None:
    with FakeKubeAPI() as server:
        configuration = server.configuration()
    backend = KubernetesBackend(
        SETTINGS, runs=tmp_path, store_id=STORE, configuration=configuration
    )
    backend.api.sleep = lambda seconds: None
    try:
        with pytest.raises(NotStarted, match="cannot reach the Kubernetes API server"):
            backend.start(spec(("true",)))
    finally:
        backend.close()


def test_a_pod_template_field_the_client_does_not_know_fails_the_attempt(
    backends: Backends,
) -> None:
    backend = backends(replace(SETTINGS, pod_spec={"nodeSelectr": {"a": "b"}}))
    with pytest.raises(BackendError, match=r"the Job is not valid .*nodeSelectr"):
        backend.start(spec(("true",)))


# -- tracking --------------------------------------------------------------------------


def test_jobs_are_tracked_by_one_watch_not_a_get_per_job(
    backends: Backends, server: FakeKubeAPI
) -> None:
    backend = backends()
    specs = [spec(("sh", "-c", "sleep 0.2"), instance=f"i{n}") for n in range(10)]
    running = {s.key: backend.start(s)[0] for s in specs}
    for _ in range(20):  # the controller polls many times while they run
        backend.poll(running)
    ended = settle(backend, running)
    assert set(ended.values()) == {Outcome("succeeded", 0)}
    assert server.count("GET", resource="jobs", watch=False) == 1  # the first list
    assert server.count("GET", resource="jobs", watch=True) == 1


def test_a_410_during_the_watch_lists_again(backends: Backends, server: FakeKubeAPI) -> None:
    server.gone_next_watch()
    backend = backends()
    s = spec(("sh", "-c", "sleep 0.3"))
    handle, _ = backend.start(s)
    assert settle(backend, {s.key: handle})[s.key] == Outcome("succeeded", 0)
    assert backend.tracker.lists == 2


def test_a_watch_dropped_mid_stream_resumes_where_it_was(
    backends: Backends, server: FakeKubeAPI
) -> None:
    server.drop_watch_after(1)
    backend = backends()
    # listed and watching before the Job exists: on a slow machine a first list made after
    # the Job ended would see its end without any watch
    assert backend.tracker.synced.wait(10)
    s = spec(("sh", "-c", "sleep 0.3"))
    handle, _ = backend.start(s)
    assert settle(backend, {s.key: handle})[s.key] == Outcome("succeeded", 0)
    assert backend.tracker.lists == 1
    assert server.count("GET", resource="jobs", watch=True) >= 2


def test_a_job_deleted_behind_our_back_is_lost(backends: Backends, server: FakeKubeAPI) -> None:
    backend = backends()
    s = spec(("sleep", "30"))
    handle, _ = backend.start(s)
    backends().api.delete_job(handle["job"])  # someone ran kubectl delete job
    assert settle(backend, {s.key: handle})[s.key] == Outcome(
        "lost", None, f"the Job {handle['job']} was deleted before its end was recorded"
    )
    assert handle["job"] not in backend.tracker.deleted  # reported once, then forgotten


def test_stop_deletes_the_job_and_its_pods(backends: Backends, server: FakeKubeAPI) -> None:
    backend = backends()
    s = spec(("sh", "-c", "echo started; sleep 30"))
    handle, log = backend.start(s)
    deadline = time.monotonic() + 10
    while backend.log_text(handle, log) != "started\n":  # live, from the API
        assert time.monotonic() < deadline
        time.sleep(0.05)
    backend.cancel(s.key, handle, "stopped by ann")
    assert settle(backend, {s.key: handle})[s.key] == Outcome("failed", None, "stopped by ann")
    assert server.jobs("bf") == [] and server.pods("bf") == []
    assert Path(str(log)).read_text() == "started\n"  # what it printed before it was stopped
    delete = [r for r in server.requests if r.method == "DELETE"]
    assert len(delete) == 1


# -- backend check ---------------------------------------------------------------------


def test_check_reviews_every_permission(backends: Backends, server: FakeKubeAPI) -> None:
    server.deny("watch", "jobs")
    results = backends().check()
    assert results[0][0] == f"connect to {server.url}" and results[0][1]
    assert results[-1][:2] == ("write logs", True)
    assert [(what, ok) for what, ok, _ in results[1:-1]] == [
        (f"{verb} {resource}{'/' + sub if sub else ''}", (verb, resource) != ("watch", "jobs"))
        for verb, _, resource, sub in PERMISSIONS
    ]


def test_check_says_when_the_server_cannot_be_reached(tmp_path: Path) -> None:
    with FakeKubeAPI() as server:
        configuration = server.configuration()
    backend = KubernetesBackend(
        SETTINGS, runs=tmp_path, store_id=STORE, configuration=configuration
    )
    backend.api.sleep = lambda seconds: None
    (result,) = backend.check()
    assert result[:2] == ("connect to the API server", False)
    assert "cannot reach the Kubernetes API server" in result[2]
    backend.close()


def test_run_fields_reach_the_pod(backends: Backends, server: FakeKubeAPI) -> None:
    backend = backends()
    s = spec(("sh", "-c", "echo $WHO"), env={"WHO": "the pod"}, memory="64Mi")
    outcome, log = run_one(backend, s)
    assert (outcome, log) == (Outcome("succeeded", 0), "the pod\n")
    (pod,) = server.pods("bf")
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {"memory": "64Mi"}


def test_a_running_attempt_s_log_is_read_from_where_it_runs(
    backends: Backends, server: FakeKubeAPI
) -> None:
    runner = backends()
    s = spec(("sh", "-c", "echo live; sleep 30"))
    handle, log = runner.start(s)
    reader = backends(Kubernetes())  # what `backfillctl logs` makes: no Config at hand
    deadline = time.monotonic() + 10
    while reader.log_text(handle, log) != "live\n":
        assert time.monotonic() < deadline, "the log never showed"
        time.sleep(0.05)
    runner.cancel(s.key, handle, "test over")
    settle(runner, {s.key: handle})


# -- with the controller ---------------------------------------------------------------


def test_a_restarted_controller_adopts_running_jobs_and_never_duplicates_them(
    backends: Backends, server: FakeKubeAPI, tmp_path: Path
) -> None:
    from backfill_ctl.runtime.controller import Controller
    from tests.builders import backfill, node
    from tests.running import applied

    store = applied(
        tmp_path / "store",
        node("a", resourceGroup="rg", run={"command": ["sleep", "1"], "image": "busybox"}),
        backfill(dates=["2024-03-01", "2024-03-02"], groups=2),
    )
    first = Controller(store, backends(store=store.store_id))
    assert first.acquire(wait=False)
    first.load()
    first.tick()
    first.tick()  # (the handles of a tick's starts are written with the next tick's ends)
    assert len(first.running) == 2 and len(server.jobs("bf")) == 2
    # The instance of 03-02 began an attempt whose Job was made, but the controller died
    # before it recorded the handle.
    first.release()  # (a dead one's lease expires; here it is let go)
    running = store.attempts(states=["running"])
    store._db.execute(  # type: ignore[attr-defined]
        "UPDATE attempts SET handle = '{}', state = 'starting' WHERE number = 1 AND instance = ?",
        (running[1].instance,),
    )

    second = Controller(store, backends(store=store.store_id))
    assert second.acquire(wait=False)
    second.load()
    assert len(second.running) == 2  # both adopted, one by its recorded handle
    gate = second.scheduler.gates["bf"]
    second.run(interval=0.05, until=lambda tick: gate.record.finished_at is not None)

    assert {i.state for i in store.instances()} == {"succeeded"}
    assert len(server.jobs("bf")) == 2
    assert server.count("POST", resource="jobs") == 2
    assert [a.number for a in store.attempts()] == [1, 1]


def test_a_watch_the_server_ends_is_renewed_without_listing_again(
    backends: Backends, server: FakeKubeAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    import backfill_ctl.backends.kubernetes as module

    monkeypatch.setattr(module, "WATCH_SECONDS", 1)
    backend = backends()
    backend.wait(0.1)  # the tracker starts
    time.sleep(2.5)  # quiet: the server ends the watch after 1 s, twice
    s = spec(("true",))
    handle, _ = backend.start(s)
    assert settle(backend, {s.key: handle})[s.key] == Outcome("succeeded", 0)
    assert backend.tracker.lists == 1
    assert server.count("GET", resource="jobs", watch=True) >= 3
    assert backend.tracker.error == ""


def test_a_log_copied_before_stays_when_the_pod_is_gone(backends: Backends) -> None:
    backend = backends()
    s = spec(("echo", "kept"))
    handle, log = backend.start(s)
    settle(backend, {s.key: handle})
    backend.api.delete_job(handle["job"])  # pods go with it
    assert backend._collect(handle["job"], handle) == (
        None,
        None,
        False,
    )  # no code, nothing said, no pod
    assert Path(str(log)).read_text() == "kept\n"


def test_an_empty_copy_gives_way_to_the_pod_s_log(backends: Backends) -> None:
    """The copy was taken a moment before the container's last output reached the
    node's log (seen on the real cluster): `logs` reads the pod's, while it is there."""
    backend = backends()
    s = spec(("echo", "late"))
    handle, log = backend.start(s)
    settle(backend, {s.key: handle})
    Path(str(log)).write_text("")
    assert backend.log_text(handle, log) == "late\n"
    backend.api.delete_job(handle["job"])  # the pod gone too: the copy, empty as it is
    assert backend.log_text(handle, log) == ""


def test_an_attempt_the_server_cannot_tell_of_at_adoption_is_asked_of_again_not_run_again(
    backends: Backends, server: FakeKubeAPI, tmp_path: Path
) -> None:
    """A controller died after making an attempt's Job, before recording its handle;
    the next one cannot reach the server when it adopts: "no Job" would run the attempt
    again beside its Job. The instance stays running and the Job is looked for again on
    each tick until the server answers."""
    from backfill_ctl.runtime.controller import Controller
    from tests.builders import backfill, node
    from tests.running import applied

    store = applied(
        tmp_path / "store",
        node("a", resourceGroup="rg", run={"command": ["sleep", "1"], "image": "busybox"}),
        backfill(),
    )
    first = Controller(store, backends(store=store.store_id))
    assert first.acquire(wait=False)
    first.load()
    first.tick()  # begun and its Job made; the handle is written with the next tick's ends
    first.release()
    assert [a.state for a in store.attempts()] == ["starting"]
    assert len(server.jobs("bf")) == 1

    said: list[str] = []
    second = Controller(store, backends(store=store.store_id), say=said.append)
    second.backend.api.sleep = lambda seconds: None  # type: ignore[attr-defined]
    server.fail_next("GET", "jobs", 503, times=20)
    assert second.acquire(wait=False)
    second.load()
    assert not second.running and "cannot tell yet whether attempt 1" in said[-1]
    assert store.instances()[0].state == "running"  # not put back to run again
    second.tick()  # the server still fails (five tries a call): asked again, nothing started
    assert server.count("POST", resource="jobs") == 1

    gate = second.scheduler.gates["bf"]
    second.run(interval=0.05, until=lambda tick: gate.record.finished_at is not None)
    assert [(a.number, a.state) for a in store.attempts()] == [(1, "succeeded")]
    assert server.count("POST", resource="jobs") == 1
