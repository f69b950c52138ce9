"""`backfillctl explain`: the documentation of a field, read from the JSON Schemas.

It walks the same inlined schema the validator runs on, so what a user reads is the
format that is enforced.
"""

from __future__ import annotations

import json
from typing import Any

from backfill_ctl.errors import UsageError, did_you_mean
from backfill_ctl.spec.schema import KINDS, kind_schema


def find_kind(name: str) -> str:
    for kind in KINDS:
        if kind.lower() == name.lower():
            return kind
    raise UsageError(
        f"unknown kind {name!r}",
        hint=did_you_mean(name, KINDS) or f"use one of {', '.join(KINDS)}",
    )


def type_name(schema: dict[str, Any]) -> str:
    if "type" in schema:
        kind = schema["type"]
        if kind == "array" and "items" in schema:
            item = type_name(schema["items"])
            return f"[]({item})" if " | " in item else f"[]{item}"  # not "[]string | object"
        if kind == "object" and "properties" not in schema and "additionalProperties" in schema:
            return "map[string]string"
        return str(kind)
    if "enum" in schema:
        return " | ".join(str(v) for v in schema["enum"])
    if "const" in schema:
        return str(schema["const"])
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return " | ".join(dict.fromkeys(type_name(s) for s in schema[key]))
    return "any"


def _children(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The fields below a schema, looking through items and oneOf branches."""
    if "items" in schema:
        return _children(schema["items"])
    fields = dict(schema.get("properties", {}))
    for key in ("oneOf", "anyOf"):
        for branch in schema.get(key, []):
            fields.update(_children(branch))
    return fields


def _required(schema: dict[str, Any]) -> set[str]:
    if "items" in schema:
        return _required(schema["items"])
    return set(schema.get("required", []))


def explain(path: str, recursive: bool = False) -> str:
    """kubectl-explain style text for `Kind.field.field`."""
    kind, *fields = path.split(".")
    kind = find_kind(kind)
    schema: dict[str, Any] = kind_schema(kind)
    walked: list[str] = []
    required = False
    for name in fields:
        children = _children(schema)
        if name not in children:
            where = ".".join([kind, *walked])
            hint = did_you_mean(name, children) or (
                f"fields of {where}: {', '.join(children)}"
                if children
                else f"{where} has no fields"
            )
            raise UsageError(f"{where} has no field {name!r}", hint=hint)
        required = name in _required(schema)
        schema = children[name]
        walked.append(name)
    lines = [f"KIND:     {kind}"]
    if walked:
        lines.append(
            f"FIELD:    {'.'.join(walked)} <{type_name(schema)}>"
            + ("  (required)" if required else "")
        )
    lines += ["", "DESCRIPTION:", *_wrap(schema.get("description", "(none)"), "    ")]
    lines += _constraints(schema)
    if "enum" in schema:
        lines += ["", "ALLOWED:  " + ", ".join(str(v) for v in schema["enum"])]
    if schema.get("examples"):
        lines += ["", "EXAMPLES:", *(f"    {json.dumps(e)}" for e in schema["examples"][:3])]
    children = _children(schema)
    if children:
        lines += ["", "FIELDS:"]
        lines += _field_lines(schema, "    ", recursive, depth=0)
    return "\n".join(lines)


def _field_lines(schema: dict[str, Any], indent: str, recursive: bool, depth: int) -> list[str]:
    lines: list[str] = []
    required = _required(schema)
    for name, child in _children(schema).items():
        marker = "  (required)" if name in required else ""
        lines.append(f"{indent}{name}\t<{type_name(child)}>{marker}")
        if recursive and depth < 8:
            lines += _field_lines(child, indent + "  ", recursive, depth + 1)
        else:
            description = child.get("description", "")
            lines += _wrap(description, indent + "  ")
            lines.append("")
    return lines


def _wrap(text: str, indent: str, width: int = 88) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width=width, initial_indent=indent, subsequent_indent=indent)


def _constraints(schema: dict[str, Any]) -> list[str]:
    """DEFAULT, MINIMUM, MAXIMUM, FORMAT and PATTERN lines (a format's pattern is its own
    words: FORMAT alone)."""
    lines: list[str] = []
    for label, key in (
        ("DEFAULT", "default"),
        ("MINIMUM", "minimum"),
        ("MAXIMUM", "maximum"),
        ("FORMAT", "format"),
        ("PATTERN", "pattern"),
    ):
        if key in schema and not (key == "pattern" and "format" in schema):
            lines += ["", f"{label}: {schema[key]}"]
    return lines
