"""The JSON Schemas of the spec kinds, and validation of one document against them.

The schemas in `schemas/` are the single source of truth for the format, defaults
included; this module only finds them (inside the installed package, or next to it in a
source checkout), builds one validator per kind, turns jsonschema's errors into
`Diagnostic`s that name the offending field and suggest a fix, and answers what a field
defaults to (`default`), for `spec.build` and the model's dataclasses. Defaults are read
from the schema files alone: no jsonschema import, so a command that needs no validation
does not pay for it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backfill_ctl.errors import Diagnostic, PathPart, UsageError, did_you_mean, quote
from backfill_ctl.spec.hints import RULES, bounded, type_name

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

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
COMMON = "common.schema.json"
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


@cache
def kind_schema(kind: str) -> dict[str, Any]:
    """The kind's schema with every `$ref` replaced by what it refers to.

    Self-contained (what `backfillctl schema KIND` prints) and what both validators
    run on. A `$ref`'s siblings (a field's own description) win over the target's.
    """
    filename = KINDS[kind]

    def inline(node: Any, base: str) -> Any:
        if isinstance(node, list):
            return [inline(item, base) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            target_file, _, pointer = node["$ref"].partition("#")
            target_file = target_file or base  # "#/$defs/x" is relative to its own file
            target: Any = load_schema(target_file)
            for part in pointer.strip("/").split("/") if pointer else ():
                target = target[part]
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            return {**inline(target, target_file), **inline(siblings, base)}
        return {k: inline(v, base) for k, v in node.items() if k != "$defs"}

    schema: dict[str, Any] = inline(load_schema(filename), filename)
    return schema


@cache
def defaults(kind: str) -> dict[str, Any]:
    """Every `default` the kind's schema declares, by the dotted path of its field.

    A field of a list's items is under `name[]` (`spec.policies[].timeout`). Fields in
    `oneOf`/`anyOf` branches have no defaults (none is declared there), so they are
    not looked at.
    """
    found: dict[str, Any] = {}

    def walk(node: Mapping[str, Any], path: str) -> None:
        if "default" in node and path:
            found[path] = node["default"]
        if "items" in node and isinstance(node["items"], Mapping):
            walk(node["items"], f"{path}[]")
        for name, sub in node.get("properties", {}).items():
            walk(sub, f"{path}.{name}" if path else name)

    walk(kind_schema(kind), "")
    return found


@cache
def default(kind: str, path: str) -> Any:
    """What the field at `path` (dotted, as `defaults` names it) of a `kind` document is
    when it is left out, as the schema declares it: `default("Node", "spec.run.retries")`.

    A field without a declared default but with fields that have one (an object such as
    Config `spec.retention.logs`) defaults to the mapping of those, in schema order.
    KeyError if neither.
    """
    known = defaults(kind)
    if path in known:
        return known[path]
    prefix = f"{path}."
    children = {
        key[len(prefix) :]: value
        for key, value in known.items()
        if key.startswith(prefix) and "." not in key[len(prefix) :]
    }
    if not children:
        raise KeyError(f"{kind} {path}: the schema declares no default")
    return children


@cache
def _validator(kind: str) -> Draft202012Validator:
    from jsonschema import Draft202012Validator, validators

    strict: type[Draft202012Validator] = validators.extend(  # type: ignore[no-untyped-call]
        Draft202012Validator, {"pattern": _pattern}
    )
    return strict(kind_schema(kind))


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    """jsonschema's `pattern` with `$` at the very end of the text, as ECMA-262 says.

    Python's `$` also matches before a final newline, so plain jsonschema accepts
    "dwd_orders\\n" as a name; fastjsonschema rewrites `$` to `\\Z` and rejects it.
    """
    from jsonschema.exceptions import ValidationError

    if isinstance(instance, str) and not _ecma_regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@cache
def _ecma_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"(?<!\\)\$", r"\\Z", pattern))  # fastjsonschema's rewrite


@cache
def _fast_check(kind: str) -> Callable[[Any], Any]:
    """A compiled validity check (fastjsonschema): ~15x faster than jsonschema.

    Only the yes/no answer is used; every error message comes from jsonschema, the
    reference. The inlined schemas use only keywords whose meaning is the same in
    draft-07 (fastjsonschema's newest) and 2020-12; tests/spec/test_schema.py checks
    that the two agree. `use_default=False`: it must never fill in the document.
    `use_formats=False`: `format` (dates) is for editors; jsonschema ignores it too.
    """
    import fastjsonschema

    schema = {**kind_schema(kind), "$schema": "http://json-schema.org/draft-07/schema#"}
    check: Callable[[Any], Any] = fastjsonschema.compile(
        schema, use_default=False, use_formats=False
    )
    return check


# Documents of a kind checked by spec.check's closures before fastjsonschema's compiled
# check pays: it takes 15-30 ms to compile and then runs ~20 us a document faster.
SMALL = 500
_checked: dict[str, int] = {}


@cache
def _small_check(kind: str) -> Callable[[Any], bool] | None:
    """The closures of spec.check for the kind's schema (None: a keyword it lacks)."""
    from backfill_ctl.spec.check import Unsupported, compile_check

    try:
        return compile_check(kind_schema(kind), _ecma_regex)
    except Unsupported:
        return None


def is_valid(kind: str, data: Any) -> bool:
    """Whether a document of `kind` is valid: spec.check's closures for the first
    `SMALL` documents of a kind in this process, fastjsonschema's compiled check after."""
    seen = _checked[kind] = _checked.get(kind, 0) + 1
    small = _small_check(kind) if seen <= SMALL else None
    if small is not None:
        return small(data)
    from fastjsonschema import JsonSchemaException

    try:
        _fast_check(kind)(data)
    except JsonSchemaException:
        return False
    return True


def schema_errors(kind: str, data: Any) -> list[ValidationError]:
    """jsonschema's errors for a document of `kind` (empty when valid)."""
    if is_valid(kind, data):
        return []
    return list(_validator(kind).iter_errors(data))


def validate_document(doc: RawDocument) -> tuple[str | None, list[Diagnostic]]:
    """The document's kind (None if it has no usable kind) and its schema errors."""
    data = doc.data

    def diag(msg: str, path: tuple[PathPart, ...] = (), hint: str | None = None) -> Diagnostic:
        return Diagnostic(msg, file=doc.file, doc=doc.index, path=path, hint=hint, code="schema")

    if not isinstance(data, dict):
        return None, [
            diag(
                f"a document must be a mapping, not {type_name(data)}",
                hint="start the document with apiVersion:, kind:, metadata:, spec:",
            )
        ]
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:  # (a list or a mapping is unhashable)
        if kind is None:
            return None, [diag("missing 'kind'", hint=f"add kind: one of {', '.join(KINDS)}")]
        hint = did_you_mean(str(kind), KINDS) or f"use one of {', '.join(KINDS)}"
        return None, [diag(f"unknown kind {kind!r}", ("kind",), hint)]
    return kind, document_errors(kind, data, diag)


def document_errors(
    kind: str, data: Any, diag: Callable[..., Diagnostic] | None = None
) -> list[Diagnostic]:
    """The schema errors of a document of a known `kind`; `diag(message, path, hint)`
    makes each (by default a Diagnostic of no file)."""
    diag = diag or _unlocated
    errors = sorted(schema_errors(kind, data), key=_error_order)
    return _misspelt_required([d for error in errors for d in _explain(error, diag, kind)])


def _unlocated(
    message: str, path: tuple[PathPart, ...] = (), hint: str | None = None
) -> Diagnostic:
    return Diagnostic(message, path=path, hint=hint, code="schema")


def _misspelt_required(diags: list[Diagnostic]) -> list[Diagnostic]:
    """A required field written with a typo is one mistake: the unknown field says so,
    and "missing required field" for it (a knock-on error) is left out."""
    meant: dict[tuple[tuple[PathPart, ...], str], Diagnostic] = {}
    for d in diags:
        if d.message.startswith("unknown field") and d.hint and d.hint.startswith("did you mean"):
            meant[(d.path[:-1], d.hint.split("'")[1])] = d
    dropped = set()
    for d in diags:
        missing = re.fullmatch(r"missing required field '(.+)'", d.message)
        if missing and (d.path, missing.group(1)) in meant:
            dropped.add(id(meant[(d.path, missing.group(1))]))
    out = []
    for d in diags:
        missing = re.fullmatch(r"missing required field '(.+)'", d.message)
        if missing and (d.path, missing.group(1)) in meant:
            continue
        out.append(replace(d, hint=f"{d.hint} (it is required)") if id(d) in dropped else d)
    return out


def _error_order(error: ValidationError) -> tuple[int, list[str]]:
    return (len(error.absolute_path), [str(p) for p in error.absolute_path])


def _explain(error: ValidationError, diag: Any, kind: str) -> Iterator[Diagnostic]:
    path = tuple(error.absolute_path)
    schema: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(schema.get("properties", {}))
        for key in sorted(set(error.instance) - set(allowed)):
            suggestion = did_you_mean(key, allowed) or (
                f"allowed fields: {', '.join(allowed)}" if allowed else "remove it"
            )
            yield diag(f"unknown field {key!r}", (*path, key), suggestion)
        return
    if error.validator in ("oneOf", "anyOf") and error.context:
        for sub in sorted(_closest_branch(error.context), key=_error_order):
            yield from _explain(sub, diag, kind)
        return
    message, path, hint = _message(error, schema, path)
    # A rule without words of its own still gets a way to a fix: the field's documentation.
    fields = ".".join(str(p) for p in path if isinstance(p, str))
    yield diag(message, path, hint or f"see backfillctl explain {kind}.{fields}".rstrip("."))


def _message(
    error: ValidationError, schema: Mapping[str, Any], path: tuple[PathPart, ...]
) -> tuple[str, tuple[PathPart, ...], str | None]:
    """The message, path and hint of an error of one field, by the rule it breaks."""
    if error.validator == "not" and isinstance(error.instance, str):  # propertyNames
        reason = schema.get("not", {}).get("description")
        removal = f"remove it ({reason})" if reason else "remove it"
        return f"field {quote(error.instance)} cannot be set here", (*path, error.instance), removal
    explain = RULES.get(str(error.validator))
    if explain is None:
        return bounded(error), path, None
    message, hint = explain(error, schema, path)
    return message, path, hint


def _closest_branch(errors: Iterable[ValidationError]) -> list[ValidationError]:
    """The errors of the oneOf/anyOf branch the author most likely meant.

    That is a branch whose type the value has (a date string is explained by the
    date pattern, not by "is not of type 'object'"), then the one whose errors lie
    deepest in the value; ties go to the first branch.
    """
    branches: dict[Any, list[ValidationError]] = {}
    for sub in errors:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)

    def fit(errs: list[ValidationError]) -> tuple[bool, int]:
        wrong_type = any(e.validator == "type" and not e.path for e in errs)
        return wrong_type, -max(len(e.path) for e in errs)

    return min(branches.values(), key=fit)


# What a value of a field-specific pattern looks like (a field's description says what
# the field is for, not how to write it).
