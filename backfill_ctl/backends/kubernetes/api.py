"""The calls the kubernetes backend makes, with retries, and its errors in our words."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import urllib3
from kubernetes import client as k8s
from kubernetes import config as kubeconfig
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from backfill_ctl.backends import (
    BackendError,
    NotStarted,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from backfill_ctl.spec.model import Kubernetes

REQUEST_TIMEOUT = (10.0, 60.0)  # connect, read
RETRY_WAITS = (0.5, 1.0, 2.0, 4.0)  # between tries of a call that failed transiently
TRANSIENT = frozenset({429, 500, 502, 503, 504})
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
            # The client reads $KUBECONFIG once, when it is imported; read it now.
            path = path or os.environ.get("KUBECONFIG") or None
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


def where(settings: Kubernetes) -> dict[str, str]:
    """The Config's way to the cluster, kept in each attempt's handle: `logs`, which is
    given no specs, reads a running pod's log from the cluster that runs it."""
    found = {"context": settings.context} if settings.context else {}
    if settings.kubeconfig:
        found["kubeconfig"] = str(Path(settings.kubeconfig).expanduser().absolute())
    return found


def api_for(settings: Kubernetes, handle: Mapping[str, Any], ours: Callable[[], Api]) -> Api:
    """The API of the cluster an attempt was started on (its handle's `where`) where
    `settings` (a default Config: `logs`, given no specs) name none, and it can be
    reached; else `ours()`."""
    if settings.kubeconfig or settings.context or settings.in_cluster:
        return ours()
    if not (handle.get("kubeconfig") or handle.get("context")):
        return ours()
    there = replace(settings, kubeconfig=handle.get("kubeconfig"), context=handle.get("context"))
    with contextlib.suppress(BackendError):
        return Api(client_configuration(there), settings.namespace)
    return ours()


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
                # Foreground: the Job stays (being deleted) until its pods are gone, so
                # its end is seen only when nothing of the attempt runs any more.
                propagation_policy="Foreground",
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

    def events(self, name: str) -> list[str]:
        """What the cluster said about an object of the namespace (its events' messages,
        oldest first); none where events may not be read."""
        try:
            found = self.json(
                "list",
                "events",
                self.core.list_namespaced_event,
                self.namespace,
                field_selector=f"involvedObject.name={name}",
            )["items"]
        except (BackendError, ApiException):
            return []
        found.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
        warned = [e for e in found if e.get("type") == "Warning"]
        return [f"{e.get('reason')}: {e.get('message')}" for e in warned]

    def no_pod(self, name: str) -> str:
        """Why the Job `name` has no pod, as its events say (a missing service account)."""
        said = self.events(name)
        if said:
            return f"no pod could be made for its Job: {said[-1]}"
        return (
            f"no pod was made for its Job (kubectl -n {self.namespace} describe job {name} "
            "says why)"
        )

    def job_log(
        self, job: str, limit: int, namespace: str | None = None
    ) -> tuple[list[dict[str, Any]], bytes]:
        """The pods of a Job, and the log of its latest (its last `limit` bytes)."""
        pods = self.pods(job, namespace)
        if not pods:
            return pods, b""
        return pods, self.log_tail(pods[-1]["metadata"]["name"], limit, namespace)

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
