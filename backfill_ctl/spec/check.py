"""A schema's yes/no answer in a few closures: validity of a few documents, cheaply.

fastjsonschema compiles a kind's schema into ~100-200 KB of Python, 15-30 ms a kind
before the first document is checked: most of `validate specs/` and of a small
`apply`. `compile_check` turns a kind's inlined schema into nested closures instead
(about a millisecond), for the keywords our schemas use, with JSON Schema 2020-12's
meaning as jsonschema (the reference, which writes every message) gives it: its type
checks (an integral float is an integer, a bool is no number), its equality (True is
not 1) and our ECMA `pattern` (`$` only at the very end). A keyword it does not know
raises `Unsupported`, and the caller uses fastjsonschema for that kind.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import re

Check = Callable[[Any], bool]

# Keywords that say nothing of validity (format: jsonschema checks none by default).
_NOTES = frozenset(
    {"description", "examples", "title", "default", "$comment", "$schema", "$id", "format"}
)


class Unsupported(ValueError):
    """The schema has a keyword this module does not check."""


def compile_check(schema: Any, pattern: Callable[[str], re.Pattern[str]]) -> Check:
    """A function telling whether a value is valid against `schema` (no `$ref`: inlined).
    `pattern` compiles a `pattern` keyword's regex (ECMA's `$`, as the validator's)."""
    if schema is True:
        return lambda value: True
    if schema is False:
        return lambda value: False
    if not isinstance(schema, Mapping):
        raise Unsupported(f"a schema that is a {type(schema).__name__}")
    checks = [
        _keyword(name, argument, schema, pattern)
        for name, argument in schema.items()
        if name not in _NOTES and name not in ("then", "else")
    ]
    if len(checks) == 1:
        return checks[0]
    return lambda value: all(check(value) for check in checks)


def _keyword(
    name: str, argument: Any, schema: Mapping[str, Any], pattern: Callable[[str], Any]
) -> Check:
    if name == "type":
        return _type(argument)
    if name in ("properties", "additionalProperties", "required", "propertyNames"):
        return _object(name, argument, schema, pattern)
    if name in ("items", "minItems", "maxItems", "uniqueItems"):
        return _array(name, argument, schema, pattern)
    if name in ("pattern", "minLength", "maxLength"):
        return _string(name, argument, pattern)
    if name in ("minimum", "maximum"):
        return _number(name, argument)
    if name == "const":
        return lambda value: equal(value, argument)
    if name == "enum":
        return lambda value: any(equal(value, each) for each in argument)
    if name in ("oneOf", "anyOf", "allOf", "not", "if"):
        return _logic(name, argument, schema, pattern)
    raise Unsupported(f"keyword {name!r}")


def _type(argument: Any) -> Check:
    names = [argument] if isinstance(argument, str) else list(argument)
    unknown = set(names) - _TYPES.keys()
    if unknown:
        raise Unsupported(f"type {sorted(unknown)}")
    tests = [_TYPES[n] for n in names]
    return lambda value: any(test(value) for test in tests)


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Number)


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


_TYPES: dict[str, Check] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": _is_number,
    "integer": _is_integer,
}


def _object(name: str, argument: Any, schema: Mapping[str, Any], pattern: Any) -> Check:
    if "patternProperties" in schema:
        raise Unsupported("patternProperties")
    if name == "properties":
        subs = {key: compile_check(sub, pattern) for key, sub in argument.items()}
        return lambda v: (
            not isinstance(v, dict) or all(check(v[key]) for key, check in subs.items() if key in v)
        )
    if name == "required":
        return lambda v: not isinstance(v, dict) or all(key in v for key in argument)
    if name == "propertyNames":
        names = compile_check(argument, pattern)
        return lambda v: not isinstance(v, dict) or all(names(key) for key in v)
    return _additional(argument, schema, pattern)


def _additional(argument: Any, schema: Mapping[str, Any], pattern: Any) -> Check:
    """additionalProperties: the keys `properties` does not name."""
    known = frozenset(schema.get("properties", {}))
    if argument is False:
        return lambda v: not isinstance(v, dict) or known.issuperset(v)
    extra = compile_check(argument, pattern)
    return lambda v: (
        not isinstance(v, dict) or all(extra(item) for key, item in v.items() if key not in known)
    )


def _array(name: str, argument: Any, schema: Mapping[str, Any], pattern: Any) -> Check:
    if "prefixItems" in schema:
        raise Unsupported("prefixItems")
    if name == "items":
        each = compile_check(argument, pattern)
        return lambda v: not isinstance(v, list) or all(each(item) for item in v)
    if name == "minItems":
        return lambda v: not isinstance(v, list) or len(v) >= argument
    if name == "maxItems":
        return lambda v: not isinstance(v, list) or len(v) <= argument
    if not argument:
        return lambda v: True
    return lambda v: not isinstance(v, list) or unique(v)


def _string(name: str, argument: Any, pattern: Callable[[str], Any]) -> Check:
    if name == "pattern":
        return _pattern(argument, pattern)
    if name == "minLength":
        return lambda v: not isinstance(v, str) or len(v) >= argument
    return lambda v: not isinstance(v, str) or len(v) <= argument


def _pattern(argument: str, pattern: Callable[[str], Any]) -> Check:
    """The regex is compiled when a string is first checked against it: a kind's schema
    has a dozen patterns (~0.1 ms each to compile), a document meets a few of them."""
    compiled: list[Callable[[str], Any]] = []

    def check(v: Any) -> bool:
        if not isinstance(v, str):
            return True
        if not compiled:
            compiled.append(pattern(argument).search)
        return compiled[0](v) is not None

    return check


def _number(name: str, argument: Any) -> Check:
    if name == "minimum":
        return lambda v: not _is_number(v) or v >= argument
    return lambda v: not _is_number(v) or v <= argument


def _logic(name: str, argument: Any, schema: Mapping[str, Any], pattern: Any) -> Check:
    if name == "not":
        inner = compile_check(argument, pattern)
        return lambda v: not inner(v)
    if name == "if":
        test = compile_check(argument, pattern)
        then = compile_check(schema.get("then", True), pattern)
        otherwise = compile_check(schema.get("else", True), pattern)
        return lambda v: then(v) if test(v) else otherwise(v)
    branches = [compile_check(sub, pattern) for sub in argument]
    if name == "allOf":
        return lambda v: all(branch(v) for branch in branches)
    if name == "anyOf":
        return lambda v: any(branch(v) for branch in branches)
    return lambda v: sum(1 for branch in branches if branch(v)) == 1


def equal(one: Any, two: Any) -> bool:
    """jsonschema's equality: a bool is no number, sequences and mappings by item."""
    if one is two:
        return True
    if isinstance(one, str) or isinstance(two, str):
        return bool(one == two)
    if isinstance(one, Sequence) and isinstance(two, Sequence):
        return len(one) == len(two) and all(equal(a, b) for a, b in zip(one, two, strict=True))
    if isinstance(one, Mapping) and isinstance(two, Mapping):
        return one.keys() == two.keys() and all(equal(one[k], two[k]) for k in one)
    if isinstance(one, bool) or isinstance(two, bool):
        return type(one) is type(two) and one == two
    return bool(one == two)


def unique(items: list[Any]) -> bool:
    """jsonschema's uniqueItems: no two items `equal`."""
    if all(type(item) is str for item in items):
        return len(set(items)) == len(items)
    return not any(equal(a, b) for n, a in enumerate(items) for b in items[n + 1 :])
