"""Checks across documents: references, loops, templates, overrides, windows."""

from __future__ import annotations

from typing import Any

from backfill_ctl.core.semantics import validate
from backfill_ctl.errors import Diagnostic
from tests.builders import backfill, config, node, resource_group, specs_of, workspace


def problems(*docs: dict[str, Any], actor: str | None = None) -> list[tuple[Any, ...]]:
    specs = specs_of(*docs)
    assert not specs.diagnostics, [d.format() for d in specs.diagnostics]
    _, diagnostics = validate(specs, actor)
    return [_row(d) for d in diagnostics]


def _row(d: Diagnostic) -> tuple[Any, ...]:
    return (d.doc, d.path, d.message, d.hint)


WS = workspace("ws")


def test_unknown_workspace_upstream_and_resource_group_of_a_node() -> None:
    got = problems(
        WS,
        resource_group("etl"),
        node("a", workspace="wz", upstream=["bb", "b"], resourceGroup="elt"),
        node("b"),
    )
    assert got == [
        (
            2,
            ("metadata", "workspace"),
            "unknown workspace 'wz'",
            "add a Workspace document with that name, or use one of: ws",
        ),
        (2, ("spec", "upstream", 0), "unknown upstream node 'bb'", "did you mean 'b'?"),
        (2, ("spec", "resourceGroup"), "unknown resource group 'elt'", "did you mean 'etl'?"),
    ]


def test_unknown_resource_group_of_a_backfill() -> None:
    got = problems(WS, node("a"), backfill(resourceGroup="pool"))
    assert got == [
        (
            2,
            ("spec", "resourceGroup"),
            "unknown resource group 'pool'",
            "use follow-node or a ResourceGroup's name",
        )
    ]
    got = problems(WS, resource_group("etl-exclusive"), node("a"), backfill(resourceGroup="pool"))
    assert got[0][3] == "use follow-node or a ResourceGroup's name, or use one of: etl-exclusive"


def test_a_dependency_loop_is_reported_with_its_path_and_no_scope_is_computed() -> None:
    specs = specs_of(
        WS,
        node("a", upstream=["c"]),
        node("b", upstream=["a"]),
        node("c", upstream=["b"]),
        backfill(),
    )
    scopes, diagnostics = validate(specs, None)
    assert scopes == {}
    assert [d.nodes for d in diagnostics] == [("a", "b", "c")]
    assert [_row(d) for d in diagnostics] == [
        (
            1,
            ("spec", "upstream", 0),
            "dependency loop: a -> b -> c -> a",
            "remove one of these upstream entries to break the loop",
        )
    ]


def test_unknown_tokens_in_commands_env_and_parameters() -> None:
    got = problems(
        WS,
        node(
            "a",
            command=["run", "${foo}"],
            parameters={"pt": "$[hh]"},
            run={"command": ["run", "${foo}"], "env": {"X": "${bar}"}},
        ),
    )
    assert [(path, message.split(":")[0]) for _, path, message, _ in got] == [
        (("spec", "parameters", "pt"), "invalid scheduled-time expression $[hh]"),
    ]
    got = problems(WS, node("a", run={"command": ["run", "${foo}"], "env": {"X": "${bar}"}}))
    assert [(path, message) for _, path, message, _ in got] == [
        (("spec", "run", "command", 1), "unknown parameter or time expression ${foo}"),
        (("spec", "run", "env", "X"), "unknown parameter or time expression ${bar}"),
    ]


def test_nodes_written_alike_each_get_their_template_errors() -> None:
    """Nodes of the same text are checked once (their answer is shared): each still has
    its own diagnostic, for itself, and a node that differs is checked on its own."""
    bad = {"command": ["run", "${foo}"], "env": {"X": "${bar}"}}
    specs = specs_of(WS, node("a", run=bad), node("b", run=bad), node("c", run=bad))
    _, diagnostics = validate(specs, None)
    assert [(d.nodes, d.path) for d in diagnostics] == [
        (("a",), ("spec", "run", "command", 1)),
        (("a",), ("spec", "run", "env", "X")),
        (("b",), ("spec", "run", "command", 1)),
        (("b",), ("spec", "run", "env", "X")),
        (("c",), ("spec", "run", "command", 1)),
        (("c",), ("spec", "run", "env", "X")),
    ]
    assert (
        problems(WS, node("a", run={"command": ["run", "${foo}"]}, parameters={"foo": "x"})) == []
    )


def test_a_parameter_cycle_is_an_error_on_that_parameter() -> None:
    got = problems(WS, node("a", parameters={"x": "${y}", "y": "${x}"}))
    assert [(path, message) for _, path, message, _ in got] == [
        (("spec", "parameters", "x"), "parameter cycle: x -> y -> x")
    ]


def test_an_override_must_make_sense_for_every_node_in_scope() -> None:
    got = problems(
        WS,
        node("a", parameters={"pt": "${yyyymmdd}"}),
        node("b", upstream=["a"]),
        node("c", upstream=["a"]),
        backfill(parameters={"dir": "/data/${pt}"}),
    )
    assert got == [
        (
            4,
            ("spec", "parameters", "dir"),
            "unknown parameter or time expression ${pt} (for node b, c)",
            "define the parameter on those nodes, or use a time expression",
        )
    ]


def test_a_node_that_fails_on_its_own_is_not_blamed_on_the_overrides() -> None:
    """Its errors are the node's, reported there once; the Backfill's overrides are
    checked on the other nodes of its scope."""
    got = problems(
        WS,
        node("a", command="run ${x}"),
        node(
            "b",
            upstream=["a"],
            parameters={"pt": "1"},
            run={"command": "run ${pt}", "env": {"BACKFILL_PARAM_PT": "x"}},
        ),
        node("c", upstream=["a"]),
        backfill(parameters={"dir": "/data/${pt}"}),
    )
    assert [(doc, path, message) for doc, path, message, _ in got] == [
        (1, ("spec", "run", "command"), "unknown parameter or time expression ${x}"),
        (
            2,
            ("spec", "run", "env", "BACKFILL_PARAM_PT"),
            "BACKFILL_PARAM_PT is where parameter pt's value is exported",
        ),
        (
            4,
            ("spec", "parameters", "dir"),
            "unknown parameter or time expression ${pt} (for node c)",
        ),
    ]


def test_a_sub_daily_node_needs_a_tick_in_the_time_window() -> None:
    got = problems(
        WS,
        node("h", "*/30 * * * *"),
        backfill(
            select={"method": "descendants", "roots": ["h"]},
            timeWindow={"from": "10:01", "to": "10:29"},
        ),
    )
    assert got == [
        (
            2,
            ("spec", "timeWindow"),
            "minutely node 'h' (*/30 * * * *) has no scheduled time between 10:01 and 10:29",
            "widen timeWindow to include one of its times (00:00, 00:30, 01:00, 01:30 ...)",
        )
    ]


def test_a_daily_node_outside_the_window_is_not_an_error() -> None:
    assert (
        problems(
            WS,
            node("d", "0 2 * * *"),
            backfill(
                select={"method": "descendants", "roots": ["d"]},
                timeWindow={"from": "10:00", "to": "11:00"},
            ),
        )
        == []
    )


def test_selection_problems_are_part_of_validation() -> None:
    got = problems(
        WS, node("a"), node("b"), backfill(select={"method": "link", "start": "a", "ends": ["b"]})
    )
    assert got == [
        (
            3,
            ("spec", "select", "ends", 0),
            "end 'b' is not reachable from start 'a'",
            "pick an end downstream of the start, or a start upstream of every end",
        )
    ]


# -- documents built without a field (spec.salvage) ------------------------------------


def test_a_config_limit_written_wrong_is_not_applied_and_the_other_one_is() -> None:
    specs = specs_of(
        config(limits={"maxRoots": "one", "maxNodes": 2}),
        WS,
        node("a"),
        node("b", upstream=["a"]),
        node("c", upstream=["b"]),
        backfill(select={"method": "manual", "roots": ["a", "b", "c"]}),
    )
    assert [d.path for d in specs.diagnostics] == [("spec", "limits", "maxRoots")]
    _, diagnostics = validate(specs, None)
    assert [d.message for d in diagnostics] == ["the scope holds 3 nodes, more than the limit of 2"]


def test_a_backfill_without_a_part_of_its_selection_is_not_selected() -> None:
    specs = specs_of(
        WS, node("a"), backfill(select={"method": "descendants", "roots": ["zz"], "blok": []})
    )
    assert [d.path for d in specs.diagnostics] == [("spec", "select", "blok")]
    assert validate(specs, None) == ({}, [])


def test_a_node_without_its_parameters_is_not_told_they_are_unknown() -> None:
    specs = specs_of(
        WS, node("a", "0 2 * *", command=["x", "${pt}", "${zz}"], parameters={"pt": 1})
    )
    assert [d.code for d in specs.diagnostics] == ["schema", "bad-cron"]
    assert validate(specs, None) == ({}, [])
    # without the wrong value, the unknown ${zz} is found
    specs = specs_of(WS, node("a", command=["x", "${pt}", "${zz}"], parameters={"pt": "1"}))
    assert [d.message for d in validate(specs, None)[1]] == [
        "unknown parameter or time expression ${zz}"
    ]


def test_a_held_back_node_still_has_its_references_checked() -> None:
    specs = specs_of(WS, node("a", upstream=["no way"], workspace="wz", resourceGroup="rg"))
    assert list(specs.nodes) == [] and [n.name for n in specs.held_back] == ["a"]
    assert [d.message for d in validate(specs, None)[1]] == [
        "unknown workspace 'wz'",
        "unknown resource group 'rg'",
    ]
