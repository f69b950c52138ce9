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
from json.encoder import encode_basestring
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from datetime import datetime, timedelta

    from backfill_ctl.core.planner import BackfillPlan, Instance, Plan

FORMAT_VERSION = 1
SEAL = "seal"
_SEAL_VERSION = b"backfillctl plan seal 1\n"
_encode = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode
_encode_str = encode_basestring  # what that encoder does to a str


class Sealer:
    """The seal of a plan, fed piece by piece (see the module docstring)."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256(_SEAL_VERSION)

    def add(self, tag: bytes, text: str) -> None:
        data = text.encode()
        self._hash.update(tag + str(len(data)).encode() + b":" + data)

    def add_all(self, tag: bytes, texts: Sequence[str], *, ascii_only: bool = False) -> None:
        """`add(tag, text)` for each text, in one update of the hash: hashing is a
        stream, so the digest is the same. A text's length is that of its UTF-8 bytes:
        its length in characters when it is ASCII, which `ascii_only` says of them all
        (the caller checked their joined text: one check, not one a text)."""
        mark = tag.decode()
        if ascii_only:
            pieces = [f"{mark}{len(t)}:{t}" for t in texts]
        else:
            pieces = [f"{mark}{len(t) if t.isascii() else len(t.encode())}:{t}" for t in texts]
        self._hash.update("".join(pieces).encode())

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


class _Texts(dict[Any, str]):
    """Value -> its JSON text, encoded on first use: node names, dates and dry-run
    reasons repeat over a plan's instances (a few thousand distinct values)."""

    def __init__(self, encode: Callable[[Any], str]) -> None:
        super().__init__()
        self._encode = encode

    def __missing__(self, key: Any) -> str:
        text = self[key] = self._encode(key)
        return text


def _reason_json(reason: str | None) -> str:
    """The `dryRun` and `dryRunReason` values of a reason, with the separator between."""
    if reason is None:
        return 'false, "dryRunReason": null'
    return 'true, "dryRunReason": ' + _encode(reason)


class _InstanceLines:
    """Instances as JSON lines, each equal to `dumps(instance_data(i))`, several times as
    fast: a batch is encoded by one comprehension, with no call per instance.

    Ids are hex and dates ISO text, so only node names and commands need encoding.
    The text of a repeated value (node, business date, dry-run reason) is looked up in a
    `_Texts`; a command's strings are encoded by the function the encoder itself uses for
    strings (`encode_basestring`: ensure_ascii off), joined with the encoder's separator.
    Scheduled times are shared objects: their text is looked up by identity (each
    object cached is kept, so its id is not reused; keyed by value, the same instant in
    two timezones would be one key), and computed on a miss.
    """

    def __init__(self) -> None:
        self._nodes = _Texts(_encode)
        self._dates = _Texts(lambda day: _encode(day.isoformat()))
        self._reasons = _Texts(_reason_json)
        self._ints = _Texts(str)  # group, sequence, priority
        self._items = _Texts(_encode_str)  # the strings of commands
        self._times: dict[int, str] = {}
        self._kept: list[datetime] = []

    def _time(self, value: datetime) -> str:
        text = self._times[id(value)] = value.isoformat()
        self._kept.append(value)
        return text

    def _command(self, command: Sequence[str] | str) -> str:
        """A command that is not a tuple: a string, or a list of strings."""
        if isinstance(command, str):
            return _encode_str(command)
        return "[" + _ITEMS.join(map(self._items.__getitem__, command)) + "]"

    def __call__(self, batch: Sequence[Instance]) -> list[str]:
        nodes, dates, reasons, ints, times, time = (
            self._nodes,
            self._dates,
            self._reasons,
            self._ints,
            self._times,
            self._time,
        )
        item, command_json = self._items.__getitem__, self._command
        return [
            f'{{"id": "{iid}", "node": {nodes[node]}, "bizdate": {dates[bizdate]}, '
            f'"cyctime": "{times.get(id(cyctime)) or time(cyctime)}", '
            f'"dryRun": {reasons[reason]}, "group": {ints[group]}, '
            f'"sequence": {ints[sequence]}, "priority": {ints[priority]}, '
            f'"waitForTime": {"true" if wait else "false"}, '
            f'"dependsOn": [{_Q + _IDS.join(deps) + _Q if deps else ""}], "command": '
            f"{'[' + _ITEMS.join(map(item, command)) + ']' if command.__class__ is tuple else command_json(command)}}}"  # noqa: E501
            for iid, node, bizdate, cyctime, reason, group, sequence, priority, wait, deps, command in batch  # noqa: E501
        ]


_Q = '"'
_IDS = '", "'  # between two quoted ids
_ITEMS = ", "  # the encoder's item separator

# Instances per piece of iter_json: one write and one hash update for many lines.
_BATCH = 2048
_SEP = ",\n        "


def _instances_json(instances: tuple[Instance, ...], sealer: Sealer) -> Iterator[str]:
    """The instance lines of one backfill, `_BATCH` at a time, each line sealed."""
    lines = _InstanceLines()
    for start in range(0, len(instances), _BATCH):
        texts = lines(instances[start : start + _BATCH])
        piece = _SEP.join(texts)
        sealer.add_all(b"I", texts, ascii_only=piece.isascii())
        yield ("," if start else "") + "\n        " + piece


def iter_json(plan: Plan) -> Iterator[str]:
    """The plan as JSON text, in pieces, sealed as it goes; equal to
    json.dumps(plan_data(plan))."""
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
        yield from _instances_json(bp.instances, sealer)
        yield "\n      ]\n    }" if bp.instances else "]\n    }"
    end = f',\n  "{SEAL}": "{sealer.digest()}"\n}}\n'
    yield ("\n  ]" if plan.backfills else "]") + end
