"""The JSON Schemas of the spec kinds, and validation of one document against them.

The schemas in `schemas/` are the single source of truth for the format; this module
only finds them (inside the installed package, or next to it in a source checkout),
builds one validator per kind, and turns jsonschema's errors into `Diagnostic`s that
name the offending field and suggest a fix.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backfill_ctl.errors import Diagnostic, PathPart, UsageError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

    from backfill_ctl.spec.yamlfile import RawDocument

API_VERSION = "backfillctl.dev/v1alpha1"
KINDS: dict[str, str] = {
    "Workspace": "workspace.schema.json",
    "ResourceGroup": "resourcegroup.schema.json",
    "Node": "node.schema.json",
    "Backfill": "backfill.schema.json",
    "Config": "config.schema.json",
}
_PACKAGE = Path(__file__).resolve().parent.parent


def schema_dir() -> Path:
    """`backfill_ctl/schemas` in a wheel; `<checkout>/schemas` in an editable install."""
    for candidate in (_PACKAGE / "schemas", _PACKAGE.parent / "schemas"):
        if (candidate / KINDS["Node"]).is_file():
            return candidate
    raise UsageError(
        "the JSON Schemas of backfillctl are missing from this installation",
        hint="reinstall backfillctl (pip install --force-reinstall backfillctl)",
    )


@cache
def load_schema(filename: str) -> dict[str, Any]:
    with (schema_dir() / filename).open(encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


def kind_schema(kind: str) -> dict[str, Any]:
    return load_schema(KINDS[kind])


@cache
def _validator(kind: str) -> Draft202012Validator:
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    resources = [
        (schema["$id"], Resource.from_contents(schema))
        for schema in (load_schema(p.name) for p in sorted(schema_dir().glob("*.schema.json")))
    ]
    registry: Registry[Any] = Registry().with_resources(resources)
    return Draft202012Validator(kind_schema(kind), registry=registry)


def resolve_ref(schema: dict[str, Any], base: str | None = None) -> dict[str, Any]:
    """Follow `$ref` (relative to the schema files) until a schema without one."""
    seen = 0
    while "$ref" in schema and seen < 20:
        ref = schema["$ref"]
        filename, _, pointer = ref.partition("#")
        target = load_schema(filename) if filename else load_schema(base or KINDS["Node"])
        for part in pointer.strip("/").split("/") if pointer else ():
            target = target[part]
        merged = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**target, **merged}  # siblings of $ref (a description) win
        base = filename or base
        seen += 1
    return schema


def validate_document(doc: RawDocument) -> tuple[str | None, list[Diagnostic]]:
    """The document's kind (None if it has no usable kind) and its schema errors."""
    data = doc.data

    def diag(msg: str, path: tuple[PathPart, ...] = (), hint: str | None = None) -> Diagnostic:
        return Diagnostic(msg, file=doc.file, doc=doc.index, path=path, hint=hint, code="schema")

    if not isinstance(data, dict):
        return None, [
            diag(
                f"a document must be a mapping, not {_type_name(data)}",
                hint="start the document with apiVersion:, kind:, metadata:, spec:",
            )
        ]
    kind = data.get("kind")
    if kind not in KINDS:
        if kind is None:
            return None, [diag("missing 'kind'", hint=f"add kind: one of {', '.join(KINDS)}")]
        close = difflib.get_close_matches(str(kind), KINDS, n=1)
        hint = f"did you mean {close[0]}?" if close else f"use one of {', '.join(KINDS)}"
        return None, [diag(f"unknown kind {kind!r}", ("kind",), hint)]
    errors = sorted(_validator(kind).iter_errors(data), key=_error_order)
    return kind, [d for error in errors for d in _explain(error, diag)]


def _error_order(error: ValidationError) -> tuple[int, list[str]]:
    return (len(error.absolute_path), [str(p) for p in error.absolute_path])


def _explain(error: ValidationError, diag: Any) -> Iterator[Diagnostic]:
    path = tuple(error.absolute_path)
    schema: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(schema.get("properties", {}))
        for key in sorted(set(error.instance) - set(allowed)):
            close = difflib.get_close_matches(key, allowed, n=1)
            suggestion = (
                f"did you mean {close[0]!r}?"
                if close
                else f"allowed fields: {', '.join(allowed)}"
                if allowed
                else None
            )
            yield diag(f"unknown field {key!r}", (*path, key), suggestion)
        return
    if error.validator in ("oneOf", "anyOf") and error.context:
        from jsonschema.exceptions import best_match

        yield from _explain(best_match(error.context), diag)
        return
    message = error.message
    hint: str | None = None
    if error.validator == "const" and path[-1:] == ("apiVersion",):
        hint = f"use apiVersion: {API_VERSION}"
    elif error.validator == "required":
        hint = "add the missing field"
    elif error.validator == "type" and isinstance(error.instance, bool):
        hint = "YAML reads unquoted yes/no/on/off/true/false as booleans; quote the value"
    elif error.validator == "type" and isinstance(error.instance, int | float):
        hint = "quote the value to make it a string"
    elif error.validator == "pattern":
        hint = _pattern_hint(schema)
        message = f"{error.instance!r} is not valid here"
    elif error.validator == "enum":
        choices = ", ".join(str(c) for c in schema.get("enum", ()))
        message = f"{error.instance!r} is not one of: {choices}"
    yield diag(message, path, hint)


def _pattern_hint(schema: Mapping[str, Any]) -> str:
    description = schema.get("description")
    examples = schema.get("examples")
    text = description or f"it must match {schema.get('pattern')}"
    if examples:
        text += f" (for example {examples[0]!r})"
    return text


def _type_name(value: Any) -> str:
    return {list: "a list", str: "a string", type(None): "empty"}.get(type(value), "a scalar")
