"""The kubernetes backend: one Job per attempt, through the official client (DESIGN §8).

- **Start** creates a Job with a deterministic name (`<backfill>-<node>-<instance>-<n>`,
  DNS-1123, the readable part cut when long: the instance id is the hash that keeps it
  unique), labels (store, backfill, node, instance, attempt), annotations (the full
  names, business date, scheduled time, plan digest), `backoffLimit: 0` (retries are
  the controller's), `activeDeadlineSeconds` from the node's timeout,
  `ttlSecondsAfterFinished`, `restartPolicy: Never`, image, command, env and resources
  from the node, namespace, service account and pod-template overrides from the Config.
  A 409 AlreadyExists means the Job was created before (a response lost on the way):
  it is adopted, never duplicated, if it belongs to this state store, unless it is a
  claim (below): then the attempt was declared unstarted and does not start.
- **Recover**: an attempt begun but not recorded as started is adopted if its Job
  exists; if not, its name is claimed by a suspended Job (no pod is made for it) before
  it is declared unstarted, so that a controller paused between begin and create cannot
  run it beside its retry when it resumes (its create meets the claim: a 409).
- **Tracking**: one watch on this store's Jobs (a label selector) in a thread keeps the
  latest state of each; it lists, then watches from the list's resourceVersion,
  resumes after a dropped connection, and lists again on 410 Gone. `poll` reads that
  cache; it asks for a Job's pods only where the Job cannot say: one deleted by someone
  else ends once no pod of it is left (kubectl's background or orphan deletion leaves
  it running); one with no ready pod after `startTimeoutSeconds` is asked why, and a
  pod that cannot start (unschedulable, no image, no pod made) fails the attempt.
- **Logs**: when an attempt ends (or its pod is deleted), the pod's log is copied (its
  last `maxLogSize` bytes) next to the state store, for `logs` and `gc`; while it runs,
  `logs` reads it from the cluster its handle names (the Config's kubeconfig, context).
- **Errors**: 429, 5xx and dropped connections are retried with backoff; 401 and 403
  are configuration errors naming what is missing, and a quota rejection leaves the
  instance `waiting-for-resources` (NotStarted: no try is spent). `stop` deletes the Job
  with foreground propagation (the Job goes only once its pods are gone).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubernetes.client.exceptions import ApiException

from backfill_ctl.backends import Anywhere, AttemptSpec, BackendError, Handle, Key, Outcome
from backfill_ctl.backends.kubernetes.api import (
    PERMISSIONS,
    Api,
    api_for,
    client_configuration,
    where,
)
from backfill_ctl.backends.kubernetes.job import (
    MANAGED_BY,
    PREFIX,
    claim_manifest,
    claimed,
    job_manifest,
    job_name,
    job_result,
    label_value,
    labels,
)
from backfill_ctl.backends.kubernetes.local_files import copy_log, readiness
from backfill_ctl.backends.kubernetes.pods import alive, deleted, ended, failure, not_started
from backfill_ctl.backends.kubernetes.tracker import WATCH_SECONDS, Tracker

try:  # clients from 35 on check a body against their models (pydantic)
    from pydantic import ValidationError
except ImportError:  # pragma: no cover - older clients send what they are given

    class ValidationError(Exception):  # type: ignore[no-redef]
        def errors(self) -> list[dict[str, Any]]:
            return []


if TYPE_CHECKING:
    from collections.abc import Mapping

    from kubernetes import client as k8s

    from backfill_ctl.spec.model import Kubernetes

__all__ = [
    "PERMISSIONS",
    "WATCH_SECONDS",
    "KubernetesBackend",
    "job_manifest",
    "job_name",
    "job_result",
    "label_value",
    "labels",
]
SYNC_WAIT = 10.0  # how long a first poll waits for the first list of Jobs
UNSEEN_GRACE = 30.0  # a Job we created, still missing from a fresh list after this, is lost


CLAIMED = (
    "the command did not run: a newer controller declared the attempt unstarted (its Job "
    "name {} is claimed) while the one that began it was paused"
)


class KubernetesBackend(Anywhere):
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
        self._unstarted: dict[str, float] = {}  # job name -> since when no pod of it runs
        self._copied: set[str] = set()  # jobs whose pod's log was copied as it was deleted

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
            job = self._adopt(body["metadata"]["name"])
            if claimed(job):  # by a newer controller's `recover`: this attempt never runs
                return {"job": job["metadata"]["name"], "claimed": True}, None
        handle = self._follow(spec, job)
        log = self._log_path(handle)
        log.unlink(missing_ok=True)  # left by a discarded store
        return handle, str(log)

    def _follow(self, spec: AttemptSpec, job: dict[str, Any]) -> Handle:
        """Track a Job of ours from now on; the handle the store keeps for it."""
        name = job["metadata"]["name"]
        self.tracker.seen(job)
        self._created[name] = time.monotonic()
        return {
            "job": name,
            "namespace": self.api.namespace,
            "uid": job["metadata"].get("uid"),
            **where(self.settings),
            "backfill": spec.backfill,
            "instance": spec.instance,
            "attempt": spec.number,
        }

    def _ours(self, job: dict[str, Any]) -> bool:
        return (job["metadata"].get("labels") or {}).get(PREFIX + "store") == self.store_id

    def _adopt(self, name: str) -> dict[str, Any]:
        """The Job a 409 said exists: ours to adopt, or someone else's to refuse; a claim
        (`recover`'s) says the attempt never starts."""
        job = self.api.get_job(name)
        if job is None:
            raise BackendError(f"the Job {name} existed and then vanished while being created")
        if not self._ours(job):
            owner = (job["metadata"].get("labels") or {}).get(PREFIX + "store")
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
            if handle.get("claimed"):
                ended[key] = Outcome("lost", None, CLAIMED.format(name), started=False)
                continue
            job = tracker.get(name)
            if job is None:
                outcome = self._vanished(name, tracker, handle)
            elif (outcome := self._ended(job, handle)) is None:
                self._check_start(name, job, handle)
                self._keep_log(name, job, handle)
            if outcome is not None:
                ended[key] = outcome
        return ended

    def _vanished(self, name: str, tracker: Tracker, handle: Handle) -> Outcome | None:
        """A Job the tracker does not hold: ended once it is known to be gone (deleted, or
        unseen for UNSEEN_GRACE after a full list) and no pod of it is left: one deleted
        by kubectl (background or orphan) leaves its pod running beside a retry."""
        gone = name in tracker.deleted or (
            tracker.synced.is_set()
            and time.monotonic() - self._created.get(name, 0.0) > UNSEEN_GRACE
        )
        if not gone:
            return None
        try:
            pods = self.api.pods(name)
        except BackendError:
            return None  # whether its pod still runs is not known: not ended yet
        if alive(pods):  # (asked again each tick until its pods end or go)
            return None
        code, detail, _ = self._collect(name, handle)
        if any(p["metadata"].get("deletionTimestamp") for p in pods):
            code = None  # killed by the deletion: its exit code says nothing of the command
        tracker.forget(name)
        self._created.pop(name, None)
        self._unstarted.pop(name, None)
        self._copied.discard(name)
        if name in self._cancels:
            return Outcome("failed", code, self._cancels.pop(name))
        return Outcome(*deleted(name, code, detail))

    def _check_start(self, name: str, job: dict[str, Any], handle: Handle) -> None:
        """Fail an attempt whose pod has not started its command in the start timeout (not
        schedulable, an image not pulled, no pod made...): a Job never gives up on these."""
        status = job.get("status") or {}
        if status.get("ready") or status.get("succeeded") or status.get("failed"):
            self._unstarted.pop(name, None)  # its command runs (or ran)
            return
        now = time.monotonic()
        since = self._unstarted.setdefault(name, now)
        if name in self._cancels or now - since < self.settings.start_timeout:
            return
        self._unstarted[name] = now  # (asked again after another start timeout)
        try:
            pods = self.api.pods(name)
        except BackendError:
            return
        why = not_started(pods) if pods else self.api.no_pod(name)
        if why is not None:
            limit = f"{self.settings.start_timeout}s (spec.kubernetes.startTimeoutSeconds)"
            self._cancels[name] = f"its pod did not start in {limit}: {why}"
            copy_log(self._log_path(handle), self.runs, f"[backfillctl: {self._cancels[name]}]\n")
            self._delete(name)

    def _keep_log(self, name: str, job: dict[str, Any], handle: Handle) -> None:
        """Copy the log of a pod being deleted (or evicted): the node removes it too."""
        if (job.get("status") or {}).get("terminating") and name not in self._copied:
            self._copied.add(name)
            with contextlib.suppress(BackendError):
                self._collect(name, handle)

    def _ended(self, job: Any, handle: Handle) -> Outcome | None:
        """The outcome of a Job that reached a terminal condition (None while it runs)."""
        result = job_result(job)
        if result is None:
            return None
        name = str(handle.get("job", ""))
        state, why = result
        code, detail, found = self._collect(name, handle)
        if name in self._cancels:
            state, why = "failed", self._cancels.pop(name)
        elif state == "failed" and why is None:
            why = failure(code, detail, found)
        self._created.pop(name, None)
        self._unstarted.pop(name, None)
        self._copied.discard(name)
        return Outcome(state, 0 if state == "succeeded" else code, why)  # type: ignore[arg-type]

    def _collect(self, name: str, handle: Handle) -> tuple[int | None, str | None, bool]:
        """Copy the log of the Job's pod next to the store; the container's exit code,
        what Kubernetes says of its end beyond the code, and whether a pod was found. A
        copy made before (when it was stopped) stays if the pod is gone by now. No copy
        is made where the runs directory is not this user's own (`make_private`)."""
        path = self._log_path(handle)
        try:
            pods, data = self.api.job_log(name, self.max_log_size)
        except BackendError as exc:
            if not path.exists():
                copy_log(path, self.runs, f"[backfillctl: the log could not be fetched: {exc}]\n")
            return None, None, True  # (not known to be gone)
        if not pods:
            return None, None, False
        copy_log(path, self.runs, data)
        return (*ended(pods), True)

    def cancel(self, key: Key, handle: Handle, reason: str) -> None:
        name = str(handle["job"])
        if name in self._cancels or handle.get("claimed"):  # (a claim stays: it never runs)
            return
        self._cancels[name] = reason
        with contextlib.suppress(BackendError):
            self._collect(name, handle)  # what it printed before it is killed
        self._delete(name)

    def _delete(self, name: str) -> None:
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

    def recover(self, spec: AttemptSpec, begun: Handle) -> Handle | None:
        """The Job of an attempt begun but not recorded as started; None if there is none
        of this store's. A server that cannot be asked raises BackendError: "no Job"
        would have the attempt run again beside one that may exist."""
        name = job_name(spec)
        job = self.api.get_job(name)
        if job is None:
            try:
                body = claim_manifest(spec, self.settings, self.store_id)
            except BackendError:
                return None  # no Job can be made for it (no image): none was started
            try:
                self.api.json(
                    "create", "jobs", self.api.batch.create_namespaced_job, self.api.namespace, body
                )
                return None  # claimed: it never runs
            except ApiException as exc:
                if exc.status != 409:
                    raise self.api.error(exc, "create", "jobs") from None
                job = self.api.get_job(name)  # created meanwhile: the attempt started
        if job is None or not self._ours(job) or claimed(job):
            return None
        return self._follow(spec, job)

    def log_text(self, handle: Handle, log: str | None) -> str:
        """The copy next to the store; else, or when the copy is empty (a container that
        ended a moment before its last output reached the node's log), the pod's log."""
        if log and Path(log).exists():
            text = Path(log).read_text(encoding="utf-8", errors="replace")
            if text or not handle.get("job"):
                return text
        if not handle.get("job"):
            return ""
        namespace = str(handle.get("namespace") or self.settings.namespace)  # where it ran
        try:
            api = api_for(self.settings, handle, lambda: self.api)
            _, data = api.job_log(str(handle["job"]), self.max_log_size, namespace)
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
        return readiness(lambda: self.api, self.runs)
