"""Messages and hints for the JSON Schema errors of a spec document, by the rule broken.

`spec.schema` validates; this module words each of jsonschema's errors for a spec
author: what is wrong (quoting at most a few hundred characters of the value, see
`errors.quote`) and a hint that fixes it, never the schema's description of the field.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from backfill_ctl.errors import PathPart, did_you_mean, quote

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from jsonschema.exceptions import ValidationError

    Rule = Callable[
        [ValidationError, Mapping[str, Any], tuple[PathPart, ...]], tuple[str, str | None]
    ]


def bounded(error: ValidationError) -> str:
    """jsonschema's message, with its quote of the value cut to a few hundred characters."""
    message = str(error.message)
    if len(message) <= 300:
        return message
    shown = repr(error.instance)
    return message.replace(shown, quote(error.instance)) if shown in message else message


def _const(
    error: ValidationError, schema: Mapping[str, Any], path: tuple[PathPart, ...]
) -> tuple[str, str | None]:
    if path[-1:] == ("apiVersion",):
        from backfill_ctl.spec.schema import API_VERSION

        return bounded(error), f"use apiVersion: {API_VERSION}"
    return bounded(error), f"use {schema.get('const')!r}"


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
        hint = f"this field takes {wanted}, not {type_name(value)}"
    return message, hint


def _bound(
    error: ValidationError, schema: Mapping[str, Any], path: tuple[PathPart, ...]
) -> tuple[str, str | None]:
    value, rule = quote(error.instance), str(error.validator)
    limit = schema.get(rule)
    words = {
        "minimum": ("less than the minimum of", f"use {limit} or more"),
        "maximum": ("more than the maximum of", f"use {limit} or less"),
        "exclusiveMinimum": ("not more than", f"use a value above {limit}"),
        "exclusiveMaximum": ("not less than", f"use a value below {limit}"),
    }[rule]
    return f"{value} is {words[0]} {limit}", words[1]


def _size(
    error: ValidationError, schema: Mapping[str, Any], path: tuple[PathPart, ...]
) -> tuple[str, str | None]:
    rule, value = str(error.validator), error.instance
    limit: Any = schema.get(rule)
    value = value if isinstance(value, str | list) else ""
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
    return bounded(error), f"list at most {limit} items"


def _unique(
    error: ValidationError, schema: Mapping[str, Any], path: tuple[PathPart, ...]
) -> tuple[str, str | None]:
    items: list[Any] = list(error.instance) if isinstance(error.instance, list) else []
    repeated = next((v for i, v in enumerate(items) if v in items[:i]), None)
    return f"{quote(repeated)} is listed twice", "remove the repeated item"


def _pattern_rule(
    error: ValidationError, schema: Mapping[str, Any], path: tuple[PathPart, ...]
) -> tuple[str, str | None]:
    if schema.get("format") == "date":  # its pattern also knows each month's length
        return f"{quote(error.instance)} is not a calendar date", pattern_hint(schema)
    return f"{quote(error.instance)} is not valid here", pattern_hint(schema)


def _enum(
    error: ValidationError, schema: Mapping[str, Any], path: tuple[PathPart, ...]
) -> tuple[str, str | None]:
    allowed = [str(c) for c in schema.get("enum", ())]
    choices = ", ".join(allowed)
    message = f"{quote(error.instance)} is not one of: {choices}"
    if isinstance(error.instance, str):  # a typo, or the wrong case, of an allowed value
        by_lower = {c.lower(): c for c in allowed}
        if error.instance.lower() in by_lower:
            return message, f"did you mean {by_lower[error.instance.lower()]!r}?"
        close = did_you_mean(error.instance, allowed)
        if close:
            return message, close
    return message, f"use one of: {choices}"


def _one_of(
    error: ValidationError, schema: Mapping[str, Any], path: tuple[PathPart, ...]
) -> tuple[str, str | None]:
    """A value that fits more than one branch of a oneOf (errors of no branch come with
    their own context and are explained by the branch that fits best)."""
    branches = schema.get("oneOf", ())
    fields = [b["required"][0] for b in branches if list(b) == ["required"] and b["required"]]
    if len(fields) == len(branches) == 2 and isinstance(error.instance, dict):
        one, two = fields
        return (
            f"both {one!r} and {two!r} are set; only one of them may be",
            f"remove {one!r} or {two!r}",
        )
    return bounded(error), None


def _format(
    error: ValidationError, schema: Mapping[str, Any], path: tuple[PathPart, ...]
) -> tuple[str, str | None]:
    return f"{quote(error.instance)} is not a valid {schema.get('format')}", pattern_hint(schema)


RULES: dict[str, Rule] = {
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
    "oneOf": _one_of,
    "format": _format,
}


_PATTERN_WORDS = {
    "^https?://": "write a URL that starts with http:// or https://",
    "^/": "write an absolute path, starting with /",
    "^sqlite:///": "write a sqlite:/// URL",
    "^[^@\\s]+@[^@\\s]+$": "write an e-mail address, name@domain",
    "^[A-Za-z_][A-Za-z0-9_]*$": "use letters, digits and _, not starting with a digit",
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$": "use lowercase letters, digits and -, not at either end",
}


def pattern_hint(schema: Mapping[str, Any]) -> str:
    """What the value should look like: the shared format's own description, else words
    for the field's pattern, with an example when the schema gives one."""
    pattern = schema.get("pattern")
    from backfill_ctl.spec.schema import COMMON, load_schema

    formats = {d.get("pattern"): d for d in load_schema(COMMON)["$defs"].values()}
    source = formats.get(pattern, {})
    text = source.get("description") or _PATTERN_WORDS.get(str(pattern))
    text = text or ("write it as in the example" if schema.get("examples") else None)
    text = text or f"it must match the pattern {pattern}"
    examples = source.get("examples") or schema.get("examples")
    if examples:
        text = f"{text.rstrip('.')}, for example {examples[0]!r}"
    return text


def type_name(value: Any) -> str:
    return {list: "a list", str: "a string", type(None): "empty"}.get(type(value), "a scalar")
