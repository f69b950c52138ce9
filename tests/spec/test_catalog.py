"""The catalog graph: reach, levels, loops and who may operate a node."""

from __future__ import annotations

from typing import Any

from backfill_ctl.spec.catalog import Catalog
from tests.builders import node, specs_of, workspace


def catalog(*docs: dict[str, Any]) -> Catalog:
    return specs_of(workspace("ws", operators=("op",)), *docs).catalog()


DIAMOND = (
    node("a"),
    node("b", upstream=["a"]),
    node("c", upstream=["a"]),
    node("d", upstream=["b", "c"]),
    node("z"),
)


def test_descendants_and_ancestors() -> None:
    cat = catalog(*DIAMOND)
    assert cat.descendants(["a"]) == {"b", "c", "d"}
    assert cat.descendants(["b", "z"]) == {"d"}
    assert cat.ancestors(["d"]) == {"a", "b", "c"}


def test_levels_below_counts_the_nearest_root() -> None:
    cat = catalog(*DIAMOND)
    assert cat.levels_below(["a"], 1) == {"b", "c"}
    assert cat.levels_below(["a"], 2) == {"b", "c", "d"}
    assert cat.levels_below(["b"], 1) == {"d"}


def test_unknown_upstream_names_are_not_edges() -> None:
    cat = catalog(node("a", upstream=["ghost"]))
    assert list(cat.graph.edges) == []


def test_cycles_are_reported_once_each_as_a_closed_path() -> None:
    cat = catalog(
        node("a", upstream=["c"]),
        node("b", upstream=["a"]),
        node("c", upstream=["b"]),
        node("s", upstream=["s"]),
        node("ok"),
    )
    assert cat.cycles() == [["a", "b", "c", "a"], ["s", "s"]]
    assert catalog(*DIAMOND).cycles() == []


def test_owners_and_workspace_operators_may_operate() -> None:
    cat = catalog(node("a", owners=("ann",)))
    assert cat.can_operate("ann", "a") and cat.can_operate("op", "a")
    assert not cat.can_operate("eve", "a")
    assert cat.operators_of("a") == ["ann", "op"]
