"""`backfillctl schema KIND` and `backfillctl explain Kind.field.path`."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from backfill_ctl.spec.explain import explain
from tests.builders import backfill, config, node, resource_group, workspace
from tests.cli.helpers import run

EXAMPLES: dict[str, dict[str, Any]] = {
    "Workspace": workspace(),
    "ResourceGroup": resource_group(),
    "Node": node("a"),
    "Backfill": backfill(),
    "Config": config(limits={"maxRoots": 10}),
}


def refs(value: Any) -> list[str]:
    """Every "$ref" anywhere in a JSON value."""
    if isinstance(value, dict):
        own = [value["$ref"]] if "$ref" in value else []
        return own + [r for v in value.values() for r in refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in refs(v)]
    return []


@pytest.mark.parametrize("kind", EXAMPLES)
def test_schema_prints_a_self_contained_json_schema(kind: str) -> None:
    result = run("schema", kind.lower())

    assert (result.exit_code, result.stderr) == (0, "")
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == kind
    assert refs(schema) == []
    assert "$defs" not in result.stdout
    # It is the schema that is enforced: a valid document passes, a misspelt field fails.
    validator = Draft202012Validator(schema)
    assert list(validator.iter_errors(EXAMPLES[kind])) == []
    assert list(validator.iter_errors({**EXAMPLES[kind], "sepc": {}})) != []


def test_the_kind_is_matched_in_any_case() -> None:
    upper, exact = run("schema", "NODE"), run("schema", "Node")

    assert upper.exit_code == exact.exit_code == 0
    assert upper.stdout == exact.stdout


@pytest.mark.parametrize(
    ("args", "stderr"),
    [
        (("schema", "Nope"), ["error: unknown kind 'Nope'", "  hint: did you mean 'Node'?"]),
        (
            ("schema", "Job"),
            [
                "error: unknown kind 'Job'",
                "  hint: use one of Workspace, ResourceGroup, Node, Backfill, Config",
            ],
        ),
        (
            ("explain", "Backfill.spec.nope"),
            [
                "error: Backfill.spec has no field 'nope'",
                "  hint: fields of Backfill.spec: select, dates, timeWindow, runImmediately, "
                "order, groups, resourceGroup, executionWindow, alerts, checks, suspend, "
                "parameters",
            ],
        ),
        (
            ("explain", "Backfill.spec.grups"),
            ["error: Backfill.spec has no field 'grups'", "  hint: did you mean 'groups'?"],
        ),
        (
            ("explain", "Backfill.spec.groups.size"),
            [
                "error: Backfill.spec.groups has no field 'size'",
                "  hint: Backfill.spec.groups has no fields",
            ],
        ),
        (("explain", "Nod.spec"), ["error: unknown kind 'Nod'", "  hint: did you mean 'Node'?"]),
    ],
)
def test_an_unknown_kind_or_field_is_a_usage_error(
    args: tuple[str, ...], stderr: list[str]
) -> None:
    result = run(*args)

    assert result.exit_code == 2
    assert result.stderr.splitlines() == stderr
    assert result.stdout == ""


def test_explain_prints_the_documentation_of_a_field() -> None:
    result = run("explain", "Backfill.spec.groups")

    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == explain("Backfill.spec.groups") + "\n"  # text pinned in spec tests
    assert result.stdout.startswith("KIND:     Backfill\nFIELD:    spec.groups <integer>\n")


def test_explain_marks_required_fields_and_lists_choices() -> None:
    lines = run("explain", "backfill.spec.select.method").stdout.splitlines()

    method = "FIELD:    spec.select.method <manual | link | workspace | descendants>"
    assert lines[1] == method + "  (required)"
    assert "ALLOWED:  manual, link, workspace, descendants" in lines


def test_explain_recursive_shows_the_fields_below_as_a_tree() -> None:
    flat = run("explain", "Backfill.spec.select").stdout.splitlines()
    tree = run("explain", "Backfill.spec.select", "-r").stdout.splitlines()

    assert "    method\t<manual | link | workspace | descendants>  (required)" in tree
    assert "      depth\t<integer>" in tree  # descendants: {depth: N}, one level down
    assert "      depth\t<integer>" not in flat
