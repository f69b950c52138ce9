"""Kubernetes backend benchmark (issue 12): N Jobs created, tracked to the end and cleaned
up, against the fake API server of the tests and a real control plane, in one run.

    python bench/k8s_bench.py [--jobs 1000] [--concurrency 100] [--target both]
                              [--runs 1] [--cleanup ttl|delete] [--ttl 10] [--json]

Workload (generated here): N attempts of `true` (image busybox, hostNetwork), each its
own Job. The bench drives `KubernetesBackend` exactly as the controller's loop does:
`poll` the running attempts, `start` new ones while fewer than --concurrency run, and
`wait` (the tracker's watch wakes it) when nothing moved. No store and no scheduler:
the figures are the backend's and the cluster's.

Targets, in this order when --target both, so the figures are comparable:
- fake: `tests/backends/k8s_api.py` in a child process (its CPU is the child's; each pod
  runs `true` as a local process), reached through the real `kubernetes` client.
- real: `tests/k8s/cluster/` (etcd, kube-apiserver, kube-controller-manager,
  kube-scheduler, a kubelet on containerd and runc), started in a temporary directory
  and stopped at the end, on errors and Ctrl-C too. Binaries:
  `python -m tests.k8s.cluster build`; root (containerd, cgroups).

Each run uses a fresh namespace. Cleanup (--cleanup ttl, as in production): the Jobs
carry ttlSecondsAfterFinished=--ttl and the TTL controller deletes them (and the garbage
collector their pods); --cleanup delete: the bench deletes each Job (background
propagation) once all ended. The cleanup figure is the time from the last end until the
namespace has no Job and no pod left.

Figures per target: wall time from the first start until every attempt ended, Jobs/s,
time to each attempt's end as the backend saw it (median, p95), cleanup time, the
backend's API requests by kind (counted in the client, by wrapping its ApiClient), the
server's view of the requests (fake: its request log; real: the API server's
apiserver_request_total, all clients: the control plane's own traffic included), the
bench process's CPU seconds and peak RSS (the backend's; the fake server runs in a child),
and the CPU seconds of the server side (fake: the server process and its pods' processes;
real: each component, from /proc/PID/stat, children included; containerd's shims, runc
and the containers are not its children: they are in the machine's busy CPU, which also
counts whatever else this machine runs). Correctness: every attempt ended `succeeded`
exactly once; exactly N Jobs were created (N create requests answered 201, N distinct
uids, no 409). Exit status 1 when a check fails.

Why --concurrency 100: it is what a controller keeps in flight, its resource groups'
limits, not the size of the backfill; 100 Jobs at once is a large group for one cluster
and keeps this single node busy (the kubelet runs pods in parallel) without turning the
bench into a measure of a 1,000-pod backlog in the scheduler. --concurrency 1000 measures
that backlog.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import multiprocessing
import os
import resource
import secrets
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kubernetes import client as k8s  # noqa: E402

from backfill_ctl.backends import AttemptSpec, Handle, Key, Outcome  # noqa: E402
from backfill_ctl.backends.kubernetes import KubernetesBackend  # noqa: E402
from backfill_ctl.core.records import Run  # noqa: E402
from backfill_ctl.spec.model import Kubernetes  # noqa: E402
from tests.k8s.cluster.images import BUSYBOX  # noqa: E402

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from tests.k8s.cluster import Cluster

TICK = os.sysconf("SC_CLK_TCK")
COMPONENTS = (
    "kube-apiserver",
    "etcd",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "containerd",
)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- counting requests in the client ---------------------------------------------------


def request_kind(method: str, url: str) -> str:
    """`POST jobs`, `LIST pods`, `GET pods/log`, `WATCH jobs`, `DELETE jobs`..."""
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    if "namespaces" in segments and len(segments) > segments.index("namespaces") + 2:
        rest = segments[segments.index("namespaces") + 2 :]
    else:  # cluster-scoped: /api/v1/<resource>[/<name>] or /apis/<g>/<v>/<resource>...
        rest = segments[2:] if segments[:1] == ["api"] else segments[3:]
    resource_name = "/".join(rest[:1] + rest[2:3]) or parts.path
    verb = method.upper()
    if verb == "GET" and len(rest) == 1:
        watch = parse_qs(parts.query).get("watch", [""])[0].lower() in ("true", "1")
        verb = "WATCH" if watch else "LIST"
    return f"{verb} {resource_name}"


class Counted:
    """Wraps an ApiClient's call_api: every request, by kind and by status."""

    def __init__(self, api_client: k8s.ApiClient) -> None:
        self.kinds: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self._lock = threading.Lock()
        original = api_client.call_api

        def call_api(method: str, url: str, *args: Any, **kw: Any) -> Any:
            kind = request_kind(method, url)
            with self._lock:
                self.kinds[kind] += 1
            try:
                response = original(method, url, *args, **kw)
            except k8s.ApiException as exc:
                with self._lock:
                    self.statuses[f"{kind} {exc.status}"] += 1
                raise
            with self._lock:
                self.statuses[f"{kind} {response.status}"] += 1
            return response

        api_client.call_api = call_api  # type: ignore[method-assign]


# -- the bench process and the machine ---------------------------------------------------


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def reset_peak_rss() -> None:
    """VmHWM back to the current RSS (Linux: 5 > /proc/self/clear_refs)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mb() -> float:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def proc_cpu(pid: int) -> float:
    """CPU seconds of a process and its reaped children (utime+stime+cutime+cstime)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / TICK


def machine_busy() -> float:
    """CPU seconds this machine spent not idle, all cores, all processes."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / TICK


# -- targets -----------------------------------------------------------------------------


class Target(Protocol):
    name: str

    def configuration(self) -> k8s.Configuration: ...
    def namespace(self) -> str: ...
    def left(self, namespace: str) -> tuple[int, int]: ...
    def cpu(self) -> dict[str, float]: ...
    def server_requests(self) -> Counter[str]: ...
    def close(self) -> None: ...


def _serve_fake(conn: Connection) -> None:
    """The child process of the fake target: FakeKubeAPI, answering the parent's asks."""
    sys.path.insert(0, str(ROOT))
    from tests.backends.k8s_api import FakeKubeAPI

    with FakeKubeAPI(run_commands=True, history=100_000) as api:
        conn.send(api.url)
        while True:
            ask, arg = conn.recv()
            if ask == "stop":
                return
            if ask == "left":
                conn.send((len(api.jobs(arg)), len(api.pods(arg))))
            elif ask == "cpu":
                t = os.times()
                conn.send(
                    {
                        "fake server": t.user + t.system,
                        "its pods' processes": t.children_user + t.children_system,
                    }
                )
            elif ask == "requests":
                with api._lock:
                    kinds = Counter(
                        request_kind(r.method, r.path + ("?watch=true" if r.watch else ""))
                        for r in api.requests
                    )
                conn.send(kinds)


class FakeTarget:
    name = "fake"

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve_fake, args=(child,), daemon=True)
        self._process.start()
        self.url = str(self._conn.recv())

    def _ask(self, ask: str, arg: str = "") -> Any:
        self._conn.send((ask, arg))
        return self._conn.recv()

    def configuration(self) -> k8s.Configuration:
        return k8s.Configuration(host=self.url)

    def namespace(self) -> str:
        return "bench-" + secrets.token_hex(3)  # the fake needs no Namespace object

    def left(self, namespace: str) -> tuple[int, int]:
        jobs, pods = self._ask("left", namespace)
        return int(jobs), int(pods)

    def cpu(self) -> dict[str, float]:
        return dict(self._ask("cpu"))

    def server_requests(self) -> Counter[str]:
        return Counter(self._ask("requests"))

    def close(self) -> None:
        with contextlib.suppress(OSError, EOFError):
            self._ask_stop()
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()

    def _ask_stop(self) -> None:
        self._conn.send(("stop", ""))


CGROUPS = Path("/sys/fs/cgroup")


class RealTarget:
    name = "real"

    def __init__(self, root: Path, controller_qps: int | None = None) -> None:
        from tests.k8s.cluster.build import bin_dir, built

        if not built():
            raise SystemExit(
                f"no cluster binaries in {bin_dir()}: python -m tests.k8s.cluster build"
            )
        from tests.k8s.cluster import Cluster

        started = time.monotonic()
        # its pods under a cgroup root of their own
        self.cluster: Cluster = Cluster.start(root, controller_qps=controller_qps)
        self.ready_s = time.monotonic() - started
        self.admin = k8s.ApiClient(self.configuration())
        self.core = k8s.CoreV1Api(self.admin)
        self.batch = k8s.BatchV1Api(self.admin)

    def configuration(self) -> k8s.Configuration:
        from tests.k8s.helpers import configuration

        return configuration(self.cluster)

    def namespace(self) -> str:
        name = "bench-" + secrets.token_hex(3)
        self.core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
        deadline = time.monotonic() + 60
        while not self.core.list_namespaced_service_account(name).items:  # pods need it
            if time.monotonic() > deadline:
                raise RuntimeError("the serviceaccount controller made no default account")
            time.sleep(0.1)
        return name

    def left(self, namespace: str) -> tuple[int, int]:
        jobs = self.batch.list_namespaced_job(namespace, limit=500).items
        pods = self.core.list_namespaced_pod(namespace, limit=500).items
        return len(jobs), len(pods)

    def cpu(self) -> dict[str, float]:
        found = {
            name: proc_cpu(self.cluster.processes[name].pid)
            for name in COMPONENTS
            if name in self.cluster.processes
        }
        usage = CGROUPS / "cpuacct" / self.cluster.cgroup / "cpuacct.usage"
        with contextlib.suppress(OSError, ValueError):
            found["pods (their cgroups)"] = int(usage.read_text()) / 1e9
        return found

    def timeline(self, namespace: str) -> dict[str, float]:
        """Where an attempt's time goes, from the Jobs and pods still there (1 s steps):
        the median and p95 of each stage, over the pods the TTL controller left."""
        listed: list[Any] = self.batch.list_namespaced_job(namespace).items
        jobs = {j.metadata.name: j for j in listed}
        stages: dict[str, list[float]] = {}

        def add(stage: str, begin: Any, end: Any) -> None:
            if begin is not None and end is not None:
                stages.setdefault(stage, []).append((end - begin).total_seconds())

        pod: Any
        job: Any
        for pod in self.core.list_namespaced_pod(namespace).items:
            job = jobs.get((pod.metadata.labels or {}).get("job-name", ""))
            if job is None:
                continue
            scheduled = next(
                (c.last_transition_time for c in pod.status.conditions or []
                 if c.type == "PodScheduled" and c.status == "True"),
                None,
            )  # fmt: skip
            ran = next(
                (s.state.terminated for s in pod.status.container_statuses or []
                 if s.state and s.state.terminated),
                None,
            )  # fmt: skip
            add("Job created > pod created", job.metadata.creation_timestamp,
                pod.metadata.creation_timestamp)  # fmt: skip
            add("pod created > scheduled", pod.metadata.creation_timestamp, scheduled)
            if ran is not None:
                add("scheduled > container started", scheduled, ran.started_at)
                add("container ran", ran.started_at, ran.finished_at)
                add("container ended > Job complete", ran.finished_at,
                    job.status.completion_time)  # fmt: skip
            add("Job created > Job complete", job.metadata.creation_timestamp,
                job.status.completion_time)  # fmt: skip
        figures: dict[str, float] = {"Jobs still there (not deleted by TTL)": float(len(jobs))}
        for stage, values in stages.items():
            values.sort()
            figures[f"{stage}, median"] = statistics.median(values)
            figures[f"{stage}, p95"] = values[min(len(values) - 1, int(len(values) * 0.95))]
        return figures

    def server_requests(self) -> Counter[str]:
        """apiserver_request_total by verb and resource (every client), from /metrics."""
        code, body = self.cluster.get("/metrics")
        kinds: Counter[str] = Counter()
        if code != 200:
            return kinds
        for line in body.decode().splitlines():
            if not line.startswith("apiserver_request_total{"):
                continue
            labels_text, value = line[len("apiserver_request_total{") :].rsplit("} ", 1)
            labels = dict(item.split("=", 1) for item in labels_text.split('",') if "=" in item)
            labels = {k: v.strip('"') for k, v in labels.items()}
            sub = labels.get("subresource", "")
            what = labels.get("resource", "") + (f"/{sub}" if sub else "")
            kinds[f"{labels.get('verb', '?')} {what} {labels.get('code', '')}"] += int(float(value))
        return kinds

    def close(self) -> None:
        self.cluster.stop()


# -- one run -------------------------------------------------------------------------------


@dataclass
class Figures:
    target: str
    jobs: int
    concurrency: int
    cleanup: str
    wall_s: float = 0.0
    jobs_per_s: float = 0.0
    attempt_median_s: float = 0.0
    attempt_p95_s: float = 0.0
    cleanup_s: float = 0.0
    ended: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    requests_per_job: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    cleanup_requests: dict[str, int] = field(default_factory=dict)
    server_requests: dict[str, int] = field(default_factory=dict)
    bench_cpu_s: float = 0.0
    bench_peak_rss_mb: float = 0.0
    server_cpu_s: dict[str, float] = field(default_factory=dict)
    machine_busy_cpu_s: float = 0.0
    timeline: dict[str, float] = field(default_factory=dict)  # real: stage -> median s
    load_average: float = 0.0  # 1 min, at the end: the machine is shared
    checks: list[str] = field(default_factory=list)  # what failed; [] when all held


def attempt(n: int) -> AttemptSpec:
    instance = hashlib.blake2b(f"bench-{n}".encode(), digest_size=8).hexdigest()
    return AttemptSpec(
        instance,
        1,
        "bench",
        f"n{n % 100:03d}",
        "2024-01-01",
        "2024-01-02T01:00:00+00:00",
        Run(("true",)),
        digest="bench",
    )


def drive(
    backend: KubernetesBackend, jobs: int, concurrency: int, timeout: float
) -> tuple[dict[Key, list[Outcome]], dict[Key, float], set[str]]:
    """The controller's loop: poll, start while below the limit, wait when idle."""
    pending = [attempt(n) for n in range(jobs)][::-1]
    running: dict[Key, Handle] = {}
    started_at: dict[Key, float] = {}
    took: dict[Key, float] = {}
    outcomes: dict[Key, list[Outcome]] = {}
    uids: set[str] = set()
    begun = last_report = time.monotonic()
    while pending or running:
        now = time.monotonic()
        if now - begun > timeout:
            log(f"  timeout: {len(outcomes)} ended, {len(running)} running")
            break
        if now - last_report >= 15:
            last_report = now
            log(
                f"  {now - begun:6.0f} s: {len(outcomes)} ended, {len(running)} running "
                f"({len(outcomes) / (now - begun):.1f}/s)"
            )
        ended = backend.poll(running)
        for key, outcome in ended.items():
            outcomes.setdefault(key, []).append(outcome)
            took[key] = time.monotonic() - started_at[key]
            del running[key]
        started = 0
        while pending and len(running) < concurrency:
            spec = pending.pop()
            started_at[spec.key] = time.monotonic()
            handle, _ = backend.start(spec)
            running[spec.key] = handle
            uids.add(str(handle.get("uid")))
            started += 1
        if not ended and not started and running:
            backend.wait(0.5)
    return outcomes, took, uids


def one_run(target: Target, args: argparse.Namespace, work: Path) -> Figures:
    figures = Figures(target.name, args.jobs, args.concurrency, args.cleanup)
    namespace = target.namespace()
    ttl = args.ttl if args.cleanup == "ttl" else 3600
    settings = Kubernetes(
        namespace=namespace,
        image=BUSYBOX,
        pod_spec={"hostNetwork": True},
        ttl_after_finished=ttl,
    )
    backend = KubernetesBackend(
        settings,
        runs=work / namespace,
        store_id=secrets.token_hex(6),
        configuration=target.configuration(),
    )
    counted = Counted(backend.api.client)
    server_before = target.server_requests()
    cpu_before, busy_before = target.cpu(), machine_busy()
    reset_peak_rss()
    mine = own_cpu()
    begun = time.monotonic()
    try:
        outcomes, took, uids = drive(backend, args.jobs, args.concurrency, args.timeout)
        figures.wall_s = time.monotonic() - begun
        figures.bench_cpu_s = own_cpu() - mine
        figures.bench_peak_rss_mb = peak_rss_mb()
        figures.requests = dict(sorted(counted.kinds.items()))
    finally:
        backend.close()
    ended_at = time.monotonic()
    if isinstance(target, RealTarget):
        figures.timeline = target.timeline(namespace)
    figures.cleanup_s = cleanup(target, namespace, backend, args, figures)
    if figures.cleanup_s < 0:
        figures.checks.append(f"cleanup: Jobs or pods left after {args.timeout:.0f} s")
    cpu_after, busy_after = target.cpu(), machine_busy()
    figures.server_cpu_s = {k: v - cpu_before.get(k, 0.0) for k, v in cpu_after.items()}
    figures.machine_busy_cpu_s = busy_after - busy_before
    figures.load_average = os.getloadavg()[0]
    server = target.server_requests() - server_before
    figures.server_requests = dict(sorted(server.items()))
    figures.statuses = dict(sorted(counted.statuses.items()))
    figures.ended = len(outcomes)
    figures.jobs_per_s = figures.ended / figures.wall_s if figures.wall_s else 0.0
    figures.outcomes = dict(Counter(o.state for ends in outcomes.values() for o in ends))
    figures.requests_per_job = sum(figures.requests.values()) / args.jobs
    if took:
        times = sorted(took.values())
        figures.attempt_median_s = statistics.median(times)
        figures.attempt_p95_s = times[min(len(times) - 1, int(len(times) * 0.95))]
    check(figures, outcomes, uids, args.jobs)
    log(
        f"  {target.name}: {figures.ended} ended in {figures.wall_s:.1f} s "
        f"({figures.jobs_per_s:.1f} Jobs/s), cleanup {figures.cleanup_s:.1f} s after "
        f"{time.monotonic() - ended_at:.1f} s"
    )
    return figures


def cleanup(
    target: Target,
    namespace: str,
    backend: KubernetesBackend,
    args: argparse.Namespace,
    figures: Figures,
) -> float:
    """Seconds from now until the namespace has no Job and no pod (-1: not by the timeout)."""
    begun = time.monotonic()
    if args.cleanup == "delete":
        api = backend.api  # its client is counted: these requests are the bench's own
        cleaning = Counted(api.client)
        names = [
            j["metadata"]["name"]
            for j in api.json("list", "jobs", api.batch.list_namespaced_job, namespace)["items"]
        ]
        for name in names:
            with contextlib.suppress(k8s.ApiException):
                api.batch.delete_namespaced_job(
                    name, namespace, propagation_policy="Background", _preload_content=False
                )
        figures.cleanup_requests = dict(cleaning.kinds)
    while target.left(namespace) != (0, 0):
        if time.monotonic() - begun > args.timeout:
            return -1.0
        time.sleep(0.25)
    return time.monotonic() - begun


def check(figures: Figures, outcomes: dict[Key, list[Outcome]], uids: set[str], jobs: int) -> None:
    twice = [k for k, ends in outcomes.items() if len(ends) != 1]
    bad = [k for k, ends in outcomes.items() if any(o.state != "succeeded" for o in ends)]
    if len(outcomes) != jobs:
        figures.checks.append(f"{jobs - len(outcomes)} attempts did not end")
    if twice:
        figures.checks.append(f"{len(twice)} attempts ended more than once")
    if bad:
        examples = [outcomes[k][0] for k in bad[:3]]
        figures.checks.append(f"{len(bad)} attempts did not succeed, e.g. {examples}")
    created = figures.statuses.get("POST jobs 201", 0)
    if created != jobs or len(uids) != jobs:
        figures.checks.append(f"{created} Jobs created (201), {len(uids)} uids, not {jobs}")
    if figures.statuses.get("POST jobs 409"):
        figures.checks.append(f"{figures.statuses['POST jobs 409']} creates answered 409")
    server_posts = sum(
        v for k, v in figures.server_requests.items() if k.startswith(("POST jobs", "create jobs"))
    )
    if server_posts not in (0, jobs):  # 0: the server does not count (no metrics)
        figures.checks.append(f"the server saw {server_posts} Job creations, not {jobs}")


# -- many runs, the report ---------------------------------------------------------------


def median_figures(runs: list[Figures]) -> Figures:
    if len(runs) == 1:
        return runs[0]
    merged = Figures(runs[0].target, runs[0].jobs, runs[0].concurrency, runs[0].cleanup)
    for name, value in asdict(runs[0]).items():
        if isinstance(value, float):
            setattr(merged, name, statistics.median(getattr(r, name) for r in runs))
        elif isinstance(value, dict):
            keys = {k for r in runs for k in getattr(r, name)}
            setattr(
                merged,
                name,
                {
                    k: statistics.median(getattr(r, name).get(k, 0) for r in runs)
                    for k in sorted(keys)
                },
            )
    merged.ended = min(r.ended for r in runs)
    merged.checks = [c for r in runs for c in r.checks]
    return merged


def report(results: dict[str, Figures], runs: int, ready: dict[str, float]) -> str:
    names = list(results)
    width = 34

    def row(label: str, values: list[str]) -> str:
        return f"  {label:{width}s}" + "".join(f"{v:>14s}" for v in values)

    first = next(iter(results.values()))
    lines = [
        f"{first.jobs} Jobs of `true`, {first.concurrency} at once, cleanup by "
        f"{first.cleanup}; " + ("median of " + str(runs) + " runs" if runs > 1 else "one run"),
        row("", names),
    ]
    if ready:
        lines.append(row("target ready (s)", [f"{ready.get(n, 0):.1f}" for n in names]))

    def num(label: str, attr: str, fmt: str = "{:.2f}") -> None:
        lines.append(row(label, [fmt.format(getattr(results[n], attr)) for n in names]))

    num("all ended (s)", "wall_s", "{:.1f}")
    num("Jobs/s", "jobs_per_s", "{:.1f}")
    num("start to end seen, median (s)", "attempt_median_s")
    num("start to end seen, p95 (s)", "attempt_p95_s")
    num("cleanup after the last end (s)", "cleanup_s", "{:.1f}")
    num("bench CPU (s)", "bench_cpu_s")
    num("bench peak RSS (MB)", "bench_peak_rss_mb", "{:.0f}")
    num("backend requests per Job", "requests_per_job")

    def table(title: str, attr: str, fmt: str = "{:.0f}") -> None:
        keys = sorted({k for n in names for k in getattr(results[n], attr)})
        if not keys:
            return
        lines.append(f"  {title}")
        for key in keys:
            values = [getattr(results[n], attr).get(key) for n in names]
            lines.append(row("  " + key, ["-" if v is None else fmt.format(v) for v in values]))

    table("backend requests (client side)", "requests")
    table("cleanup requests (the bench's)", "cleanup_requests")
    table("server CPU (s)", "server_cpu_s", "{:.1f}")
    table("real: where an attempt's time goes (s)", "timeline", "{:.1f}")
    num("machine busy CPU, all (s)", "machine_busy_cpu_s", "{:.1f}")
    num("load average (1 min) at the end", "load_average", "{:.1f}")
    for name in names:
        server = results[name].server_requests
        if server:
            lines.append(f"  server's count of requests, {name}:")
            lines.extend(
                f"    {k:{width + 10}s}{v:8.0f}"
                for k, v in sorted(server.items(), key=lambda kv: -kv[1])
                if v
            )
    for name in names:
        outcome = ", ".join(f"{k} {v:.0f}" for k, v in results[name].outcomes.items())
        checks = results[name].checks
        lines.append(f"  {name}: {outcome}; " + ("; ".join(checks) if checks else "checks held"))
    return "\n".join(lines)


def interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument(
        "--concurrency", type=int, default=100, help="attempts kept running at once"
    )
    parser.add_argument("--target", choices=("real", "fake", "both"), default="both")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--cleanup", choices=("ttl", "delete"), default="ttl")
    parser.add_argument("--ttl", type=int, default=10, help="ttlSecondsAfterFinished (s)")
    parser.add_argument(
        "--timeout", type=float, default=1800, help="give up on a run (or its cleanup) after"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--controller-qps",
        type=int,
        help="real: kube-controller-manager's --kube-api-qps (default 20; burst twice it)",
    )
    parser.add_argument("--keep", type=Path, help="real: the cluster's directory (logs), kept")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, interrupted)  # stop the cluster as on Ctrl-C
    names = ["fake", "real"] if args.target == "both" else [args.target]
    results: dict[str, Figures] = {}
    every: dict[str, list[Figures]] = {}
    ready: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="k8s-bench-") as tmp:
        for name in names:
            log(f"{name}: starting")
            begun = time.monotonic()
            where = args.keep or Path(tmp) / "cluster"
            target: Target = (
                FakeTarget() if name == "fake" else RealTarget(where, args.controller_qps)
            )
            ready[name] = time.monotonic() - begun
            try:
                for n in range(args.runs):
                    log(f"{name}: run {n + 1} of {args.runs}")
                    every.setdefault(name, []).append(one_run(target, args, Path(tmp) / "runs"))
            finally:
                log(f"{name}: stopping")
                target.close()
            results[name] = median_figures(every[name])
    if args.json:
        doc = {
            "runs": args.runs,
            "ready_s": ready,
            "medians": {n: asdict(f) for n, f in results.items()},
            "each": {n: [asdict(f) for f in fs] for n, fs in every.items()},
        }
        print(json.dumps(doc, indent=2))
    else:
        print(report(results, args.runs, ready))
    return 1 if any(f.checks for f in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
