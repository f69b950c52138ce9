"""What `apply`, `apply --dry-run` and `diff` say they change: one renderer for all three.

Text, as `terraform plan` and `kubectl diff` do: a line per Backfill (`reconcile.render`:
`+` added, `~` changed, `-` cancelled), then, indented, what changed in it: the fields
of its document (`  ~ spec.suspend: false -> true`) and its instances
(`  + instance/ID (node, bizdate)`, `  ~ instance/ID (node, bizdate): run.command: "a" ->
"b"`, `  - instance/ID (node, bizdate)`). The instances of a new Backfill are not listed
(`plan` lists them). Bounded: at most `LIMIT` instance lines per Backfill, then how many
more; values longer than `WIDTH` characters are cut.

JSON (`diff -o json`): a stable document with every change, unbounded:
`{"apiVersion", "kind": "Diff", "changed", "summary", "backfills": [{"name", "status",
"fields": [{"path", "old", "new"}], "instances": {"add", "change", "remove"}, "kept",
"line"}]}` (`line`: the Backfill's text line); a field that was added has no `old`,
one removed no `new`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from backfill_ctl.spec.schema import API_VERSION
from backfill_ctl.usecases import reconcile
from backfill_ctl.usecases.fielddiff import MISSING, FieldChange, backfill_fields, instance_fields

if TYPE_CHECKING:
    from backfill_ctl.core.records import InstanceRecord
    from backfill_ctl.usecases.reconcile import BackfillChanges, Changes

LIMIT = 20  # instance lines per Backfill
FIELDS = 4  # fields per instance line
WIDTH = 60  # characters of one value


def lines(changes: Changes) -> list[str]:
    """Every Backfill's line, each followed by what changed in it."""
    out: list[str] = []
    for c, head in zip(changes.backfills, reconcile.render(changes), strict=True):
        fields = _fields(c)
        out.append(_head(c, head, fields))
        out += [f"  {f.mark} {_field_text(f)}" for f in fields]
        out += _instance_lines(c)
    return out


def _head(c: BackfillChanges, head: str, fields: list[FieldChange]) -> str:
    """A Backfill's line; when none of its instances changes, it says its fields did."""
    if fields and not c.create and not c.update and not c.cancel:
        return head + f", {len(fields)} field(s) of the Backfill changed"
    return head


def _fields(c: BackfillChanges) -> list[FieldChange]:
    return backfill_fields(c.before, c.record) if c.record is not None else []


def _instance_lines(c: BackfillChanges) -> list[str]:
    if c.status == "new":
        return []
    found = [f"  + {_name(i)}" for i in c.create]
    for i in c.update:
        changed = _changed(c, i)
        text = "; ".join(_field_text(f) for f in changed[:FIELDS])
        if len(changed) > FIELDS:
            text += f"; and {len(changed) - FIELDS} more field(s)"
        found.append(f"  ~ {_name(i)}: {text}" if text else f"  ~ {_name(i)}")
    found += [f"  - {_name(c.stored[iid])}" for iid in c.cancel if iid in c.stored]
    found += [f"  - instance/{iid}" for iid in c.cancel if iid not in c.stored]
    if len(found) <= LIMIT:
        return found
    more = len(found) - LIMIT
    return [*found[:LIMIT], f"  … and {more} more instance change(s) (diff -o json lists all)"]


def _changed(c: BackfillChanges, i: InstanceRecord) -> list[FieldChange]:
    have = c.stored.get(i.id)
    return instance_fields(have, i) if have is not None else []


def _name(i: InstanceRecord) -> str:
    return f"instance/{i.id} ({i.node}, {i.bizdate})"


def _field_text(f: FieldChange) -> str:
    if f.old is MISSING:
        return f"{f.path}: {_value(f.new)}"
    if f.new is MISSING:
        return f"{f.path}: {_value(f.old)}"
    return f"{f.path}: {_value(f.old)} -> {_value(f.new)}"


def _value(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= WIDTH else text[: WIDTH - 1] + "…"


def document(changes: Changes) -> dict[str, Any]:
    """Every change, for tools: see the module docstring."""
    create, update, cancel, kept = changes.totals()
    return {
        "apiVersion": API_VERSION,
        "kind": "Diff",
        "changed": not changes.empty,
        "summary": {"create": create, "update": update, "cancel": cancel, "kept": kept},
        "backfills": [
            _backfill_json(c, head)
            for c, head in zip(changes.backfills, reconcile.render(changes), strict=True)
        ],
    }


def _backfill_json(c: BackfillChanges, head: str) -> dict[str, Any]:
    fields = _fields(c)
    return {
        "name": c.name,
        "status": c.status,
        "fields": [_field_json(f) for f in fields],
        "instances": {
            "add": [_instance_json(i) for i in c.create],
            "change": [
                {**_instance_json(i), "fields": [_field_json(f) for f in _changed(c, i)]}
                for i in c.update
            ],
            "remove": [
                _instance_json(c.stored[iid]) if iid in c.stored else {"id": iid}
                for iid in c.cancel
            ],
        },
        "kept": c.kept,
        "line": _head(c, head, fields),
    }


def _instance_json(i: InstanceRecord) -> dict[str, Any]:
    return {"id": i.id, "node": i.node, "bizdate": i.bizdate, "cyctime": i.cyctime}


def _field_json(f: FieldChange) -> dict[str, Any]:
    out: dict[str, Any] = {"path": f.path}
    if f.old is not MISSING:
        out["old"] = f.old
    if f.new is not MISSING:
        out["new"] = f.new
    return out
