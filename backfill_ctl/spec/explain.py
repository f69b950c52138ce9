"""Reading the schemas for people: `schema KIND` bundles one, `explain` walks one.

Both work from the JSON Schema files only, so the documentation a user reads is the
format the validator enforces.
"""

from __future__ import annotations

import copy
import difflib
from typing import Any

from backfill_ctl.errors import UsageError
from backfill_ctl.spec.schema import KINDS, kind_schema, load_schema, resolve_ref

_COMMON = "common.schema.json"


def find_kind(name: str) -> str:
    for kind in KINDS:
        if kind.lower() == name.lower():
            return kind
    close = difflib.get_close_matches(name, KINDS, n=1)
    raise UsageError(
        f"unknown kind {name!r}",
        hint=f"did you mean {close[0]}?" if close else f"use one of {', '.join(KINDS)}",
    )


def bundled_schema(kind: str) -> dict[str, Any]:
    """The kind's schema with the shared definitions copied in: one self-contained file."""
    schema = copy.deepcopy(kind_schema(kind))
    common = load_schema(_COMMON)["$defs"]
    schema["$defs"] = {**copy.deepcopy(common), **schema.get("$defs", {})}

    def rewrite(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(_COMMON):
                node["$ref"] = ref[len(_COMMON) :]
            for value in node.values():
                rewrite(value)
        elif isinstance(node, list):
            for value in node:
                rewrite(value)

    rewrite(schema)
    return schema


def type_name(schema: dict[str, Any]) -> str:
    schema = resolve_ref(schema)
    if "type" in schema:
        kind = schema["type"]
        if kind == "array" and "items" in schema:
            return f"[]{type_name(schema['items'])}"
        if kind == "object" and "properties" not in schema and "additionalProperties" in schema:
            return "map[string]string"
        return str(kind)
    if "enum" in schema:
        return " | ".join(str(v) for v in schema["enum"])
    if "const" in schema:
        return str(schema["const"])
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return " | ".join(type_name(s) for s in schema[key])
    return "any"


def _children(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The fields below a schema, looking through $ref, items and oneOf branches."""
    schema = resolve_ref(schema)
    if "items" in schema:
        return _children(schema["items"])
    fields = dict(schema.get("properties", {}))
    for key in ("oneOf", "anyOf"):
        for branch in schema.get(key, []):
            fields.update(_children(branch))
    return fields


def _required(schema: dict[str, Any]) -> set[str]:
    schema = resolve_ref(schema)
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
            close = difflib.get_close_matches(name, children, n=1)
            where = ".".join([kind, *walked])
            hint = (
                f"did you mean {close[0]!r}?"
                if close
                else f"fields of {where}: {', '.join(children)}"
                if children
                else f"{where} has no fields"
            )
            raise UsageError(f"{where} has no field {name!r}", hint=hint)
        required = name in _required(schema)
        schema = children[name]
        walked.append(name)
    resolved = resolve_ref(schema)
    lines = [f"KIND:     {kind}"]
    if walked:
        lines.append(
            f"FIELD:    {'.'.join(walked)} <{type_name(schema)}>"
            + ("  (required)" if required else "")
        )
    lines += ["", "DESCRIPTION:", *_wrap(resolved.get("description", "(none)"), "    ")]
    for label, key in (
        ("DEFAULT", "default"),
        ("MINIMUM", "minimum"),
        ("MAXIMUM", "maximum"),
        ("PATTERN", "pattern"),
    ):
        if key in resolved:
            lines += ["", f"{label}: {resolved[key]}"]
    if "enum" in resolved:
        lines += ["", "ALLOWED:  " + ", ".join(str(v) for v in resolved["enum"])]
    if resolved.get("examples"):
        lines += ["", "EXAMPLES:", *(f"    {e!r}" for e in resolved["examples"][:3])]
    children = _children(schema)
    if children:
        lines += ["", "FIELDS:"]
        lines += _field_lines(schema, "    ", recursive, depth=0)
    return "\n".join(lines)


def _field_lines(schema: dict[str, Any], indent: str, recursive: bool, depth: int) -> list[str]:
    lines: list[str] = []
    required = _required(schema)
    for name, child in _children(schema).items():
        marker = " -required-" if name in required else ""
        lines.append(f"{indent}{name}\t<{type_name(child)}>{marker}")
        if recursive and depth < 8:
            lines += _field_lines(child, indent + "  ", recursive, depth + 1)
        else:
            description = resolve_ref(child).get("description", "")
            lines += _wrap(description, indent + "  ")
            lines.append("")
    return lines


def _wrap(text: str, indent: str, width: int = 88) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width=width, initial_indent=indent, subsequent_indent=indent)
