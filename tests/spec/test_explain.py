"""`backfillctl explain`: field documentation read from the inlined JSON Schemas."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from backfill_ctl.errors import UsageError
from backfill_ctl.spec.explain import _children, explain, find_kind, type_name
from backfill_ctl.spec.schema import KINDS, kind_schema


def test_explain_an_integer_field() -> None:
    assert explain("Backfill.spec.groups") == "\n".join(
        [
            "KIND:     Backfill",
            "FIELD:    spec.groups <integer>",
            "",
            "DESCRIPTION:",
            "    1: one business date at a time. 2-10: the dates are cut into this many contiguous",
            "    groups that run in parallel, one date at a time inside each.",
            "",
            "DEFAULT: 1",
            "",
            "MINIMUM: 1",
            "",
            "MAXIMUM: 10",
        ]
    )


def test_explain_an_enum_field() -> None:
    assert explain("ResourceGroup.spec.type").splitlines() == [
        "KIND:     ResourceGroup",
        "FIELD:    spec.type <shared | exclusive | serverless>",
        "",
        "DESCRIPTION:",
        "    Kind of group; decides how long logs are kept (Config retention.logs).",
        "",
        "DEFAULT: shared",
        "",
        "ALLOWED:  shared, exclusive, serverless",
        "",
        "EXAMPLES:",
        '    "exclusive"',
    ]


def test_explain_a_required_field_with_a_pattern() -> None:
    lines = explain("Node.metadata.name").splitlines()
    assert lines[1] == "FIELD:    metadata.name <string>  (required)"
    assert "PATTERN: ^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$" in lines


def test_explain_a_oneof_field_lists_both_shapes_and_the_object_fields() -> None:
    assert explain("Backfill.spec.select.descendants").splitlines() == [
        "KIND:     Backfill",
        "FIELD:    spec.select.descendants <[]string | object>",
        "",
        "DESCRIPTION:",
        "    Method manual only: the descendants of the roots to include, as a list of names, or",
        "    {depth: N} for every descendant at most N levels below a root.",
        "",
        "EXAMPLES:",
        '    ["dwd_orders"]',
        '    {"depth": 2}',
        "",
        "FIELDS:",
        "    depth\t<integer>",
        "      Levels below the roots (1 = direct children).",
    ]


def test_explain_walks_into_a_oneof_branch() -> None:
    lines = explain("Backfill.spec.select.descendants.depth").splitlines()
    assert lines[1] == "FIELD:    spec.select.descendants.depth <integer>"
    assert "MINIMUM: 1" in lines


def test_explain_an_array_field_walks_into_its_items() -> None:
    text = explain("Backfill.spec.dates")
    assert text.splitlines()[1] == "FIELD:    spec.dates <[](string | object)>  (required)"
    assert "    from\t<string>\n      First business date of the range.\n" in text
    assert "    to\t<string>\n      Last business date of the range (inclusive).\n" in text
    item = explain("Backfill.spec.dates.from").splitlines()
    assert item[1] == "FIELD:    spec.dates.from <string>"
    assert "FORMAT: date" in item  # not the pattern that spells out each month's length
    assert not [line for line in item if line.startswith("PATTERN")]


def test_explain_an_array_of_one_of_objects() -> None:
    text = explain("Backfill.spec.alerts.notify")
    # three object shapes are one type: not "[]object | object | object"
    assert text.splitlines()[1] == "FIELD:    spec.alerts.notify <[]object>"
    assert [line for line in text.splitlines() if "\t" in line] == [
        "    webhook\t<string>",
        "    command\t<[]string | string>",
        "    email\t<string>",
    ]
    assert explain("Backfill.spec.alerts.notify.email").splitlines()[1] == (
        "FIELD:    spec.alerts.notify.email <string>"
    )


def test_explain_a_map_field() -> None:
    lines = explain("Node.metadata.labels").splitlines()
    assert lines[1] == "FIELD:    metadata.labels <map[string]string>"
    assert "FIELDS:" not in lines


def test_explain_a_kind() -> None:
    text = explain("Backfill")
    assert text.startswith(
        "KIND:     Backfill\n\nDESCRIPTION:\n"
        "    A reviewed request to re-run a slice of the DAG for a set of business dates.\n"
    )
    assert "FIELD:" not in text
    assert [line for line in text.splitlines() if "\t" in line] == [
        "    apiVersion\t<backfillctl.dev/v1alpha1>  (required)",
        "    kind\t<Backfill>  (required)",
        "    metadata\t<object>  (required)",
        "    spec\t<object>  (required)",
    ]


@pytest.mark.parametrize("name", ["backfill", "BACKFILL", "resourcegroup"])
def test_kind_names_are_case_insensitive(name: str) -> None:
    assert (
        find_kind(name) == {"backfill": "Backfill", "resourcegroup": "ResourceGroup"}[name.lower()]
    )


def test_recursive_tree() -> None:
    text = explain("Backfill.spec.select", recursive=True)
    assert text.split("FIELDS:\n")[1].splitlines() == [
        "    method\t<manual | link | workspace | descendants>  (required)",
        "    roots\t<[]string>",
        "    descendants\t<[]string | object>",
        "      depth\t<integer>",
        "    start\t<string>",
        "    ends\t<[]string>",
        "    workspaces\t<[]string>",
        "    includeRoot\t<boolean>",
        "    allow\t<[]string>",
        "    block\t<[]string>",
    ]


def test_recursive_tree_goes_through_arrays_and_every_level() -> None:
    tree = explain("Node", recursive=True).split("FIELDS:\n")[1].splitlines()
    assert "        resources\t<object>" in tree
    assert "          memory\t<string>" in tree
    assert "    apiVersion\t<backfillctl.dev/v1alpha1>  (required)" in tree
    notify = explain("Backfill.spec.alerts", recursive=True).split("FIELDS:\n")[1]
    assert notify.splitlines() == [
        "    when\t<failure | success | always | never>",
        "    notify\t<[]object>",
        "      webhook\t<string>",
        "      command\t<[]string | string>",
        "      email\t<string>",
    ]


def test_non_recursive_shows_one_level_with_descriptions() -> None:
    text = explain("Backfill.spec.select")
    assert "      depth" not in text
    assert "    descendants\t<[]string | object>\n      Method manual only:" in text


# -- errors --------------------------------------------------------------------------


def test_unknown_field_with_did_you_mean() -> None:
    with pytest.raises(UsageError) as exc:
        explain("Backfill.spec.grups")
    assert (exc.value.message, exc.value.hint) == (
        "Backfill.spec has no field 'grups'",
        "did you mean 'groups'?",
    )
    assert exc.value.exit_code == 2


def test_unknown_field_without_a_close_match_lists_the_fields() -> None:
    with pytest.raises(UsageError) as exc:
        explain("ResourceGroup.spec.zzz")
    assert (exc.value.message, exc.value.hint) == (
        "ResourceGroup.spec has no field 'zzz'",
        "fields of ResourceGroup.spec: type, concurrency",
    )


def test_a_field_below_a_scalar() -> None:
    with pytest.raises(UsageError) as exc:
        explain("Backfill.spec.groups.max")
    assert (exc.value.message, exc.value.hint) == (
        "Backfill.spec.groups has no field 'max'",
        "Backfill.spec.groups has no fields",
    )


@pytest.mark.parametrize(
    ("path", "message", "hint"),
    [
        ("Backfil.spec", "unknown kind 'Backfil'", "did you mean 'Backfill'?"),
        ("Nodes", "unknown kind 'Nodes'", "did you mean 'Node'?"),
        (
            "Pipeline.spec",
            "unknown kind 'Pipeline'",
            "use one of Workspace, ResourceGroup, Node, Backfill, Config",
        ),
    ],
)
def test_unknown_kind(path: str, message: str, hint: str) -> None:
    with pytest.raises(UsageError) as exc:
        explain(path)
    assert (exc.value.message, exc.value.hint) == (message, hint)


# -- every field can be explained ----------------------------------------------------


def field_paths(schema: dict[str, Any], prefix: str) -> Iterator[str]:
    for name, child in _children(schema).items():
        yield f"{prefix}.{name}"
        yield from field_paths(child, f"{prefix}.{name}")


@pytest.mark.parametrize("kind", KINDS)
def test_every_field_of_every_kind_is_explained(kind: str) -> None:
    paths = list(field_paths(kind_schema(kind), kind))
    assert len(paths) >= 6
    for path in paths:
        text = explain(path)
        assert "DESCRIPTION:\n    (none)" not in text, path
        assert "<any>" not in text.splitlines()[1], path


@pytest.mark.parametrize(
    ("schema", "name"),
    [
        ({"type": "array", "items": {"type": "string"}}, "[]string"),
        (
            {"type": "array", "items": {"oneOf": [{"type": "string"}, {"type": "object"}]}},
            "[](string | object)",
        ),
        ({"type": "object", "additionalProperties": {"type": "string"}}, "map[string]string"),
        ({"enum": [1, 3]}, "1 | 3"),
        ({"const": "x"}, "x"),
        ({"oneOf": [{"type": "object"}, {"type": "object"}]}, "object"),
        ({}, "any"),
    ],
)
def test_type_name(schema: dict[str, Any], name: str) -> None:
    assert type_name(schema) == name
