"""A loopback fake of the Kubernetes API server, with a tiny fake kubelet.

The official `kubernetes` client (BatchV1Api, CoreV1Api, AuthorizationV1Api and
`kubernetes.watch.Watch`) works against it unchanged. Each Job really runs: one pod per Job,
whose first container's command is a local subprocess in its own session (so its process
group can be killed), stdout and stderr merged into the pod's log. Faults can be injected
(error statuses, dropped connections, 410 on watches, RBAC denials, a Job quota, 401) and
every request is recorded, so a test or a benchmark can count them.

Only what a Job backend needs: namespaced Jobs (create, get, list, watch, delete), Pods (get,
list, watch, log) and SelfSubjectAccessReview. Stdlib only: the `kubernetes` package is
imported by `configuration()` alone. Linux (process groups, /proc for `running_pids`).
"""

from __future__ import annotations

import contextlib
import copy
import heapq
import itertools
import json
import os
import queue
import random
import re
import select
import signal
import socket
import string
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

if TYPE_CHECKING:
    from types import TracebackType

    from kubernetes.client import Configuration

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)
Selector = list[tuple[str, str, frozenset[str]]]  # (op, key, values)

_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_REQUIREMENT = re.compile(
    r"\s*(!?)\s*([A-Za-z0-9][-A-Za-z0-9_./]*)\s*"
    r"(?:(==|=|!=)\s*([-A-Za-z0-9_.]*)|\s(in|notin)\s*\(([^)]*)\))?\s*"
)
_GROUPS = {
    "jobs": "batch",
    "pods": "",
    "log": "",
    "selfsubjectaccessreviews": "authorization.k8s.io",
}
_ROUTES = (
    ("jobs", re.compile(r"/apis/batch/v1/namespaces/([^/]+)/jobs(?:/([^/]+))?")),
    ("pods", re.compile(r"/api/v1/namespaces/([^/]+)/pods(?:/([^/]+))?")),
    ("log", re.compile(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/log")),
    (
        "selfsubjectaccessreviews",
        re.compile(r"/apis/authorization\.k8s\.io/v1/()selfsubjectaccessreviews()"),
    ),
)
_VERSION = {"major": "1", "minor": "31", "gitVersion": "v1.31.0-fake", "platform": "linux/amd64"}
_BACKOFF = "Job has reached the specified backoff limit"
_DEADLINE = "Job was active longer than specified deadline"
_DONE = "Reached expected number of succeeded pods"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def reason_for(code: int) -> str:
    """The Status reason the API server gives with this code."""
    special = {410: "Expired", 422: "Invalid", 500: "InternalError", 504: "Timeout"}
    with contextlib.suppress(ValueError):
        return special.get(code) or HTTPStatus(code).phrase.replace(" ", "")
    return "Unknown"


def status_object(code: int, message: str, reason: str = "", details: Obj | None = None) -> Obj:
    status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
    reason = reason or reason_for(code)
    return status | {"message": message, "reason": reason, "details": details or {}, "code": code}


def parse_selector(text: str) -> Selector:
    """A label selector: `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`."""
    requirements: Selector = []
    for part in re.split(r",(?![^()]*\))", text):
        if not part.strip():
            continue
        m = _REQUIREMENT.fullmatch(part)
        if m is None or (m[1] and (m[3] or m[5])):
            raise ValueError(f"unable to parse requirement: {part!r}")
        if m[1]:
            requirements.append(("!", m[2], frozenset()))
        elif m[3]:
            requirements.append(("!=" if m[3] == "!=" else "=", m[2], frozenset([m[4]])))
        elif m[5]:
            values = frozenset(v.strip() for v in m[6].split(",") if v.strip())
            requirements.append(("=" if m[5] == "in" else "!=", m[2], values))
        else:
            requirements.append(("exists", m[2], frozenset()))
    return requirements


def matches(selector: Selector, labels: dict[str, str]) -> bool:
    for op, key, values in selector:
        present = key in labels
        if (op == "exists" and not present) or (op == "!" and present):
            return False
        if op == "=" and (not present or labels[key] not in values):
            return False
        if op == "!=" and present and labels[key] in values:
            return False
    return True


class Fail(Exception):
    """Answer the request with a Status of this code."""

    def __init__(self, code: int, message: str, reason: str = "", details: Obj | None = None):
        super().__init__(message)
        self.status = status_object(code, message, reason, details)


def _not_found(resource: str, name: str) -> Fail:
    group = _GROUPS[resource]
    what = f"{resource}.{group}" if group else resource
    details = {"name": name, "group": group, "kind": resource}
    return Fail(404, f'{what} "{name}" not found', "NotFound", details)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    watch: bool = False
    resource: str | None = None  # "jobs" | "pods" | "log" | "selfsubjectaccessreviews"


@dataclass(eq=False)
class _Fault:
    method: str
    resource: str
    times: int
    status: int = 0  # 0: drop the connection
    message: str = ""
    reason: str = ""
    watch: bool | None = None


@dataclass(eq=False)
class _Watcher:
    resource: str
    namespace: str
    selector: Selector
    events: queue.SimpleQueue[bytes] = field(default_factory=queue.SimpleQueue)


@dataclass(eq=False)
class _Run:
    """What the fake kubelet knows of one Job's single pod."""

    job: Key
    pod: Key
    argv: list[str]
    env: dict[str, str]
    cwd: str | None
    log: bytearray = field(default_factory=bytearray)
    proc: subprocess.Popen[bytes] | None = None
    started: bool = False
    exited: bool = False
    finished: bool = False  # the Job has its terminal condition
    cancelled: bool = False  # the Job was deleted


class _Timers:
    """One thread running callbacks at given monotonic times."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="fake-kubelet", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(5)

    def call_at(self, when: float, fn: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._heap, (when, next(self._seq), fn))
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    if wait is not None and wait <= 0:
                        break
                    self._cond.wait(wait)
                if self._stopped:
                    return
                fn = heapq.heappop(self._heap)[2]
            try:
                fn()
            except Exception:
                traceback.print_exc(file=sys.stderr)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256
    api: FakeKubeAPI


class FakeKubeAPI:
    """The fake API server: `with FakeKubeAPI() as api:` or start()/stop().

    `run_commands=False`: a pod "runs" at once instead of running its command: it fails if
    a word of the command is `false`, runs until killed if one is `hang`, else succeeds;
    its log is "ran " + the command + newline.
    """

    def __init__(
        self,
        *,
        history: int = 1000,
        run_commands: bool = True,
        user: str = "system:serviceaccount:default:default",
    ) -> None:
        self.run_commands = run_commands
        self.user = user  # named in 403 messages
        self.unauthorized = False
        self.pod_delay = 0.0
        self.requests: list[Request] = []
        self.url = ""
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)  # a log grew or a pod ended
        self._rv = 0
        self._compacted = 0  # events up to this resourceVersion are no longer retained
        self._history: deque[tuple[int, str, str, dict[str, str], bytes]] = deque(maxlen=history)
        self._watchers: list[_Watcher] = []
        self._jobs: dict[Key, Obj] = {}
        self._pods: dict[Key, Obj] = {}
        self._runs: dict[Key, _Run] = {}  # by Job
        self._pod_runs: dict[Key, _Run] = {}  # by Pod (outlives its Job when orphaned)
        self._started: list[_Run] = []  # every run given a process
        self._faults: list[_Fault] = []
        self._gone = 0
        self._drop_after: list[int] = []
        self._denied: set[tuple[str, str, str]] = set()
        self._quota: int | None = None
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._timers = _Timers()
        self._server: _Server | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.api = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._timers.start()
        thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        """Kill every pod process still running, end every stream, shut the server down."""
        self._stopping.set()
        with self._lock:
            for run in self._started:
                if run.proc is not None and not run.exited:
                    with contextlib.suppress(OSError):
                        os.killpg(run.proc.pid, signal.SIGKILL)
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            with self._lock:
                connections = list(self._connections)
            for conn in connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self._server.server_close()
        self._timers.stop()
        for thread in self._threads:
            thread.join(5)

    def __enter__(self) -> FakeKubeAPI:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def configuration(self) -> Configuration:
        from kubernetes.client import Configuration

        return Configuration(host=self.url)

    # -- inspection ---------------------------------------------------------------------

    def count(
        self, method: str | None = None, *, resource: str | None = None, watch: bool | None = None
    ) -> int:
        method = method.upper() if method else None
        with self._lock:
            return sum(
                1
                for r in self.requests
                if method in (None, r.method)
                and resource in (None, r.resource)
                and watch in (None, r.watch)
            )

    def jobs(self, namespace: str) -> list[Obj]:
        with self._lock:
            return [copy.deepcopy(j) for (ns, _), j in self._jobs.items() if ns == namespace]

    def pods(self, namespace: str) -> list[Obj]:
        with self._lock:
            return [copy.deepcopy(p) for (ns, _), p in self._pods.items() if ns == namespace]

    def log(self, namespace: str, pod: str) -> bytes:
        with self._lock:
            run = self._pod_runs.get((namespace, pod))
            return bytes(run.log) if run else b""

    def running_pids(self) -> list[int]:
        """Process groups of fake pods with a live (not zombie) process left: [] after stop()."""
        with self._lock:
            groups = {run.proc.pid for run in self._started if run.proc is not None}
        return sorted(groups & _live_process_groups())

    @property
    def active_watches(self) -> int:
        with self._lock:
            return len(self._watchers)

    @property
    def resource_version(self) -> int:
        with self._lock:
            return self._rv

    # -- fault injection (each consumed in order of registration) -----------------------

    def fail_next(
        self,
        method: str,
        resource: str,
        status: int,
        *,
        times: int = 1,
        message: str = "",
        reason: str = "",
        watch: bool | None = None,
    ) -> None:
        """The next `times` matching requests get a Status of code `status`."""
        fault = _Fault(method.upper(), resource, times, status, message, reason, watch)
        with self._lock:
            self._faults.append(fault)

    def drop_next(
        self, method: str, resource: str, *, times: int = 1, watch: bool | None = None
    ) -> None:
        """The next `times` matching requests have their connection closed, unanswered."""
        with self._lock:
            self._faults.append(_Fault(method.upper(), resource, times, watch=watch))

    def gone_next_watch(self) -> None:
        """The next watch of jobs gets a 410 ERROR event, and its stream ends."""
        with self._lock:
            self._gone += 1

    def drop_watch_after(self, events: int) -> None:
        """The next watch stream is cut (no terminating chunk) after this many events."""
        with self._lock:
            self._drop_after.append(events)

    def deny(self, verb: str, resource: str, subresource: str = "") -> None:
        """RBAC: 403 for that verb on that resource, and SelfSubjectAccessReview says no."""
        with self._lock:
            self._denied.add((verb, resource, subresource))

    def quota(self, max_active_jobs: int | None) -> None:
        """Creating a Job while this many are unfinished in its namespace is 403; None: no quota."""
        with self._lock:
            self._quota = max_active_jobs

    # -- the store (callers hold self._lock) ---------------------------------------------

    def _take_fault(self, method: str, resource: str | None, watch: bool) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                what = (fault.method, fault.resource)
                if what == (method, resource) and fault.watch in (None, watch):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _allowed(self, verb: str, resource: str, subresource: str) -> bool:
        with self._lock:
            return not {(verb, resource, subresource), ("*", resource, subresource)} & self._denied

    def _forbidden(self, verb: str, resource: str, sub: str, ns: str, name: str) -> Fail:
        group = _GROUPS[resource]
        what = f"{resource}.{group}" if group else resource
        who = f'{what} "{name}"' if name else what
        message = (
            f'{who} is forbidden: User "{self.user}" cannot {verb} resource '
            f'"{resource}{"/" + sub if sub else ""}" in API group "{group}" in the namespace "{ns}"'
        )
        details = {"group": group, "kind": resource} | ({"name": name} if name else {})
        return Fail(403, message, "Forbidden", details)

    def _emit(self, resource: str, kind: str, obj: Obj) -> str:
        """Bump the resourceVersion, record the event, feed the watchers; the object's JSON."""
        self._rv += 1
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self._rv)
        payload = json.dumps(obj, separators=(",", ":"))
        line = f'{{"type":"{kind}","object":{payload}}}\n'.encode()
        labels, ns = meta.get("labels") or {}, meta["namespace"]
        if self._history.maxlen == 0:
            self._compacted = self._rv
        else:
            if len(self._history) == self._history.maxlen:
                self._compacted = self._history[0][0]
            self._history.append((self._rv, resource, ns, labels, line))
        for w in self._watchers:
            if (w.resource, w.namespace) == (resource, ns) and matches(w.selector, labels):
                w.events.put(line)
        return payload

    def _store(self, resource: str) -> dict[Key, Obj]:
        return self._jobs if resource == "jobs" else self._pods

    # -- Jobs ---------------------------------------------------------------------------

    def _create_job(self, ns: str, job: Obj) -> str:
        meta = job.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + _suffix()
        _validate(job)
        name, spec = meta["name"], job["spec"]
        details = {"name": name, "group": "batch", "kind": "jobs"}
        with self._lock:  # as the real server: validation, then quota admission, then storage
            used = sum(1 for (n, _), r in self._runs.items() if n == ns and not r.finished)
            if self._quota is not None and used >= self._quota:
                raise Fail(
                    403,
                    f'jobs.batch "{name}" is forbidden: exceeded quota: backfill-quota, '
                    f"requested: count/jobs.batch=1, used: count/jobs.batch={used}, "
                    f"limited: count/jobs.batch={self._quota}",
                    "Forbidden",
                    details,
                )
            if (ns, name) in self._jobs:
                raise Fail(409, f'jobs.batch "{name}" already exists', "AlreadyExists", details)
            uid = str(uuid.uuid4())
            job.update(apiVersion="batch/v1", kind="Job", status={})
            meta.update(namespace=ns, uid=uid, creationTimestamp=now(), generation=1)
            template = spec["template"]
            tmeta = template["metadata"] = template.get("metadata") or {}
            tlabels = tmeta["labels"] = tmeta.get("labels") or {}
            if not meta.get("labels") and tlabels:  # batch/v1 defaulting
                meta["labels"] = dict(tlabels)
            generated = {"batch.kubernetes.io/controller-uid": uid, "controller-uid": uid}
            spec.setdefault("selector", {"matchLabels": dict(generated)})
            tlabels.update(generated, **{"batch.kubernetes.io/job-name": name, "job-name": name})
            defaults = dict(backoffLimit=6, completions=1, parallelism=1, suspend=False)
            spec.update(defaults | {"completionMode": "NonIndexed"} | spec)
            self._jobs[(ns, name)] = job
            payload = self._emit("jobs", "ADDED", job)
            if spec["suspend"]:  # the Job controller makes no pod for a suspended Job
                return payload
            run = self._runs[(ns, name)] = self._new_pod(ns, job)
        created = time.monotonic()
        self._timers.call_at(created + self.pod_delay, lambda: self._start(run))
        if (deadline := spec.get("activeDeadlineSeconds")) is not None:
            self._timers.call_at(created + float(deadline), lambda: self._deadline(run))
        return payload

    def _new_pod(self, ns: str, job: Obj) -> _Run:
        meta, template = job["metadata"], job["spec"]["template"]
        pod_spec = copy.deepcopy(template.get("spec") or {})
        container = pod_spec["containers"][0]
        prefix = (meta["name"] + "-")[:58]
        owner = {"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"], "uid": meta["uid"]}
        owner |= {"controller": True, "blockOwnerDeletion": True}
        pod_meta = {"name": prefix + _suffix(), "generateName": prefix, "namespace": ns}
        pod_meta |= {
            "uid": str(uuid.uuid4()),
            "creationTimestamp": now(),
            "ownerReferences": [owner],
        }
        pod_meta |= {k: dict(template["metadata"].get(k) or {}) for k in ("labels", "annotations")}
        cs = {"name": container.get("name", "main"), "image": container.get("image", "")}
        cs |= {"imageID": "", "ready": False, "restartCount": 0, "started": False}
        cs |= {"state": {"waiting": {"reason": "ContainerCreating"}}}
        status = {"phase": "Pending", "qosClass": "BestEffort", "containerStatuses": [cs]}
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "status": status}
        pod["spec"] = pod_spec | {"nodeName": "fake-node"}
        key = (ns, pod_meta["name"])
        self._pods[key] = pod
        self._emit("pods", "ADDED", pod)
        env = dict(os.environ, HOSTNAME=key[1])
        env.update({e["name"]: str(e.get("value", "")) for e in container.get("env") or []})
        argv = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
        cwd = container.get("workingDir")
        run = _Run((ns, meta["name"]), key, argv, env, cwd if cwd and Path(cwd).is_dir() else None)
        self._pod_runs[key] = run
        return run

    def _delete_pod(self, run: _Run) -> None:
        if (pod := self._pods.pop(run.pod, None)) is not None:
            self._pod_runs.pop(run.pod, None)
            self._emit("pods", "DELETED", pod)

    def _delete_job(self, key: Key, policy: str) -> Obj:
        job = self._jobs.pop(key)
        self._emit("jobs", "DELETED", job)
        if (run := self._runs.pop(key, None)) is not None:
            run.cancelled = True
            if policy in ("Background", "Foreground"):
                self._delete_pod(run)
                self._kill(run)
        self._cond.notify_all()
        return job

    def _set_job_status(self, run: _Run, update: Obj) -> None:
        job = self._jobs.get(run.job)
        if job is None or self._runs.get(run.job) is not run:
            return
        job["status"].update(update)
        if run.finished:
            job["status"].pop("active", None)  # omitempty, as the real API does
            job["status"].update(ready=0, terminating=0)
        self._emit("jobs", "MODIFIED", job)

    def _finish_job(self, run: _Run, failed: str, message: str) -> None:
        """Give the Job its terminal conditions (`failed` is the reason, or "" for success)."""
        if run.finished:
            return
        run.finished = True
        ts = now()
        update: Obj
        if failed:
            kinds, reason, update = ("FailureTarget", "Failed"), failed, {"failed": 1}
        else:
            kinds, reason = ("SuccessCriteriaMet", "Complete"), "CompletionsReached"
            update = {"succeeded": 1, "completionTime": ts}
        times = {"lastProbeTime": ts, "lastTransitionTime": ts}
        update["conditions"] = [
            {"type": kind, "status": "True", "reason": reason, "message": message} | times
            for kind in kinds
        ]
        self._set_job_status(run, update)
        job = self._jobs.get(run.job) if self._runs.get(run.job) is run else None
        if job and (ttl := job["spec"].get("ttlSecondsAfterFinished")) is not None:
            self._timers.call_at(time.monotonic() + max(float(ttl), 0.05), lambda: self._ttl(run))

    def _ttl(self, run: _Run) -> None:
        with self._lock:
            if self._runs.get(run.job) is run:
                self._delete_job(run.job, "Background")

    def _deadline(self, run: _Run) -> None:
        with self._lock:
            if run.finished or self._runs.get(run.job) is not run:
                return
            self._finish_job(run, "DeadlineExceeded", _DEADLINE)
            if not run.started:
                run.cancelled = True
                self._delete_pod(run)
            self._kill(run)

    # -- the fake kubelet ---------------------------------------------------------------

    def _set_container(self, run: _Run, phase: str, state: Obj, ready: bool) -> None:
        pod = self._pods.get(run.pod)
        if pod is None or self._pod_runs.get(run.pod) is not run:
            return
        pod["status"].update(phase=phase, startTime=pod["status"].get("startTime") or now())
        pod["status"]["containerStatuses"][0].update(state=state, ready=ready, started=ready)
        self._emit("pods", "MODIFIED", pod)

    def _start(self, run: _Run) -> None:
        with self._lock:
            if run.cancelled or run.finished or self._stopping.is_set():
                return
            run.started = True
            if self.run_commands:
                try:
                    if not run.argv:
                        raise OSError("no command: the fake kubelet cannot run an image")
                    run.proc = subprocess.Popen(
                        run.argv,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                        env=run.env,
                        cwd=run.cwd,
                        start_new_session=True,
                    )
                    self._started.append(run)
                except OSError as e:
                    run.exited = True
                    state = {"exitCode": 128, "reason": "StartError", "message": str(e)}
                    self._set_container(run, "Failed", {"terminated": state}, False)
                    return self._finish_job(run, "BackoffLimitExceeded", _BACKOFF)
            ts = now()
            self._set_container(run, "Running", {"running": {"startedAt": ts}}, True)
            self._set_job_status(run, {"active": 1, "ready": 1, "startTime": ts})
            if run.proc is not None:
                thread = threading.Thread(target=self._supervise, args=(run,), daemon=True)
                self._threads.append(thread)
                thread.start()
            else:
                words = " ".join(run.argv).split()
                run.log.extend(("ran " + " ".join(run.argv) + "\n").encode())
                if "hang" not in words:
                    self._exited(run, 1 if "false" in words else 0)

    def _supervise(self, run: _Run) -> None:
        """Collect the output until the process ends (then kill what is left of its group)."""
        proc = run.proc
        assert proc is not None and proc.stdout is not None
        fd = proc.stdout.fileno()
        while True:
            if select.select([fd], [], [], 0.1)[0]:
                if not (chunk := os.read(fd, 65536)):
                    break
                with self._cond:
                    run.log.extend(chunk)
                    self._cond.notify_all()
            elif proc.poll() is not None:
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, signal.SIGKILL)
        proc.stdout.close()
        code = proc.wait()
        with self._lock:
            self._exited(run, code if code >= 0 else 128 - code)

    def _exited(self, run: _Run, code: int) -> None:
        run.exited = True
        ts = now()
        terminated = dict(
            exitCode=code, reason="Error" if code else "Completed", startedAt=ts, finishedAt=ts
        )
        self._set_container(
            run, "Failed" if code else "Succeeded", {"terminated": terminated}, False
        )
        self._finish_job(run, "BackoffLimitExceeded" if code else "", _BACKOFF if code else _DONE)
        self._cond.notify_all()

    def _kill(self, run: _Run) -> None:
        if run.exited or not run.started:
            return
        if run.proc is not None:
            with contextlib.suppress(OSError):
                os.killpg(run.proc.pid, signal.SIGKILL)
        else:
            self._exited(run, 137)


def _live_process_groups() -> set[int]:
    """The process groups with a process that is not a zombie (Linux: /proc)."""
    groups = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                groups.add(int(fields[2]))
    return groups


def _suffix() -> str:
    return "".join(random.choices(string.ascii_lowercase, k=5))


def _validate(job: Obj) -> None:
    """422 for what the real API server would refuse (a few of its checks)."""
    name = job["metadata"].get("name") or ""
    template = (job.get("spec") or {}).get("template") or {}
    pod_spec = template.get("spec") or {}
    policy = pod_spec.get("restartPolicy") or "Always"
    causes: list[Obj] = []

    def cause(reason: str, where: str, message: str) -> None:
        causes.append({"reason": f"FieldValue{reason}", "field": where, "message": message})

    if not name:
        cause("Required", "metadata.name", "Required value: name or generateName is required")
    elif len(name) > 63:
        cause(
            "Invalid",
            "metadata.name",
            f'Invalid value: "{name}": must be no more than 63 characters',
        )
    elif not _NAME.fullmatch(name):
        cause(
            "Invalid",
            "metadata.name",
            f'Invalid value: "{name}": a lowercase RFC 1123 label '
            f"must consist of lower case alphanumeric characters or '-' ({_NAME.pattern})",
        )
    for where, labels in (
        ("metadata.labels", job["metadata"].get("labels")),
        ("spec.template.metadata.labels", (template.get("metadata") or {}).get("labels")),
    ):
        for value in (labels or {}).values():
            if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
                cause(
                    "Invalid",
                    where,
                    f"Invalid value: {json.dumps(value)}: a valid label must "
                    f"be at most 63 characters matching '{_LABEL_VALUE.pattern}'",
                )
    if not pod_spec.get("containers"):
        cause("Required", "spec.template.spec.containers", "Required value")
    if policy not in ("Never", "OnFailure"):
        cause(
            "NotSupported",
            "spec.template.spec.restartPolicy",
            f'Unsupported value: "{policy}": supported values: "OnFailure", "Never"',
        )
    if causes:
        text = [f"{c['field']}: {c['message']}" for c in causes]
        joined = text[0] if len(text) == 1 else "[" + ", ".join(text) + "]"
        details = {"name": name, "group": "batch", "kind": "Job", "causes": causes}
        raise Fail(422, f'Job.batch "{name}" is invalid: {joined}', "Invalid", details)


def _flag(query: dict[str, str], name: str) -> bool:
    return query.get(name, "").lower() in ("true", "1")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        with self.server.api._lock:
            self.server.api._connections.add(self.connection)

    def finish(self) -> None:
        with self.server.api._lock:
            self.server.api._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _send(self, code: int, body: bytes | str | Obj, ctype: str = "application/json") -> None:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        data = data.encode() if isinstance(data, str) else data
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _start_stream(self, ctype: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        """Write one chunk; the empty one ends the stream."""
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if data else b"0\r\n\r\n")

    def _abort(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _client_gone(self) -> bool:
        with contextlib.suppress(OSError):
            if select.select([self.connection], [], [], 0)[0]:
                return not self.connection.recv(1, socket.MSG_PEEK)
            return False
        return True

    def _dispatch(self, method: str) -> None:
        api = self.server.api
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        resource, ns, name = None, "", ""
        for res, pattern in _ROUTES:
            if m := pattern.fullmatch(path):
                resource, ns, name = res, m[1], m[2] or ""
        watch = _flag(query, "watch")
        with api._lock:
            api.requests.append(Request(method, path, query, watch, resource))
        try:
            if api.unauthorized:
                raise Fail(401, "Unauthorized")
            if (fault := api._take_fault(method, resource, watch)) is not None:
                if not fault.status:
                    return self._abort()
                raise Fail(fault.status, fault.message or f"injected {fault.status}", fault.reason)
            if resource is None:
                if method == "GET" and path == "/version":
                    return self._send(200, _VERSION)
                raise Fail(404, "the server could not find the requested resource")
            try:
                body = json.loads(raw) if raw else {}
            except ValueError as e:
                raise Fail(400, f"the request body is not JSON: {e}") from None
            if not isinstance(body, dict):
                raise Fail(400, "the request body is not a JSON object")
            if resource != "selfsubjectaccessreviews":
                verb = {"POST": "create", "DELETE": "delete"}.get(method) or (
                    "get" if name else "watch" if watch else "list"
                )
                res, sub = ("pods", "log") if resource == "log" else (resource, "")
                if not api._allowed(verb, res, sub):
                    raise api._forbidden(verb, res, sub, ns, name)
            self._route(method, resource, ns, name, query, body)
        except Fail as f:
            self._send(f.status["code"], f.status)
        except OSError:  # the client went away
            self.close_connection = True
        except (KeyError, TypeError, ValueError, AttributeError) as e:  # a malformed object
            self._send(500, status_object(500, f"FakeKubeAPI: {type(e).__name__}: {e}"))

    def _route(
        self, method: str, resource: str, ns: str, name: str, query: dict[str, str], body: Obj
    ) -> None:
        api = self.server.api
        if resource == "selfsubjectaccessreviews" and method == "POST":
            attrs = (body.get("spec") or {}).get("resourceAttributes") or {}
            allowed = api._allowed(
                *(attrs.get(k) or "" for k in ("verb", "resource", "subresource"))
            )
            status: Obj = {"allowed": True, "reason": "FakeKubeAPI allows it"}
            status = status if allowed else {"allowed": False}
            return self._send(201, body | {"metadata": {}, "status": status})
        if resource == "jobs" and method == "POST" and not name:
            return self._send(201, api._create_job(ns, body))
        if resource == "jobs" and method == "DELETE" and name:
            policy = body.get("propagationPolicy") or query.get("propagationPolicy") or "Orphan"
            with api._lock:
                if (ns, name) not in api._jobs:
                    raise _not_found(resource, name)
                uid = api._delete_job((ns, name), policy)["metadata"]["uid"]
            details = {"name": name, "group": "batch", "kind": "jobs", "uid": uid}
            success: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}}
            return self._send(200, success | {"status": "Success", "details": details})
        if resource == "log" and method == "GET":
            return self._log(ns, name, query)
        if resource not in ("jobs", "pods") or method != "GET":
            raise Fail(405, "the server does not allow this method on the requested resource")
        if name:
            with api._lock:
                if (obj := api._store(resource).get((ns, name))) is None:
                    raise _not_found(resource, name)
                data = json.dumps(obj)
            return self._send(200, data)
        try:
            selector = parse_selector(query.get("labelSelector", ""))
        except ValueError as e:
            raise Fail(400, str(e)) from None
        if _flag(query, "watch"):
            return self._watch(resource, ns, selector, query)
        with api._lock:
            items = [  # the real API leaves out the kind and apiVersion of list items
                {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}
                for (n, _), obj in api._store(resource).items()
                if n == ns and matches(selector, obj["metadata"].get("labels") or {})
            ]
            kind, version = ("JobList", "batch/v1") if resource == "jobs" else ("PodList", "v1")
            meta = {"resourceVersion": str(api._rv)}
            data = json.dumps(dict(apiVersion=version, kind=kind, metadata=meta, items=items))
        self._send(200, data)

    def _watch(self, resource: str, ns: str, selector: Selector, query: dict[str, str]) -> None:
        api = self.server.api
        since = query.get("resourceVersion", "")
        deadline = time.monotonic() + (float(query.get("timeoutSeconds") or 0) or 1800)
        if since not in ("", "0") and not since.isdigit():
            raise Fail(400, f'invalid resource version "{since}"')
        with api._lock:
            gone = resource == "jobs" and api._gone > 0
            if gone:
                api._gone -= 1
            if since not in ("", "0"):  # replay what came after `since`
                gone = gone or int(since) < api._compacted
                initial = [
                    line
                    for rv, res, n, labels, line in api._history
                    if rv > int(since) and res == resource and n == ns and matches(selector, labels)
                ]
            else:  # the current state, as ADDED events
                initial = [
                    b'{"type":"ADDED","object":%s}\n' % json.dumps(obj).encode()
                    for (n, _), obj in api._store(resource).items()
                    if n == ns and matches(selector, obj["metadata"].get("labels") or {})
                ]
            message = f"too old resource version: {since or api._rv} ({api._rv})"
            watcher = _Watcher(resource, ns, selector)
            drop_after = None
            if not gone:
                api._watchers.append(watcher)
                drop_after = api._drop_after.pop(0) if api._drop_after else None
        try:
            self._start_stream("application/json")
            if gone:
                error = {"type": "ERROR", "object": status_object(410, message, "Expired")}
                self._chunk(json.dumps(error).encode() + b"\n")
                return self._chunk(b"")
            pending, sent = deque(initial), 0
            while True:
                room = 1 << 30 if drop_after is None else drop_after - sent
                if room <= 0:
                    return self._abort()
                if not pending:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or api._stopping.is_set():
                        break
                    try:
                        pending.append(watcher.events.get(timeout=min(remaining, 0.2)))
                    except queue.Empty:
                        if self._client_gone():
                            return self._abort()
                        continue
                with contextlib.suppress(queue.Empty):
                    while len(pending) < room:
                        pending.append(watcher.events.get_nowait())
                batch = [pending.popleft() for _ in range(min(room, len(pending)))]
                self._chunk(b"".join(batch))
                sent += len(batch)
            if _flag(query, "allowWatchBookmarks"):
                kind, version = ("Job", "batch/v1") if resource == "jobs" else ("Pod", "v1")
                meta = {"resourceVersion": str(api.resource_version)}
                bookmark = {"kind": kind, "apiVersion": version, "metadata": meta}
                self._chunk(json.dumps({"type": "BOOKMARK", "object": bookmark}).encode() + b"\n")
            self._chunk(b"")
        finally:
            with api._lock, contextlib.suppress(ValueError):
                api._watchers.remove(watcher)

    def _log(self, ns: str, name: str, query: dict[str, str]) -> None:
        api = self.server.api
        with api._lock:
            pod, run = api._pods.get((ns, name)), api._pod_runs.get((ns, name))
            if pod is None or run is None:
                raise _not_found("pods", name)
            cs = pod["status"]["containerStatuses"][0]
            container = query.get("container") or cs["name"]
            if container != cs["name"]:
                raise Fail(400, f"container {container} is not valid for pod {name}")
            if "waiting" in cs["state"]:
                waiting = f'container "{container}" in pod "{name}" is waiting to start'
                raise Fail(400, f"{waiting}: ContainerCreating")
            data, pos = bytes(run.log), len(run.log)
        if (tail := query.get("tailLines")) is not None:
            data = b"".join(data.splitlines(keepends=True)[-int(tail) :]) if int(tail) > 0 else b""
        limit = int(query.get("limitBytes") or 1 << 62)
        if not _flag(query, "follow"):
            return self._send(200, data[:limit], "text/plain")
        self._start_stream("text/plain")
        while True:
            if data := data[:limit]:
                self._chunk(data)
                limit -= len(data)
            if limit <= 0:
                break
            with api._cond:
                while pos == len(run.log) and not run.exited and not api._stopping.is_set():
                    api._cond.wait(0.2)
                data, pos = bytes(run.log[pos:]), len(run.log)
                if not data and (run.exited or api._stopping.is_set()):
                    break
        self._chunk(b"")
