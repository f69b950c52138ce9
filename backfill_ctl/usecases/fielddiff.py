"""What changed, field by field, in a backfill's record and in an instance (`diff`, `apply`).

A Backfill's change is told as the paths of its document that differ (`spec.suspend`,
`metadata.labels.team`), as `kubectl diff` does; an instance's as the fields of its
definition that differ (`run.command`, `priority`, `cyctime`, `run.env.NAME`). Pure: it
compares records and reads nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from backfill_ctl.usecases.access import document

if TYPE_CHECKING:
    from collections.abc import Mapping

    from backfill_ctl.core.records import BackfillRecord, InstanceRecord, Run


class _Missing:
    """No value on that side: the field was added or removed."""

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()

# An instance's definition as shown: the scheduled time, not its epoch.
_INSTANCE_FIELDS = (
    "cyctime",
    "group",
    "sequence",
    "priority",
    "depends_on",
    "resource_group",
    "dry_run_reason",
)
_RUN_FIELDS = (
    "command",
    "working_dir",
    "timeout",
    "retries",
    "retry_delay",
    "image",
    "cpu",
    "memory",
)


@dataclass(frozen=True)
class FieldChange:
    """One field that differs: `old` or `new` is MISSING when it was added or removed."""

    path: str
    old: Any
    new: Any

    @property
    def mark(self) -> str:
        if self.old is MISSING:
            return "+"
        return "-" if self.new is MISSING else "~"


def backfill_fields(old: BackfillRecord | None, new: BackfillRecord | None) -> list[FieldChange]:
    """The paths of the applied Backfill document that differ (its access aside), and its
    coming back when it had been deleted."""
    if old is None or new is None:
        return []
    found = _walk("", document(old.spec), document(new.spec))
    if old.status == "deleted" and new.status != "deleted":
        found.insert(0, FieldChange("status", old.status, new.status))
    return found


def instance_fields(old: InstanceRecord, new: InstanceRecord) -> list[FieldChange]:
    """The fields of an instance's definition (and its state, when a cancelled one comes
    back) that differ between the stored record and the one applied."""
    found = [
        FieldChange(name, _plain(getattr(old, name)), _plain(getattr(new, name)))
        for name in _INSTANCE_FIELDS
        if getattr(old, name) != getattr(new, name)
    ]
    found += _run_fields(old.run, new.run)
    if old.state == "cancelled":
        found.insert(0, FieldChange("state", old.state, "pending"))
    return found


def _run_fields(old: Run, new: Run) -> list[FieldChange]:
    found = [
        FieldChange(f"run.{name}", _plain(getattr(old, name)), _plain(getattr(new, name)))
        for name in _RUN_FIELDS
        if getattr(old, name) != getattr(new, name)
    ]
    return found + _walk("run.env", old.env, new.env)


def _walk(path: str, old: Any, new: Any) -> list[FieldChange]:
    """The leaves that differ between two JSON-like values, by dotted path (lists whole)."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        return _walk_dicts(path, old, new)
    return [FieldChange(path or ".", _plain(old), _plain(new))]


def _walk_dicts(path: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[FieldChange]:
    found: list[FieldChange] = []
    for key in [*old, *(k for k in new if k not in old)]:
        sub = f"{path}.{key}" if path else str(key)
        if key not in new:
            found.append(FieldChange(sub, _plain(old[key]), MISSING))
        elif key not in old:
            found.append(FieldChange(sub, MISSING, _plain(new[key])))
        else:
            found += _walk(sub, old[key], new[key])
    return found


def _plain(value: Any) -> Any:
    """A JSON-ready value: tuples as lists."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value
