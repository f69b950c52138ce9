"""The kubernetes backend: one Job per attempt, through the official client (DESIGN §8).

- **Start** creates a Job with a deterministic name (`<backfill>-<node>-<instance>-<n>`,
  DNS-1123, the readable part cut when long: the instance id is the hash that keeps it
  unique), labels (store, backfill, node, instance, attempt), annotations (the full
  names, business date, scheduled time, plan digest), `backoffLimit: 0` (retries are
  the controller's), `activeDeadlineSeconds` from the node's timeout,
  `ttlSecondsAfterFinished`, `restartPolicy: Never`, image, command, env and resources
  from the node, namespace, service account and pod-template overrides from the Config.
  A 409 AlreadyExists means the Job was created before (a response lost on the way):
  it is adopted, never duplicated, if it belongs to this state store.
- **Tracking**: one watch on this store's Jobs (a label selector) in a thread keeps the
  latest state of each; it lists, then watches from the list's resourceVersion,
  resumes after a dropped connection, and lists again on 410 Gone. `poll` only reads
  that cache: no request per Job per tick.
- **Logs**: when an attempt ends, the pod's log is copied (its last `maxLogSize`
  bytes) next to the state store, where `logs` and `gc` find it, as for the local
  backend; while it runs, `logs` reads it from the API.
- **Errors**: 429, 5xx and dropped connections are retried with backoff; 401 and 403
  are configuration errors naming what is missing, and a quota rejection leaves the
  instance `waiting-for-resources` (NotStarted: no try is spent). `stop` deletes the Job
  with background propagation.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import urllib3
from kubernetes import client as k8s
from kubernetes import config as kubeconfig
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.watch.watch import iter_resp_lines

from backfill_ctl.backends import (
    AttemptSpec,
    BackendError,
    Handle,
    Key,
    NotStarted,
    Outcome,
    resolved_command,
)

try:  # clients from 35 on check a body against their models (pydantic)
    from pydantic import ValidationError
except ImportError:  # pragma: no cover - older clients send what they are given

    class ValidationError(Exception):  # type: ignore[no-redef]
        def errors(self) -> list[dict[str, Any]]:
            return []


if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from backfill_ctl.spec.model import Kubernetes

PREFIX = "backfillctl.dev/"
MANAGED_BY = "app.kubernetes.io/managed-by"
WATCH_SECONDS = 240  # a watch request lasts this long, then is renewed from where it was
REQUEST_TIMEOUT = (10.0, 60.0)  # connect, read
RETRY_WAITS = (0.5, 1.0, 2.0, 4.0)  # between tries of a call that failed transiently
TRANSIENT = frozenset({429, 500, 502, 503, 504})
SYNC_WAIT = 10.0  # how long a first poll waits for the first list of Jobs
UNSEEN_GRACE = 30.0  # a Job we created, still missing from a fresh list after this, is lost
# What the controller's identity must be allowed to do (deploy/rbac.yaml grants it):
# (verb, API group, resource, subresource)
PERMISSIONS: tuple[tuple[str, str, str, str], ...] = (
    ("create", "batch", "jobs", ""),
    ("get", "batch", "jobs", ""),
    ("list", "batch", "jobs", ""),
    ("watch", "batch", "jobs", ""),
    ("delete", "batch", "jobs", ""),
    ("get", "", "pods", ""),
    ("list", "", "pods", ""),
    ("get", "", "pods", "log"),
)
_NOT_DNS = re.compile(r"[^a-z0-9-]+")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


# -- the Job ---------------------------------------------------------------------------


def job_name(spec: AttemptSpec) -> str:
    """`<backfill>-<node>-<instance>-<attempt>`: DNS-1123, at most 63 characters."""
    tail = f"{spec.instance}-{spec.number}"
    head = _NOT_DNS.sub("-", f"{spec.backfill}-{spec.node}".lower()).strip("-")
    head = head[: 63 - len(tail) - 1].rstrip("-")
    return f"{head}-{tail}" if head else tail


def label_value(text: str) -> str:
    """`text` as a label value: itself when valid, else a cleaned prefix and a hash."""
    if len(text) <= 63 and _LABEL_VALUE.fullmatch(text):
        return text
    digest = hashlib.blake2b(text.encode(), digest_size=4).hexdigest()
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:54].strip("_.-")
    return f"{clean}-{digest}" if clean else digest


def labels(spec: AttemptSpec, store_id: str) -> dict[str, str]:
    return {
        MANAGED_BY: "backfillctl",
        PREFIX + "store": store_id,
        PREFIX + "backfill": label_value(spec.backfill),
        PREFIX + "node": label_value(spec.node),
        PREFIX + "instance": spec.instance,
        PREFIX + "attempt": str(spec.number),
    }


def job_manifest(
    spec: AttemptSpec, settings: Kubernetes, store_id: str, now: float | None = None
) -> dict[str, Any]:
    """The Job of one attempt (a plain dict, as the API takes it)."""
    run = spec.run
    image = run.image or settings.image
    if not image:
        raise BackendError(
            f"node {spec.node} names no run.image and the Config sets no "
            "spec.kubernetes.image: the kubernetes backend needs a container image"
        )
    argv, env = resolved_command(run, spec.timezone, now)
    container: dict[str, Any] = {
        "name": "main",
        "image": image,
        "command": argv,
        "env": [{"name": k, "value": v} for k, v in sorted(env.items())],
    }
    if settings.working_dir:
        container["workingDir"] = settings.working_dir
    requests = {k: v for k, v in (("cpu", run.cpu), ("memory", run.memory)) if v}
    if requests:  # memory is also its limit (what it asked for is what it gets); cpu is not
        container["resources"] = {"requests": requests}
        if run.memory:
            container["resources"]["limits"] = {"memory": run.memory}
    own = labels(spec, store_id)
    notes = {
        PREFIX + "backfill": spec.backfill,
        PREFIX + "node": spec.node,
        PREFIX + "bizdate": spec.bizdate,
        PREFIX + "cyctime": spec.cyctime,
        PREFIX + "digest": spec.digest,
    }
    pod_spec: dict[str, Any] = {**settings.pod_spec, "restartPolicy": "Never"}
    pod_spec["containers"] = [container]
    if settings.service_account:
        pod_spec["serviceAccountName"] = settings.service_account
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": settings.ttl_after_finished,
        "template": {
            "metadata": {
                "labels": {**settings.pod_metadata.get("labels", {}), **own},
                "annotations": {**settings.pod_metadata.get("annotations", {}), **notes},
            },
            "spec": pod_spec,
        },
    }
    if run.timeout:
        job_spec["activeDeadlineSeconds"] = max(1, math.ceil(run.timeout))
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(spec),
            "namespace": settings.namespace,
            "labels": own,
            "annotations": notes,
        },
        "spec": job_spec,
    }


def job_result(job: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """("succeeded" | "failed", why) once the Job has ended, from its conditions; None
    while it runs. A plain failure has no why: the container's exit code says it."""
    conditions = {
        c.get("type"): c
        for c in (job.get("status") or {}).get("conditions") or []
        if c.get("status") == "True"
    }
    if "Complete" in conditions:
        return "succeeded", None
    failed = conditions.get("Failed")
    if failed is None:
        return None
    reason = failed.get("reason")
    if reason == "DeadlineExceeded":
        deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
        return "failed", f"timed out: the Job ran longer than its {deadline}s deadline"
    if reason == "BackoffLimitExceeded":
        return "failed", None
    return "failed", str(failed.get("message") or reason or "the Job failed")


# -- talking to the API server ---------------------------------------------------------


def client_configuration(settings: Kubernetes) -> k8s.Configuration:
    """In-cluster, or a kubeconfig (Config `kubeconfig`/`context`, else the defaults)."""
    configuration = k8s.Configuration()
    in_cluster = settings.in_cluster
    if in_cluster is None:
        in_cluster = "KUBERNETES_SERVICE_HOST" in os.environ
    try:
        if in_cluster:
            kubeconfig.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        else:
            path = str(Path(settings.kubeconfig).expanduser()) if settings.kubeconfig else None
            if path is not None and not Path(path).is_file():
                raise ConfigException(f"{path} does not exist")
            kubeconfig.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=path, context=settings.context, client_configuration=configuration
            )
    except (ConfigException, OSError) as exc:
        where = "the pod's service account" if in_cluster else "the kubeconfig"
        raise NotStarted(
            f"cannot load {where}: {exc}; set spec.kubernetes.kubeconfig and context in the "
            "Config, or $KUBECONFIG",
            retry_after=60,
        ) from None
    return configuration


def _message(exc: ApiException) -> str:
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        return str(json.loads(exc.body or "")["message"])
    return str(exc.reason or f"HTTP {exc.status}")


class Api:
    """The calls the backend makes, each retried when the failure is transient."""

    def __init__(self, configuration: k8s.Configuration, namespace: str) -> None:
        configuration.retries = 0  # retries are ours, with backoff, for every kind of call
        self.client = k8s.ApiClient(configuration)
        self.batch = k8s.BatchV1Api(self.client)
        self.core = k8s.CoreV1Api(self.client)
        self.authz = k8s.AuthorizationV1Api(self.client)
        self.namespace = namespace
        self.sleep: Callable[[float], None] = time.sleep

    def call(self, verb: str, resource: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """`fn(*args, **kw)` (a raw response); 404 and 409 are raised as they are."""
        kw.setdefault("_request_timeout", REQUEST_TIMEOUT)
        for wait in (*RETRY_WAITS, None):
            try:
                return fn(*args, _preload_content=False, **kw)
            except ApiException as exc:
                if exc.status in (404, 409):
                    raise
                if exc.status in TRANSIENT and wait is not None:
                    self.sleep(_retry_after(exc, wait))
                    continue
                raise self.error(exc, verb, resource) from None
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                if wait is not None:
                    self.sleep(wait)
                    continue
                raise NotStarted(
                    f"cannot reach the Kubernetes API server at {self.client.configuration.host}"
                    f": {type(exc).__name__}: {exc}",
                    retry_after=30,
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def error(self, exc: ApiException, verb: str, resource: str) -> BackendError:
        message = _message(exc)
        if exc.status == 401:
            return NotStarted(
                "the Kubernetes API server refused the credentials (401 Unauthorized): check "
                "the kubeconfig and context in use, or the controller's service account token",
                retry_after=60,
            )
        if exc.status == 403 and "exceeded quota" in message:
            return NotStarted(
                f"the namespace {self.namespace} is at its quota: {message}",
                state="waiting-for-resources",
                retry_after=15,
            )
        if exc.status == 403:
            return NotStarted(
                f"forbidden: the identity in use may not {verb} {resource} in namespace "
                f"{self.namespace}; grant it in a Role (deploy/rbac.yaml has the rules "
                f"backfillctl needs). The API server said: {message}",
                retry_after=60,
            )
        if exc.status in TRANSIENT:
            return NotStarted(f"the Kubernetes API server keeps failing: {message}")
        return BackendError(f"the Kubernetes API server refused to {verb} {resource}: {message}")

    def json(self, verb: str, resource: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return json.loads(self.call(verb, resource, fn, *args, **kw).data)

    def get_job(self, name: str) -> dict[str, Any] | None:
        try:
            job: dict[str, Any] = self.json(
                "get", "jobs", self.batch.read_namespaced_job, name, self.namespace
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise self.error(exc, "get", "jobs") from None
        return job

    def delete_job(self, name: str) -> None:
        try:
            self.call(
                "delete",
                "jobs",
                self.batch.delete_namespaced_job,
                name,
                self.namespace,
                propagation_policy="Background",
            )
        except ApiException as exc:
            if exc.status != 404:  # already gone is what we wanted
                raise self.error(exc, "delete", "jobs") from None

    def pods(self, job: str, namespace: str | None = None) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.json(
            "list",
            "pods",
            self.core.list_namespaced_pod,
            namespace or self.namespace,
            label_selector=f"job-name={job}",
        )["items"]
        return sorted(found, key=lambda p: p["metadata"].get("creationTimestamp") or "")

    def log_tail(self, pod: str, limit: int, namespace: str | None = None) -> bytes:
        """The pod's log, its last `limit` bytes, read as a stream (bounded memory)."""
        try:
            resp = self.call(
                "get",
                "pods/log",
                self.core.read_namespaced_pod_log,
                pod,
                namespace or self.namespace,
            )
        except ApiException as exc:
            if exc.status == 404:
                return b""
            raise self.error(exc, "get", "pods/log") from None
        kept: deque[bytes] = deque()
        size = total = 0
        try:
            for chunk in resp.stream(64 * 1024):
                kept.append(chunk)
                size += len(chunk)
                total += len(chunk)
                while size - len(kept[0]) >= limit:
                    size -= len(kept.popleft())
        finally:
            resp.release_conn()
        data = b"".join(kept)
        if total <= limit:
            return data
        return f"[backfillctl: the first {total - limit} bytes were cut]\n".encode() + data[-limit:]

    def access(self, verb: str, group: str, resource: str, subresource: str) -> tuple[bool, str]:
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {
                "resourceAttributes": {
                    "namespace": self.namespace,
                    "verb": verb,
                    "group": group,
                    "resource": resource,
                    "subresource": subresource,
                }
            },
        }
        status = self.json(
            "create",
            "selfsubjectaccessreviews",
            self.authz.create_self_subject_access_review,
            review,
        ).get("status", {})
        return bool(status.get("allowed")), str(status.get("reason") or "")


def _retry_after(exc: ApiException, default: float) -> float:
    with contextlib.suppress(TypeError, ValueError, AttributeError, KeyError):
        return min(10.0, float(exc.headers["Retry-After"]))  # type: ignore[index]
    return default


# -- tracking --------------------------------------------------------------------------


class Tracker:
    """The latest state of this store's Jobs, kept by a list-then-watch thread."""

    def __init__(self, api: Api, selector: str, *, watch_seconds: int = WATCH_SECONDS) -> None:
        self.api = api
        self.selector = selector
        self.watch_seconds = watch_seconds
        self.jobs: dict[str, dict[str, Any]] = {}
        self.deleted: set[str] = set()
        self.lists = 0  # how many times it listed (once, plus once per 410)
        self.error = ""  # the last failure, for messages
        self.synced = threading.Event()
        self.changed = threading.Event()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._resp: Any = None
        self._thread = threading.Thread(target=self._run, name="backfillctl-watch", daemon=True)
        self._thread.start()

    def get(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self.jobs.get(name)

    def forget(self, name: str) -> None:
        """A deleted Job whose end was reported: nothing more to remember."""
        with self._lock:
            self.deleted.discard(name)

    def seen(self, job: dict[str, Any]) -> None:
        """A Job we just created or found: known before its first watch event."""
        self._update("ADDED", job)

    def stop(self) -> None:
        self._stop.set()
        resp = self._resp
        if resp is not None:
            with contextlib.suppress(Exception):
                resp.shutdown()
        self._thread.join(timeout=5)

    def _update(self, kind: str, job: dict[str, Any]) -> None:
        name = job["metadata"]["name"]
        with self._lock:
            if kind == "DELETED":
                self.jobs.pop(name, None)
                self.deleted.add(name)
            else:
                old = self.jobs.get(name)
                if old is None or _rv(job) >= _rv(old):
                    self.jobs[name] = job
                self.deleted.discard(name)
        self.changed.set()

    def _run(self) -> None:
        version: str | None = None
        backoff = 0.5
        while not self._stop.is_set():
            try:
                if version is None:
                    version = self._list()
                version = self._watch(version)
                backoff = 0.5
            except _Gone:
                version = None
            except (BackendError, ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                if self._stop.wait(backoff):
                    return
                backoff = min(backoff * 2, 30.0)

    def _list(self) -> str:
        data = self.api.json(
            "list",
            "jobs",
            self.api.batch.list_namespaced_job,
            self.api.namespace,
            label_selector=self.selector,
        )
        version = str(data["metadata"]["resourceVersion"])
        current = {j["metadata"]["name"]: j for j in data["items"]}
        with self._lock:
            for name, job in self.jobs.items():
                if name in current:
                    continue
                if _rv(job) > _rv(data):  # created after the list was taken: keep it
                    current[name] = job
                else:
                    self.deleted.add(name)
            self.jobs = current
            self.lists += 1
        self.synced.set()
        self.changed.set()
        return version

    def _watch(self, version: str) -> str:
        """Follow the changes after `version` until the server ends the request; the
        version reached. A 410 Gone raises _Gone; a dropped stream returns where it was."""
        resp = self.api.call(
            "watch",
            "jobs",
            self.api.batch.list_namespaced_job,
            self.api.namespace,
            label_selector=self.selector,
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=self.watch_seconds,
            # a quiet watch is not a dead one: the server ends it after watch_seconds
            _request_timeout=(REQUEST_TIMEOUT[0], self.watch_seconds + 30),
        )
        self._resp = resp  # stop() shuts it down; set before the flag is read again below
        try:
            if self._stop.is_set():
                return version
            for line in iter_resp_lines(resp):  # type: ignore[no-untyped-call]
                if self._stop.is_set():
                    break
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _Gone()
                    raise BackendError(f"watch: {obj.get('reason')}: {obj.get('message')}")
                version = str(obj.get("metadata", {}).get("resourceVersion") or version)
                if kind != "BOOKMARK":
                    self._update(str(kind), obj)
        except (urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError, ValueError):
            pass  # the connection dropped or went silent: resume from the last version seen
        finally:
            self._resp = None
            with contextlib.suppress(Exception):
                resp.release_conn()
        return version


class _Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


def _rv(job: Mapping[str, Any]) -> int:
    try:
        return int(job["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return 0


# -- the backend -----------------------------------------------------------------------


class KubernetesBackend:
    name = "kubernetes"

    def __init__(
        self,
        settings: Kubernetes,
        *,
        runs: Path,
        store_id: str,
        max_log_size: int = 3 * 2**20,
        configuration: k8s.Configuration | None = None,
    ) -> None:
        self.settings = settings
        self.runs = runs
        self.store_id = store_id
        self.max_log_size = max_log_size
        self._configuration = configuration
        self._api: Api | None = None
        self._tracker: Tracker | None = None
        self._created: dict[str, float] = {}  # job name -> when we created or adopted it
        self._cancels: dict[str, str] = {}  # job name -> why we deleted it
        self._pending_deletes: set[str] = set()  # deletions that failed, tried again

    # -- plumbing

    @property
    def api(self) -> Api:
        if self._api is None:
            configuration = self._configuration or client_configuration(self.settings)
            self._api = Api(configuration, self.settings.namespace)
        return self._api

    @property
    def tracker(self) -> Tracker:
        if self._tracker is None:
            selector = f"{MANAGED_BY}=backfillctl,{PREFIX}store={self.store_id}"
            self._tracker = Tracker(self.api, selector, watch_seconds=WATCH_SECONDS)
        return self._tracker

    def close(self) -> None:
        if self._tracker is not None:
            self._tracker.stop()

    def _log_path(self, handle: Handle) -> Path:
        return self.runs / str(handle["backfill"]) / f"{handle['instance']}.{handle['attempt']}.log"

    # -- the protocol

    def start(self, spec: AttemptSpec) -> tuple[Handle, str | None]:
        body = job_manifest(spec, self.settings, self.store_id)
        name = body["metadata"]["name"]
        tracker = self.tracker
        try:
            job = self.api.json(
                "create", "jobs", self.api.batch.create_namespaced_job, self.api.namespace, body
            )
        except ValidationError as exc:  # the client's model refused a field (podTemplate)
            errors = exc.errors()
            where = ".".join(str(p) for p in errors[0]["loc"][1:]) if errors else ""
            why = errors[0]["msg"] if errors else str(exc)
            raise BackendError(
                f"the Job is not valid for the Kubernetes client: {where}: {why}"
            ) from None
        except ApiException as exc:
            if exc.status != 409:
                raise self.api.error(exc, "create", "jobs") from None
            job = self._adopt(name)
        tracker.seen(job)
        self._created[name] = time.monotonic()
        handle: Handle = {
            "job": name,
            "namespace": self.api.namespace,
            "uid": job["metadata"].get("uid"),
            "backfill": spec.backfill,
            "instance": spec.instance,
            "attempt": spec.number,
        }
        log = self._log_path(handle)
        log.unlink(missing_ok=True)  # left by a discarded store
        return handle, str(log)

    def _adopt(self, name: str) -> dict[str, Any]:
        """The Job a 409 said exists: ours to adopt, or someone else's to refuse."""
        job = self.api.get_job(name)
        if job is None:
            raise BackendError(f"the Job {name} existed and then vanished while being created")
        owner = (job["metadata"].get("labels") or {}).get(PREFIX + "store")
        if owner != self.store_id:
            raise BackendError(
                f"a Job named {name} in namespace {self.api.namespace} belongs to another "
                f"state store ({owner or 'none'}; this one is {self.store_id}): delete it "
                f"(kubectl -n {self.api.namespace} delete job {name}) or use another namespace"
            )
        return job

    def poll(self, running: Mapping[Key, Handle]) -> dict[Key, Outcome]:
        try:
            tracker = self.tracker
        except BackendError:  # no connection yet: the attempts are not known to have ended
            return {}
        if not tracker.synced.is_set():  # a new backend (a restart): answer from a full list
            tracker.synced.wait(SYNC_WAIT)
        self._retry_deletes()
        ended: dict[Key, Outcome] = {}
        for key, handle in running.items():
            name = str(handle.get("job", ""))
            job = tracker.get(name)
            if job is None:
                gone = name in tracker.deleted or (
                    tracker.synced.is_set()
                    and time.monotonic() - self._created.get(name, 0.0) > UNSEEN_GRACE
                )
                if name in self._cancels and gone:
                    ended[key] = Outcome("failed", None, self._cancels.pop(name))
                elif gone:
                    ended[key] = Outcome(
                        "lost", None, f"the Job {name} was deleted before its end was recorded"
                    )
                if gone:
                    tracker.forget(name)
                    self._created.pop(name, None)
                continue
            result = job_result(job)
            if result is None:
                continue
            state, why = result
            code = self._collect(name, handle)
            if name in self._cancels:
                state, why = "failed", self._cancels.pop(name)
            elif state == "failed" and why is None:
                why = f"exit code {code}" if code is not None else "the Job failed"
            ended[key] = Outcome(state, 0 if state == "succeeded" else code, why)  # type: ignore[arg-type]
            self._created.pop(name, None)
        return ended

    def _collect(self, name: str, handle: Handle) -> int | None:
        """Copy the log of the Job's pod next to the store; the container's exit code."""
        path = self._log_path(handle)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            pods = self.api.pods(name)
            data = (
                self.api.log_tail(pods[-1]["metadata"]["name"], self.max_log_size) if pods else b""
            )
        except BackendError as exc:
            path.write_text(f"[backfillctl: the log could not be fetched: {exc}]\n")
            return None
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        for pod in reversed(pods):
            for status in (pod.get("status") or {}).get("containerStatuses") or []:
                terminated = (status.get("state") or {}).get("terminated")
                if terminated is not None:
                    return int(terminated.get("exitCode", 0))
        return None

    def cancel(self, key: Key, handle: Handle, reason: str) -> None:
        name = str(handle["job"])
        if name in self._cancels:
            return
        self._cancels[name] = reason
        with contextlib.suppress(BackendError):
            self._collect(name, handle)  # what it printed before it is killed
        try:
            self.api.delete_job(name)
        except BackendError:
            self._pending_deletes.add(name)

    def _retry_deletes(self) -> None:
        for name in list(self._pending_deletes):
            try:
                self.api.delete_job(name)
            except BackendError:
                continue
            self._pending_deletes.discard(name)

    def recover(self, spec: AttemptSpec) -> Handle | None:
        name = job_name(spec)
        try:
            job = self.api.get_job(name)
        except BackendError:
            job = None
        if job is None or (job["metadata"].get("labels") or {}).get(PREFIX + "store") != (
            self.store_id
        ):
            return None
        self.tracker.seen(job)
        self._created[name] = time.monotonic()
        return {
            "job": name,
            "namespace": self.api.namespace,
            "uid": job["metadata"].get("uid"),
            "backfill": spec.backfill,
            "instance": spec.instance,
            "attempt": spec.number,
        }

    def log_text(self, handle: Handle, log: str | None) -> str:
        if log and Path(log).exists():
            return Path(log).read_text(encoding="utf-8", errors="replace")
        if not handle.get("job"):
            return ""
        namespace = str(handle.get("namespace") or self.settings.namespace)  # where it ran
        try:
            pods = self.api.pods(str(handle["job"]), namespace)
            if not pods:
                return ""
            data = self.api.log_tail(pods[-1]["metadata"]["name"], self.max_log_size, namespace)
        except (BackendError, ApiException):
            return ""
        return data.decode("utf-8", errors="replace")

    def wait(self, timeout: float) -> None:
        try:
            tracker = self.tracker
        except BackendError:
            time.sleep(timeout)
            return
        if tracker.changed.wait(timeout):
            tracker.changed.clear()

    # -- backend check

    def check(self) -> list[tuple[str, bool, str]]:
        """Can we reach the API server, and may we do what the backend does?"""
        try:
            api = self.api
            version = api.json("get", "version", k8s.VersionApi(api.client).get_code)
        except BackendError as exc:
            return [("connect to the API server", False, str(exc))]
        results = [
            (
                f"connect to {api.client.configuration.host}",
                True,
                f"Kubernetes {version.get('gitVersion', '?')}",
            )
        ]
        for verb, group, resource, sub in PERMISSIONS:
            what = f"{verb} {resource}{'/' + sub if sub else ''}"
            try:
                allowed, reason = api.access(verb, group, resource, sub)
            except BackendError as exc:
                results.append((what, False, str(exc)))
                continue
            results.append((what, allowed, reason or ("allowed" if allowed else "denied")))
        return results
