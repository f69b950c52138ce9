"""Selection (DESIGN §3 select, §5.2): methods, block/allow, bridging, roles, permissions."""

from __future__ import annotations

from typing import Any

import pytest

from backfill_ctl.core.selection import Scope, select
from backfill_ctl.errors import Diagnostic
from backfill_ctl.spec.model import Limits
from tests.builders import backfill, node, specs_of, workspace

#   a -> b -> c -> d
#   a -> e            (e in workspace "other")
#   x -> c            (x: a second source)
GRAPH = [
    workspace("ws", operators=("op",)),
    workspace("other"),
    node("a"),
    node("b", upstream=["a"]),
    node("c", upstream=["b", "x"]),
    node("d", upstream=["c"]),
    node("e", upstream=["a"], workspace="other"),
    node("x"),
]


def run(
    select_: dict[str, Any],
    *,
    actor: str | None = None,
    limits: Limits | None = None,
    docs: list[dict[str, Any]] | None = None,
) -> tuple[Scope | None, list[Diagnostic]]:
    specs = specs_of(*(docs or GRAPH), backfill(select=select_))
    assert not specs.errors, [d.format() for d in specs.errors]
    return select(specs.catalog(), specs.backfills["bf"], limits or Limits(), actor)


def scope_of(select_: dict[str, Any], **kwargs: Any) -> Scope:
    scope, diagnostics = run(select_, **kwargs)
    assert scope is not None, [d.format() for d in diagnostics]
    return scope


def messages(diagnostics: list[Diagnostic]) -> list[tuple[str, str, str]]:
    return [(d.severity, d.code, d.message) for d in diagnostics]


# -- methods --------------------------------------------------------------------------


def test_descendants_selects_roots_and_everything_below_in_topological_order() -> None:
    scope = scope_of({"method": "descendants", "roots": ["b"]})
    assert scope.nodes == ("b", "c", "d")


def test_manual_without_descendants_is_the_roots_only() -> None:
    assert scope_of({"method": "manual", "roots": ["b", "x"]}).nodes == ("b", "x")


def test_manual_with_named_descendants() -> None:
    assert scope_of({"method": "manual", "roots": ["a"], "descendants": ["b", "e"]}).nodes == (
        "a",
        "b",
        "e",
    )


@pytest.mark.parametrize(
    ("depth", "nodes"),
    [
        (1, ("a", "b", "e")),
        (2, ("a", "b", "c", "e")),
        (9, ("a", "b", "c", "d", "e")),
    ],
)
def test_manual_with_a_depth_takes_that_many_levels(depth: int, nodes: tuple[str, ...]) -> None:
    assert (
        scope_of({"method": "manual", "roots": ["a"], "descendants": {"depth": depth}}).nodes
        == nodes
    )


def test_manual_descendant_that_is_not_below_a_root_is_an_error() -> None:
    scope, diagnostics = run({"method": "manual", "roots": ["b"], "descendants": ["e"]})
    assert scope is None
    (d,) = diagnostics
    assert (d.path, d.message) == (
        ("spec", "select", "descendants", 0),
        "'e' is not a descendant of the roots (b)",
    )


def test_link_takes_every_node_between_start_and_ends() -> None:
    assert scope_of({"method": "link", "start": "a", "ends": ["d"]}).nodes == ("a", "b", "c", "d")
    # x is an ancestor of d but not a descendant of a: not between them
    assert "x" not in scope_of({"method": "link", "start": "a", "ends": ["d"]}).nodes


def test_a_link_may_start_and_end_on_one_node() -> None:
    assert scope_of({"method": "link", "start": "c", "ends": ["c"]}).nodes == ("c",)


def test_link_end_not_reachable_from_start_is_an_error_naming_both() -> None:
    scope, diagnostics = run({"method": "link", "start": "b", "ends": ["d", "e"]})
    assert scope is None
    (d,) = diagnostics
    assert d.path == ("spec", "select", "ends", 1)
    assert d.message == "end 'e' is not reachable from start 'b'"
    assert d.hint == "pick an end downstream of the start, or a start upstream of every end"


def test_workspace_method_takes_descendants_in_the_chosen_workspaces() -> None:
    assert scope_of({"method": "workspace", "roots": ["a"], "workspaces": ["other"]}).nodes == (
        "a",
        "e",
    )
    assert scope_of(
        {"method": "workspace", "roots": ["a"], "workspaces": ["other"], "includeRoot": False}
    ).nodes == ("e",)


def test_workspace_method_allow_adds_descendants_from_other_workspaces() -> None:
    scope = scope_of(
        {"method": "workspace", "roots": ["a"], "workspaces": ["other"], "allow": ["d"]}
    )
    assert scope.nodes == ("a", "d", "e")
    assert scope.upstream["d"] == ("a",)  # bridged through b and c


def test_workspace_without_descendants_is_a_warning() -> None:
    scope, diagnostics = run({"method": "workspace", "roots": ["b"], "workspaces": ["other"]})
    assert scope is not None and scope.nodes == ("b",)
    assert messages(diagnostics) == [
        ("warning", "empty-workspace", "workspace 'other' holds no descendant of the roots")
    ]


# -- unknown names and limits --------------------------------------------------------


def test_unknown_names_are_errors_with_a_suggestion() -> None:
    scope, diagnostics = run({"method": "descendants", "roots": ["a", "bb"], "block": ["zz"]})
    assert scope is None
    got = [(d.path, d.message, d.hint) for d in diagnostics]
    assert got == [
        (("spec", "select", "roots", 1), "unknown node 'bb'", "did you mean 'b'?"),
        (("spec", "select", "block", 0), "unknown node 'zz'", "add a Node with that name"),
    ]


def test_unknown_link_start_points_at_the_start_field() -> None:
    _, diagnostics = run({"method": "link", "start": "nope", "ends": ["d"]})
    assert [(d.path, d.message) for d in diagnostics] == [
        (("spec", "select", "start"), "unknown node 'nope'")
    ]


def test_more_roots_than_the_limit_is_an_error() -> None:
    scope, diagnostics = run(
        {"method": "manual", "roots": ["a", "b", "x"]}, limits=Limits(max_roots=2)
    )
    assert scope is None
    (d,) = diagnostics
    assert d.message == "3 roots, more than the limit of 2"
    assert d.hint == "split the backfill, or raise Config spec.limits.maxRoots"


def test_more_scope_nodes_than_the_limit_is_an_error() -> None:
    scope, diagnostics = run({"method": "descendants", "roots": ["a"]}, limits=Limits(max_nodes=4))
    assert scope is None
    assert [d.message for d in diagnostics] == ["the scope holds 5 nodes, more than the limit of 4"]


# -- block ------------------------------------------------------------------------------


def test_blocked_intermediate_stays_as_dry_run_with_a_warning() -> None:
    scope, diagnostics = run({"method": "descendants", "roots": ["a"], "block": ["c"]})
    assert scope is not None
    assert scope.dry_run == {"c": "blocklisted"}
    assert "c" in scope.nodes
    assert messages(diagnostics) == [
        (
            "warning",
            "dry-run-intermediate",
            "blocked node 'c' is an intermediate node: it is dry-run, and its descendants may "
            "read missing data",
        )
    ]


def test_blocked_leaf_and_blocked_root_are_left_out() -> None:
    scope = scope_of({"method": "descendants", "roots": ["a"], "block": ["a", "d"]})
    assert scope.left_out == ("a", "d")
    assert scope.nodes == ("b", "c", "e")
    assert scope.dry_run == {}


def test_blocked_nodes_whose_blocked_descendants_are_left_out_are_left_out_too() -> None:
    # c sits between b and d; with d blocked and left out, c is a leaf of the scope: not
    # an intermediate any more, so it is left out too, without a dry-run or a warning.
    scope, diagnostics = run({"method": "descendants", "roots": ["a"], "block": ["c", "d"]})
    assert scope is not None
    assert scope.left_out == ("c", "d")
    assert scope.nodes == ("a", "b", "e")
    assert scope.dry_run == {}
    assert messages(diagnostics) == []


def test_blocked_nodes_whose_blocked_ancestors_are_left_out_are_left_out_too() -> None:
    # b's only upstream is the blocked root a: once a is left out, b is a source.
    scope, diagnostics = run(
        {"method": "manual", "roots": ["a"], "descendants": ["b", "c"], "block": ["a", "b"]}
    )
    assert scope is not None
    assert scope.left_out == ("a", "b")
    assert scope.nodes == ("c",)
    assert scope.dry_run == {}
    assert "dry-run-intermediate" not in [d.code for d in diagnostics]


def test_blocking_a_node_outside_the_scope_is_a_warning() -> None:
    _, diagnostics = run({"method": "descendants", "roots": ["b"], "block": ["e"]})
    assert messages(diagnostics) == [
        (
            "warning",
            "block-unused",
            "blocked node 'e' is not in the scope; blocking it has no effect",
        )
    ]


# -- bridging and roles ----------------------------------------------------------------


def test_dependencies_are_bridged_through_out_of_scope_chains() -> None:
    scope = scope_of({"method": "manual", "roots": ["a", "x"], "descendants": ["d"]})
    assert scope.upstream == {"a": (), "x": (), "d": ("a", "x")}
    assert scope.downstream == {"a": ("d",), "x": ("d",), "d": ()}


def test_bridging_survives_a_long_chain_of_out_of_scope_nodes() -> None:
    chain = [workspace("ws"), node("n0")] + [
        node(f"n{i}", upstream=[f"n{i - 1}"]) for i in range(1, 1500)
    ]
    scope = scope_of({"method": "manual", "roots": ["n0"], "descendants": ["n1499"]}, docs=chain)
    assert scope.upstream["n1499"] == ("n0",)


def test_named_nodes_and_edges_are_targets_and_the_middle_is_intermediate() -> None:
    scope = scope_of({"method": "descendants", "roots": ["a"]})
    assert scope.roles == {
        "a": "target",
        "b": "intermediate",
        "c": "intermediate",
        "d": "target",
        "e": "target",
    }


def test_a_root_that_descends_from_another_root_stays_a_target() -> None:
    scope = scope_of({"method": "manual", "roots": ["a", "b"], "descendants": ["c"]})
    assert scope.roles["b"] == "target"


# -- permissions ------------------------------------------------------------------------

OWNED = [
    workspace("ws", operators=("op",)),
    node("a", owners=("ann",)),
    node("b", upstream=["a"], owners=("bo",)),
    node("c", upstream=["b"], owners=("ann",)),
]


def test_operators_of_the_workspace_may_operate_every_node() -> None:
    scope, diagnostics = run({"method": "descendants", "roots": ["a"]}, actor="op", docs=OWNED)
    assert scope is not None and scope.dry_run == {} and diagnostics == []


def test_no_permission_on_an_intermediate_makes_it_dry_run_with_a_warning() -> None:
    scope, diagnostics = run({"method": "descendants", "roots": ["a"]}, actor="ann", docs=OWNED)
    assert scope is not None
    assert scope.dry_run == {"b": "no-permission"}
    assert messages(diagnostics) == [
        (
            "warning",
            "no-permission-intermediate",
            "'ann' may not operate intermediate node 'b' (allowed: bo, op): it is dry-run, and its "
            "descendants may read missing data",
        )
    ]


def test_no_permission_on_a_target_means_the_backfill_cannot_run() -> None:
    scope, diagnostics = run({"method": "descendants", "roots": ["a"]}, actor="bo", docs=OWNED)
    assert scope is None
    assert [(d.severity, d.message) for d in diagnostics if d.is_error] == [
        (
            "error",
            "'bo' may not operate target node 'a' (allowed: ann, op); the backfill cannot run",
        ),
        (
            "error",
            "'bo' may not operate target node 'c' (allowed: ann, op); the backfill cannot run",
        ),
    ]


def test_a_blocked_node_needs_no_permission() -> None:
    scope, diagnostics = run(
        {"method": "descendants", "roots": ["a"], "block": ["b"]}, actor="ann", docs=OWNED
    )
    assert scope is not None and scope.dry_run == {"b": "blocklisted"}
    assert [d.code for d in diagnostics] == ["dry-run-intermediate"]


def test_without_an_actor_permissions_are_not_checked() -> None:
    scope, diagnostics = run({"method": "descendants", "roots": ["a"]}, actor=None, docs=OWNED)
    assert scope is not None and scope.dry_run == {} and diagnostics == []
