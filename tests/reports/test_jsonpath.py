"""The JSONPath subset of `get -o jsonpath=`, custom columns and --sort-by."""

from __future__ import annotations

from typing import Any

import pytest

from backfill_ctl.reports import jsonpath
from backfill_ctl.reports.jsonpath import JSONPathError, parse, relaxed, render, values

DATA: dict[str, Any] = {
    "kind": "List",
    "items": [
        {"metadata": {"name": "a", "labels": {"team": "x"}}, "status": {"state": "ok", "n": 1}},
        {"metadata": {"name": "b", "labels": {}}, "status": {"state": "bad", "n": 2}},
        {"metadata": {"name": "c"}, "status": {"state": None, "done": True}},
    ],
}


@pytest.mark.parametrize(
    ("template", "text"),
    [
        ("{.items[*].metadata.name}", "a b c"),
        ("{.items[0].status.state}", "ok"),
        ("{.items[-1].metadata.name}", "c"),
        ("{.items[0:2].metadata.name}", "a b"),
        ("{.items[1:].metadata.name}", "b c"),
        ("{.kind}", "List"),
        ("{$.kind}", "List"),
        ("kind={.kind}!", "kind=List!"),
        ("{.items[0].metadata.labels['team']}", "x"),
        ('{.items[0].metadata.labels["team"]}', "x"),
        ("{.items[0].metadata.labels.*}", "x"),
        ("{.items[*].status.n}", "1 2"),
        ("{.items[2].status}", '{"state": null, "done": true}'),
        ("{.items[2].status.done}", "true"),
        ("{.items[*].missing}", ""),
        ("{.items[7].metadata.name}", ""),
        ('{range .items[*]}{.metadata.name}{"\\n"}{end}', "a\nb\nc\n"),
        (
            '{range .items[*]}{.metadata.name}{"\\t"}{$.kind}{"\\n"}{end}',
            "a\tList\nb\tList\nc\tList\n",
        ),
        ("{range .items[*]}[{range .metadata.labels.*}{@}{end}]{end}", "[x][][]"),
        ("plain text", "plain text"),
    ],
)
def test_templates(template: str, text: str) -> None:
    assert render(parse(template), DATA) == text


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("{.items[}", "cannot read"),
        ("{.items", "not closed"),
        ("{.items[?(@.x)]}", "filters"),
        ("{..name}", "recursive descent"),
        ("{range .items[*]}{.a}", "without its {end}"),
        ("{.a}{end}", "{end} without a {range}"),
        ("{items}", "starts with a dot"),
        ("{.}", "field name is missing"),
        ("}", "closing brace"),
        ('{"\\q"}', "malformed string"),
        ("{.items[x]}", "cannot read"),
        ("", "empty"),
        ("{}", "empty"),
    ],
)
def test_a_malformed_template_is_a_usage_error(template: str, why: str) -> None:
    with pytest.raises(JSONPathError) as caught:
        parse(template)
    assert caught.value.exit_code == 2
    assert why in str(caught.value)
    assert caught.value.hint is not None and "{.items[*].metadata.name}" in caught.value.hint


def test_the_relaxed_form_of_columns_and_sort_keys() -> None:
    item = DATA["items"][0]
    for text in (".metadata.name", "metadata.name", "{.metadata.name}"):
        assert values(relaxed(text), item) == ["a"]
    assert values(relaxed(".status"), item) == [{"state": "ok", "n": 1}]
    assert jsonpath.text_of(3) == "3"
