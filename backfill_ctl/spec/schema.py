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
_COMMON = "common.schema.json"
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


def schema_errors(kind: str, data: Any) -> list[ValidationError]:
    """jsonschema's errors for a document of `kind` (empty when valid)."""
    from fastjsonschema import JsonSchemaException

    try:
        _fast_check(kind)(data)
    except JsonSchemaException:
        return list(_validator(kind).iter_errors(data))
    return []


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
        hint = did_you_mean(str(kind), KINDS) or f"use one of {', '.join(KINDS)}"
        return None, [diag(f"unknown kind {kind!r}", ("kind",), hint)]
    errors = sorted(schema_errors(kind, data), key=_error_order)
    return kind, _misspelt_required([d for error in errors for d in _explain(error, diag)])


def _misspelt_required(diags: list[Diagnostic]) -> list[Diagnostic]:
    """A required field written with a typo is one mistake: the unknown field says so,
    and "missing required field" for it (a knock-on error) is left out."""
    meant: dict[tuple[tuple[PathPart, ...], str], Diagnostic] = {}
    for d in diags:
        if d.message.startswith("unknown field") and d.hint and d.hint.startswith("did you mean"):
            meant[(d.path[:-1], d.hint.split("'")[1])] = d
    out = []
    for d in diags:
        missing = re.fullmatch(r"missing required field '(.+)'", d.message)
        if missing and (d.path, missing.group(1)) in meant:
            continue
        if d in meant.values():
            d = replace(d, hint=f"{d.hint[:-1]} (a required field)" if d.hint else None)
        out.append(d)
    return out


def _error_order(error: ValidationError) -> tuple[int, list[str]]:
    return (len(error.absolute_path), [str(p) for p in error.absolute_path])


def _explain(error: ValidationError, diag: Any) -> Iterator[Diagnostic]:
    path = tuple(error.absolute_path)
    schema: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(schema.get("properties", {}))
        for key in sorted(set(error.instance) - set(allowed)):
            suggestion = did_you_mean(key, allowed) or (
                f"allowed fields: {', '.join(allowed)}" if allowed else None
            )
            yield diag(f"unknown field {key!r}", (*path, key), suggestion)
        return
    if error.validator in ("oneOf", "anyOf") and error.context:
        for sub in sorted(_closest_branch(error.context), key=_error_order):
            yield from _explain(sub, diag)
        return
    yield diag(*_message(error, schema, path))


def _message(
    error: ValidationError, schema: Mapping[str, Any], path: tuple[PathPart, ...]
) -> tuple[str, tuple[PathPart, ...], str | None]:
    """The message, path and hint of an error of one field, by the rule it breaks."""
    if error.validator == "not" and isinstance(error.instance, str):  # propertyNames
        reason = schema.get("not", {}).get("description")
        hint = f"remove it ({reason})" if reason else "remove it"
        return f"field {quote(error.instance)} cannot be set here", (*path, error.instance), hint
    explain = _RULES.get(str(error.validator))
    if explain is None:
        return _bounded(error), path, None
    message, hint = explain(error, schema, path)
    return message, path, hint


def _bounded(error: ValidationError) -> str:
    """jsonschema's message, with its quote of the value cut to a few hundred characters."""
    message = str(error.message)
    if len(message) <= 300:
        return message
    shown = repr(error.instance)
    return message.replace(shown, quote(error.instance)) if shown in message else message


Rule = Callable[
    ["ValidationError", Mapping[str, Any], tuple[PathPart, ...]], tuple[str, str | None]
]


def _const(
    error: ValidationError, schema: Mapping[str, Any], path: tuple[PathPart, ...]
) -> tuple[str, str | None]:
    if path[-1:] == ("apiVersion",):
        return _bounded(error), f"use apiVersion: {API_VERSION}"
    return _bounded(error), f"use {schema.get('const')!r}"


def _required(
    error: ValidationError, schema: Mapping[str, Any], path: tuple[PathPart, ...]
) -> tuple[str, str | None]:
    # jsonschema reports one error per missing field, naming it only in the message.
    missing = re.fullmatch(r"'(.+)' is a required property", error.message)
    message = f"missing required field {missing.group(1)!r}" if missing else error.message
    return message, "add the missing field"


_TYPE_WORDS = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping (field: value)",
    "null": "nothing",
}


def _type(
    error: ValidationError, schema: Mapping[str, Any], path: tuple[PathPart, ...]
) -> tuple[str, str | None]:
    value = error.instance
    expected = schema.get("type")
    names = [expected] if isinstance(expected, str) else list(expected or ())
    wanted = " or ".join(_TYPE_WORDS.get(n, n) for n in names) or "another type"
    message = f"{quote(value)} is not of type {' or '.join(repr(n) for n in names)}"
    if isinstance(value, bool):
        hint = "YAML reads unquoted yes/no/on/off/true/false as booleans; quote the value"
    elif isinstance(value, int | float) and "string" in names:
        hint = "quote the value to make it a string"
    elif value is None:
        hint = f"the value is missing: write {wanted} after the colon"
    elif isinstance(value, str) and names == ["array"]:
        hint = f"write a list, for example [{value[:40]}]"
    elif isinstance(value, str) and re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", value):
        hint = f"remove the quotes: this field takes {wanted}"
    else:
        hint = f"this field takes {wanted}, not {_type_name(value)}"
    return message, hint


def _bound(
    error: ValidationError, schema: Mapping[str, Any], path: tuple[PathPart, ...]
) -> tuple[str, str | None]:
    value, rule = quote(error.instance), str(error.validator)
    limit = schema.get(rule)
    words = {
        "minimum": ("less than the minimum", f"use {limit} or more"),
        "maximum": ("more than the maximum", f"use {limit} or less"),
        "exclusiveMinimum": ("not more than", f"use a value above {limit}"),
        "exclusiveMaximum": ("not less than", f"use a value below {limit}"),
    }[rule]
    return f"{value} is {words[0]} {limit}", words[1]


def _size(
    error: ValidationError, schema: Mapping[str, Any], path: tuple[PathPart, ...]
) -> tuple[str, str | None]:
    rule, value = str(error.validator), error.instance
    limit = schema.get(rule)
    if rule == "minItems":
        message = "the list is empty" if not value else f"the list has {len(value)} items"
        plural = "" if limit == 1 else "s"
        return f"{message}; at least {limit} needed", f"list at least {limit} item{plural}"
    if rule == "minLength":
        if not value:
            return "the value is empty", "write a value, or remove the field if it is optional"
        return f"{quote(value)} is too short", f"write at least {limit} characters"
    if rule == "maxLength":
        return f"{quote(value)} is too long", f"write at most {limit} characters"
    return _bounded(error), f"list at most {limit} items"


def _unique(
    error: ValidationError, schema: Mapping[str, Any], path: tuple[PathPart, ...]
) -> tuple[str, str | None]:
    repeated = next((v for i, v in enumerate(error.instance) if v in error.instance[:i]), None)
    return f"{quote(repeated)} is listed twice", "remove the repeated item"


def _pattern_rule(
    error: ValidationError, schema: Mapping[str, Any], path: tuple[PathPart, ...]
) -> tuple[str, str | None]:
    return f"{quote(error.instance)} is not valid here", _pattern_hint(schema)


def _enum(
    error: ValidationError, schema: Mapping[str, Any], path: tuple[PathPart, ...]
) -> tuple[str, str | None]:
    # No hint: the message itself lists the choices.
    choices = ", ".join(str(c) for c in schema.get("enum", ()))
    return f"{quote(error.instance)} is not one of: {choices}", None


def _format(
    error: ValidationError, schema: Mapping[str, Any], path: tuple[PathPart, ...]
) -> tuple[str, str | None]:
    return f"{quote(error.instance)} is not a valid {schema.get('format')}", _pattern_hint(schema)


_RULES: dict[str, Rule] = {
    "const": _const,
    "required": _required,
    "type": _type,
    "minimum": _bound,
    "maximum": _bound,
    "exclusiveMinimum": _bound,
    "exclusiveMaximum": _bound,
    "minItems": _size,
    "maxItems": _size,
    "minLength": _size,
    "maxLength": _size,
    "uniqueItems": _unique,
    "pattern": _pattern_rule,
    "enum": _enum,
    "format": _format,
}


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
_PATTERN_WORDS = {
    "^https?://": "write a URL that starts with http:// or https://",
    "^/": "write an absolute path, starting with /",
    "^sqlite:///": "write a sqlite:/// URL",
    "^[^@\\s]+@[^@\\s]+$": "write an e-mail address, name@domain",
    "^[A-Za-z_][A-Za-z0-9_]*$": "use letters, digits and _, not starting with a digit",
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$": "use lowercase letters, digits and -, not at either end",
}


def _pattern_hint(schema: Mapping[str, Any]) -> str:
    """What the value should look like: the shared format's own description, else words
    for the field's pattern, with an example when the schema gives one."""
    pattern = schema.get("pattern")
    formats = {d.get("pattern"): d for d in load_schema(_COMMON)["$defs"].values()}
    source = formats.get(pattern, {})
    text = source.get("description") or _PATTERN_WORDS.get(str(pattern))
    text = text or ("write it as in the example" if schema.get("examples") else None)
    text = text or f"it must match the pattern {pattern}"
    examples = source.get("examples") or schema.get("examples")
    if examples:
        text = f"{text.rstrip('.')}, for example {examples[0]!r}"
    return text


def _type_name(value: Any) -> str:
    return {list: "a list", str: "a string", type(None): "empty"}.get(type(value), "a scalar")
