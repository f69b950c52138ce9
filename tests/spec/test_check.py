"""spec.check: the closures' answer is jsonschema's on the cases where Python's own
semantics differ from JSON Schema's (bool and numbers, integral floats, ECMA `$`);
tests/spec/test_schema.py checks every kind's schema against jsonschema on thousands
of documents."""

from __future__ import annotations

import re
from typing import Any

import pytest
from jsonschema import Draft202012Validator, validators

from backfill_ctl.spec import schema
from backfill_ctl.spec.check import Unsupported, compile_check
from backfill_ctl.spec.schema import _ecma_regex

CASES: list[tuple[dict[str, Any], Any]] = [
    ({"type": "integer"}, 2.0),
    ({"type": "integer"}, 2.5),
    ({"type": "integer"}, True),
    ({"type": "number"}, False),
    ({"type": ["string", "null"]}, None),
    ({"const": 1}, True),
    ({"const": True}, True),
    ({"const": 1}, 1.0),
    ({"enum": ["a", 0]}, False),
    ({"const": [1, "a"]}, [True, "a"]),
    ({"uniqueItems": True}, [1, True]),
    ({"uniqueItems": True}, [1, 1.0]),
    ({"uniqueItems": True}, [{"a": 1}, {"a": 1}]),
    ({"uniqueItems": True}, ["a", "b"]),
    ({"minimum": 1}, True),
    ({"minimum": 1}, "0"),
    ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, 3),
    ({"oneOf": [{"type": "integer"}, {"type": "string"}]}, 3),
    ({"if": {"type": "string"}, "then": {"minLength": 2}, "else": {"minimum": 5}}, "a"),
    ({"if": {"type": "string"}, "then": {"minLength": 2}, "else": {"minimum": 5}}, 4),
    ({"not": {"type": "object"}}, {}),
    ({"propertyNames": {"pattern": "^[a-z]+$"}}, {"ab": 1, "c\n": 2}),
    ({"additionalProperties": False, "properties": {"a": {}}}, {"a": 1, "b": 2}),
    ({"additionalProperties": {"type": "string"}, "properties": {"a": {}}}, {"a": 1, "b": "x"}),
    ({"required": ["a"], "type": "object"}, {"b": 1}),
    ({"required": ["a"]}, []),
    ({"items": {"type": "string"}, "minItems": 1}, ["x", 1]),
    ({"maxItems": 1, "maxLength": 1}, "xy"),
]


@pytest.mark.parametrize(("schema_", "value"), CASES)
def test_the_closures_answer_as_jsonschema(schema_: dict[str, Any], value: Any) -> None:
    strict = validators.extend(Draft202012Validator, {"pattern": schema._pattern})  # as ours
    assert compile_check(schema_, _ecma_regex)(value) == strict(schema_).is_valid(value)


def test_pattern_dollar_is_the_very_end() -> None:
    assert not compile_check({"pattern": "^[a-z]+$"}, _ecma_regex)("abc\n")


def test_a_pattern_is_compiled_when_a_string_is_first_checked_against_it() -> None:
    """A kind's schema has a dozen patterns; a document meets a few (issue 15)."""
    compiled: list[str] = []

    def pattern(text: str) -> re.Pattern[str]:
        compiled.append(text)
        return _ecma_regex(text)

    check = compile_check(
        {"properties": {"a": {"pattern": "^x$"}, "b": {"pattern": "^y$"}}}, pattern
    )
    assert compiled == []
    assert check({"a": "x"}) and not check({"a": "x\n"}) and check({"a": 1})
    assert not check({"a": "z"}) and check({"b": "y"})
    assert compiled == ["^x$", "^y$"]  # each once


def test_an_unknown_keyword_is_refused() -> None:
    with pytest.raises(Unsupported):
        compile_check({"patternProperties": {"^x": {}}}, _ecma_regex)
    with pytest.raises(Unsupported):
        compile_check({"type": "object", "dependentRequired": {}}, _ecma_regex)


def test_many_documents_of_a_kind_go_to_the_compiled_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(schema, "SMALL", 2)
    monkeypatch.setattr(schema, "_checked", {})
    used: list[str] = []
    fast = schema._fast_check

    def counting(kind: str) -> Any:
        used.append(kind)
        return fast(kind)

    monkeypatch.setattr(schema, "_fast_check", counting)
    doc = {"apiVersion": schema.API_VERSION, "kind": "Workspace", "metadata": {"name": "w"}}
    answers = [schema.is_valid("Workspace", {**doc, "spec": {}}) for _ in range(4)]

    assert used == ["Workspace", "Workspace"]
    assert len(set(answers)) == 1
