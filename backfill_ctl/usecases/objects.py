"""Stored backfills and instances as kubectl-style objects, for `-o json|yaml|jsonpath`.

Each object has `apiVersion` (the specs' own), `kind` (Backfill, Instance), `metadata`
(name, labels, ...), `spec` (what was asked) and `status` (what happened); a listing is a
`List` of them, as `kubectl get -o json` prints. Pure: records in, dictionaries out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backfill_ctl.core.records import STATES
from backfill_ctl.spec.schema import API_VERSION
from backfill_ctl.usecases.access import access_of
from backfill_ctl.usecases.progress import phase, utc

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from backfill_ctl.core.records import BackfillRecord, InstanceRecord


def as_list(items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """kubectl's `List`: `{"apiVersion", "kind": "List", "items": [...]}`."""
    return {"apiVersion": API_VERSION, "kind": "List", "items": list(items)}


def backfill_object(record: BackfillRecord, counts: Mapping[str, int]) -> dict[str, Any]:
    """The applied document's spec, and every recorded field with the instances per state."""
    doc = record.spec if isinstance(record.spec, dict) else {}
    meta = doc.get("metadata", {}) if isinstance(doc.get("metadata"), dict) else {}
    window = record.execution_window
    access = access_of(record)
    return {
        "apiVersion": API_VERSION,
        "kind": "Backfill",
        "metadata": {
            **{k: v for k, v in meta.items() if k not in ("name", "labels")},
            "name": record.name,
            "labels": dict(record.labels),
            "creationTimestamp": utc(record.applied_at),
        },
        "spec": doc.get("spec", {}),
        "status": {
            "phase": phase(record, counts),
            "state": record.status,
            "suspended": record.suspended,
            "outcome": record.outcome,
            "digest": record.digest,
            "file": record.file,
            "appliedAt": utc(record.applied_at),
            "appliedBy": record.applied_by,
            "finishedAt": utc(record.finished_at),
            "notifiedAt": utc(record.notified_at),
            "runImmediately": record.run_immediately,
            "executionWindow": {"from": window[0], "to": window[1]} if window else None,
            "alertWhen": record.alert_when,
            "notify": [dict(n) for n in record.notify],
            "instances": sum(counts.values()),
            "counts": {s: counts.get(s, 0) for s in STATES},
            "access": access.to_json() if access else None,
        },
    }


def instance_object(i: InstanceRecord, labels: Mapping[str, str]) -> dict[str, Any]:
    """An instance: what it runs (spec) and how it went (status); its backfill's `labels`."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Instance",
        "metadata": {
            "name": i.id,
            "labels": dict(labels),
            "ownerReferences": [
                {"apiVersion": API_VERSION, "kind": "Backfill", "name": i.backfill}
            ],
            "creationTimestamp": utc(i.created_at),
        },
        "spec": {
            "backfill": i.backfill,
            "node": i.node,
            "bizdate": i.bizdate,
            "cyctime": i.cyctime,
            "cyctimeEpoch": i.cyctime_epoch,
            "timezone": i.timezone,
            "group": i.group,
            "sequence": i.sequence,
            "priority": i.priority,
            "resourceGroup": i.resource_group,
            "dryRun": i.dry_run,
            "dryRunReason": i.dry_run_reason,
            "ignoreDeps": i.ignore_deps,
            "dependsOn": list(i.depends_on),
            "run": i.run.to_json(),
        },
        "status": {
            "state": i.state,
            "reason": i.reason,
            "blocker": i.blocker,
            "attempts": i.attempts,
            "triesLeft": i.tries_left,
            "stopRequested": i.stop_requested,
            "createdAt": utc(i.created_at),
            "updatedAt": utc(i.updated_at),
            "startedAt": utc(i.started_at),
            "finishedAt": utc(i.finished_at),
        },
    }
