"""A Plan as plain data: the `plan -o json|yaml` contract of DESIGN §4.

Field names are relied on by users' tooling; add fields, never rename them.
JSON is streamed one instance per line, so a plan of a million instances is written
without building its whole text in memory, and diffs of two plans stay readable.

The last field, `seal`, is a digest of every other field (`digest`, `now`, `actor`, each
backfill and each instance): `apply --plan` recomputes it from what it read and refuses
a plan whose seal does not match, so no field of a saved plan can be edited, nor one
added, without the plan being refused. It is computed from pieces, each the compact JSON
text of one part of the document with its keys in the format's order (what
`json.dumps(part, ensure_ascii=False, separators=(", ", ": "))` gives back after
`json.loads`): the header (every top-level field but `backfills` and `seal`), then
each backfill's fields but `instances`, then its instances one by one; each piece is
tagged and length-prefixed, so the stream of pieces names one document. The instance
pieces are the very lines the JSON holds, so sealing costs no second encoding. The seal
is a plain hash, not a signature: it catches edits, and `apply` also binds the plan to
its caller (the plan's `actor` must be the caller's) and plans the specs again.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime, timedelta

    from backfill_ctl.core.planner import BackfillPlan, Instance, Plan

FORMAT_VERSION = 1
SEAL = "seal"
_SEAL_VERSION = b"backfillctl plan seal 1\n"
_encode = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode


class Sealer:
    """The seal of a plan, fed piece by piece (see the module docstring)."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256(_SEAL_VERSION)

    def add(self, tag: bytes, text: str) -> None:
        data = text.encode()
        self._hash.update(tag + str(len(data)).encode() + b":" + data)

    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def seal_of(data: dict[str, Any]) -> str:
    """The seal of a plan read back as data (`json.loads` of a saved plan). Raises
    ValueError when its shape is not a plan's."""
    backfills = data.get("backfills")
    if not isinstance(backfills, list):
        raise ValueError("no list of backfills")
    sealer = Sealer()
    sealer.add(b"P", _encode({k: v for k, v in data.items() if k not in ("backfills", SEAL)}))
    for bp in backfills:
        instances = bp.get("instances") if isinstance(bp, dict) else None
        if not isinstance(instances, list):
            raise ValueError("a backfill without a list of instances")
        sealer.add(b"B", _encode({k: v for k, v in bp.items() if k != "instances"}))
        for i in instances:
            sealer.add(b"I", _encode(i))
    return sealer.digest()


class _Times:
    """ISO text of each distinct scheduled time, computed once (they are shared).

    Keyed by the offset too: aware datetimes of the same instant are equal across
    timezones, but 02:00+00:00 and 10:00+08:00 are different texts.
    """

    def __init__(self) -> None:
        self._text: dict[tuple[datetime, timedelta | None], str] = {}

    def __call__(self, value: datetime) -> str:
        key = (value, value.utcoffset())
        text = self._text.get(key)
        if text is None:
            text = self._text[key] = value.isoformat()
        return text


def instance_data(i: Instance, iso: _Times | None = None) -> dict[str, Any]:
    return {
        "id": i.id,
        "node": i.node,
        "bizdate": i.bizdate.isoformat(),
        "cyctime": (iso or _Times())(i.cyctime),
        "dryRun": i.dry_run_reason is not None,
        "dryRunReason": i.dry_run_reason,
        "group": i.group,
        "sequence": i.sequence,
        "priority": i.priority,
        "waitForTime": i.wait_for_time,
        "dependsOn": list(i.depends_on),
        "command": i.command if isinstance(i.command, str) else list(i.command),
    }


def backfill_header(bp: BackfillPlan) -> dict[str, Any]:
    scope = bp.scope
    return {
        "name": bp.name,
        "file": bp.backfill.origin.file,
        "line": bp.backfill.origin.line,
        "summary": bp.summary(),
        "dates": [d.isoformat() for d in bp.dates],
        "groups": [[d.isoformat() for d in chunk] for chunk in bp.chunks],
        "scope": [
            {
                "node": n,
                "role": scope.roles[n],
                "dryRunReason": scope.dry_run.get(n),
                "upstream": list(scope.upstream[n]),
            }
            for n in scope.nodes
        ],
        "leftOut": list(scope.left_out),
        "isolated": [
            {"node": x.node, "bizdate": x.bizdate.isoformat(), "upstream": x.upstream}
            for x in bp.isolated
        ],
    }


def plan_header(plan: Plan) -> dict[str, Any]:
    return {
        "formatVersion": FORMAT_VERSION,
        "digest": plan.digest,
        "now": plan.now.isoformat(),
        "actor": plan.actor,
    }


def plan_data(plan: Plan) -> dict[str, Any]:
    """The whole plan as one dict (for YAML and for small plans), sealed."""
    iso = _Times()
    data = {
        **plan_header(plan),
        "backfills": [
            {**backfill_header(bp), "instances": [instance_data(i, iso) for i in bp.instances]}
            for bp in plan.backfills
        ],
    }
    data[SEAL] = seal_of(data)
    return data


class _InstanceJson:
    """One instance as a JSON line, equal to `dumps(instance_data(i))`, twice as fast.

    Ids are hex and dates ISO text, so only node names and commands need encoding, and
    those repeat: their encodings are cached.
    """

    def __init__(self) -> None:
        self._encode = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode
        self._iso = _Times()
        self._text: dict[object, str] = {}

    def _cached(self, value: str | date | None) -> str:
        text = self._text.get(value)
        if text is None:
            plain = value.isoformat() if isinstance(value, date) else value
            text = self._text[value] = self._encode(plain)
        return text

    def __call__(self, i: Instance) -> str:
        command = i.command
        encoded = self._encode(command if isinstance(command, str) else list(command))
        deps = '", "'.join(i.depends_on)
        return (
            f'{{"id": "{i.id}", "node": {self._cached(i.node)}, '
            f'"bizdate": {self._cached(i.bizdate)}, "cyctime": "{self._iso(i.cyctime)}", '
            f'"dryRun": {"false" if i.dry_run_reason is None else "true"}, '
            f'"dryRunReason": {self._cached(i.dry_run_reason)}, "group": {i.group}, '
            f'"sequence": {i.sequence}, "priority": {i.priority}, '
            f'"waitForTime": {"true" if i.wait_for_time else "false"}, '
            f'"dependsOn": [{chr(34) + deps + chr(34) if deps else ""}], "command": {encoded}}}'
        )


def iter_json(plan: Plan) -> Iterator[str]:
    """The plan as JSON text, in pieces, sealed as it goes; equal to
    json.dumps(plan_data(plan))."""
    line = _InstanceJson()
    sealer = Sealer()
    top = plan_header(plan)
    sealer.add(b"P", _encode(top))
    header = json.dumps(top, indent=2, ensure_ascii=False)
    yield header[:-2] + ',\n  "backfills": ['
    for b, bp in enumerate(plan.backfills):
        data = backfill_header(bp)
        sealer.add(b"B", _encode(data))
        head = json.dumps(data, indent=2, ensure_ascii=False)
        head = head[:-2].replace("\n", "\n    ")
        yield ("," if b else "") + "\n    " + head + ',\n      "instances": ['
        for n, instance in enumerate(bp.instances):
            text = line(instance)
            sealer.add(b"I", text)
            yield ("," if n else "") + "\n        " + text
        yield "\n      ]\n    }" if bp.instances else "]\n    }"
    end = f',\n  "{SEAL}": "{sealer.digest()}"\n}}\n'
    yield ("\n  ]" if plan.backfills else "]") + end
