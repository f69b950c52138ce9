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
    assert all(children == [] for children in cat.succ.values())


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


def test_loops_and_dependency_order_match_networkx_on_random_graphs() -> None:
    """The catalog walks its graph itself (validate imports no graph library); networkx,
    the reference, finds the same loop paths and the same lexicographic order."""
    import random
    from types import SimpleNamespace

    import networkx as nx

    from backfill_ctl.core.selection import _topological

    for trial in range(400):
        rng = random.Random(trial)
        names = [f"n{i}" for i in rng.sample(range(20), rng.randint(1, 9))]
        ups = {n: [rng.choice(names) for _ in range(rng.randint(0, 3))] for n in names}
        graph = nx.DiGraph()
        graph.add_nodes_from(names)
        graph.add_edges_from((u, n) for n in names for u in ups[n])
        expected = []
        for knot in nx.strongly_connected_components(graph):
            if len(knot) > 1 or graph.has_edge(min(knot), min(knot)):
                edges = nx.find_cycle(graph.subgraph(knot), source=min(knot))
                expected.append([*(e[0] for e in edges), edges[0][0]])
        nodes = {n: SimpleNamespace(name=n, upstream=tuple(ups[n])) for n in names}
        cat = Catalog(nodes, {})  # type: ignore[arg-type]
        assert cat.cycles() == sorted(expected), (trial, ups)
        try:
            order: list[str] | None = list(nx.lexicographical_topological_sort(graph))
        except nx.NetworkXUnfeasible:
            order = None
        assert _topological(set(names), {n: tuple(ups[n]) for n in names}) == order, trial
