"""The Job of an attempt, and how a Job ended: pure functions of their inputs."""

from __future__ import annotations

import hashlib
import math
import re
from typing import TYPE_CHECKING, Any

from backfill_ctl.backends import (
    AttemptSpec,
    BackendError,
    resolved_command,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from backfill_ctl.spec.model import Kubernetes

PREFIX = "backfillctl.dev/"
MANAGED_BY = "app.kubernetes.io/managed-by"
_NOT_DNS = re.compile(r"[^a-z0-9-]+")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


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


CLAIM = PREFIX + "claim"  # on a suspended Job that holds an attempt's name: it never ran


def claim_manifest(spec: AttemptSpec, settings: Kubernetes, store_id: str) -> dict[str, Any]:
    """The Job `recover` creates for an attempt begun but never started: the attempt's
    own Job, suspended (no pod is ever made for it) and marked as a claim, so that a
    controller paused between its begin and its start, resuming after a newer one took
    the lease, gets a 409 for its create, not a second run beside the retry."""
    body = job_manifest(spec, settings, store_id)
    body["metadata"]["annotations"][CLAIM] = "never-started"
    body["spec"]["suspend"] = True
    return body


def claimed(job: dict[str, Any]) -> bool:
    return bool((job["metadata"].get("annotations") or {}).get(CLAIM))


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
    argv, env = resolved_command(run, spec.timezone, spec.now if now is None else now)
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
    while it runs. A plain failure has no why: the container's exit code says it.

    Ended means no pod of it still runs: a terminal condition is not enough while pods
    are active or terminating (older releases mark a deadline Failed while its pod is
    still being killed), or a retry could start beside them."""
    status = job.get("status") or {}
    if status.get("active") or status.get("terminating"):
        return None
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
