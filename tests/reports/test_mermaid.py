"""The Mermaid picture of a backfill's scope in the pull-request comment."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest

from backfill_ctl.core.planner import BackfillPlan
from backfill_ctl.core.selection import Scope
from backfill_ctl.reports.mermaid import flowchart
from backfill_ctl.usecases.plan import make_plan
from tests.builders import NOW, backfill, node, specs_of, workspace

STYLES = [
    "  classDef target font-weight:bold,stroke-width:2px",
    "  classDef blocked stroke-dasharray:5 5,fill:#eeeeee,color:#666666",
    "  classDef nopermission stroke-dasharray:5 5,fill:#fff4d6",
    "  classDef leftout fill:#eeeeee,color:#999999,stroke:#bbbbbb",
    "  classDef more fill:#ffffff,stroke-dasharray:2 2",
]


def plan_of(*docs: dict[str, Any], actor: str | None = "op") -> BackfillPlan:
    plan, diagnostics = make_plan(specs_of(*docs), NOW, actor)
    assert not [d for d in diagnostics if d.is_error], diagnostics
    [bp] = plan.backfills
    return bp


def chain(names: list[str], **select: Any) -> BackfillPlan:
    """A chain names[0] -> names[1] -> ..., backfilled from the first."""
    nodes = [node(n, upstream=[names[i - 1]] if i else []) for i, n in enumerate(names)]
    sel = {"method": "descendants", "roots": [names[0]], **select}
    return plan_of(workspace(operators=("op",)), *nodes, backfill(select=sel))


def test_the_whole_picture_of_a_scope_with_every_kind_of_node() -> None:
    # a -> b -> c -> d, b -> e, c -> f -> g. b blocked (intermediate: dry-run), d blocked
    # (a leaf: left out), f not operable by alice (intermediate: dry-run).
    bp = plan_of(
        workspace(),
        node("a"),
        node("b", upstream=["a"]),
        node("c", upstream=["b"]),
        node("d", upstream=["c"]),
        node("e", upstream=["b"]),
        node("f", upstream=["c"], owners=("zed",)),
        node("g", upstream=["f"]),
        backfill(select={"method": "descendants", "roots": ["a"], "block": ["b", "d"]}),
        actor="alice",
    )

    assert flowchart(bp).splitlines() == [
        "flowchart LR",
        '  n_a["a"]',
        '  n_b["b<br/><i>dry-run: blocklisted</i>"]',
        '  n_c["c"]',
        '  n_e["e"]',
        '  n_f["f<br/><i>dry-run: no-permission</i>"]',
        '  n_g["g"]',
        "  n_a --> n_b",
        "  n_b --> n_c",
        "  n_b --> n_e",
        "  n_c --> n_f",
        "  n_f --> n_g",
        '  n_d["d<br/><i>blocked, left out</i>"]',
        *STYLES,
        "  class n_a,n_e,n_g target",  # c is an operable intermediate: plain
        "  class n_b blocked",
        "  class n_f nopermission",
        "  class n_d leftout",
    ]


def test_a_plain_scope_has_only_targets_and_no_more_node() -> None:
    assert flowchart(chain(["a", "b"])).splitlines() == [
        "flowchart LR",
        '  n_a["a"]',
        '  n_b["b"]',
        "  n_a --> n_b",
        *STYLES,
        "  class n_a,n_b target",
    ]


# -- ids and labels ----------------------------------------------------------------------


def test_names_with_dots_dashes_and_underscores_get_distinct_safe_ids() -> None:
    names = ["ods.orders", "ods-orders", "ods_orders", "ods_2e_orders"]

    lines = flowchart(chain(names)).splitlines()

    boxes = [line.strip() for line in lines if '["' in line]
    assert [box.split("[")[1] for box in boxes] == [f'"{n}"]' for n in names]
    ids = [box.split("[")[0] for box in boxes]
    assert len(set(ids)) == len(names)
    assert all(re.fullmatch(r"n_[A-Za-z0-9_]+", i) for i in ids), ids
    assert f"  {ids[0]} --> {ids[1]}" in lines  # edges use the same ids


def test_quotes_in_a_label_are_escaped() -> None:
    bp = chain(["a", "b"])
    name = 'say "hi"'
    scope = Scope(nodes=(name,), upstream={name: ()}, downstream={name: ()}, roles={name: "target"})

    lines = flowchart(replace(bp, scope=scope)).splitlines()

    assert lines[1] == '  n_say_20__22_hi_22_["say #quot;hi#quot;"]'
    assert lines[-1] == "  class n_say_20__22_hi_22_ target"


# -- large scopes: collapsed after `limit` nodes ------------------------------------------


def test_a_long_chain_is_cut_after_limit_nodes_with_one_more_node() -> None:
    bp = chain([f"n{i}" for i in range(10)])

    lines = flowchart(bp, limit=3).splitlines()

    assert lines[: lines.index(STYLES[0])] == [
        "flowchart LR",
        '  n_n0["n0"]',
        '  n_n1["n1"]',
        '  n_n2["n2"]',
        "  n_n0 --> n_n1",
        "  n_n1 --> n_n2",
        '  more["+7 more"]',
        "  n_n2 -.-> more",  # the only shown node with a hidden child
    ]
    assert lines[-2:] == ["  class n_n0 target", "  class more more"]


def test_every_shown_node_with_hidden_children_points_at_more_once() -> None:
    # r -> x1..x5 and r -> y; y -> z. Shown (run order, ties by name): r, x1, x2, x3.
    nodes = [node("r"), *(node(f"x{i}", upstream=["r"]) for i in range(1, 6))]
    nodes += [node("y", upstream=["r"]), node("z", upstream=["y", "x1"])]
    bp = plan_of(
        workspace(operators=("op",)),
        *nodes,
        backfill(select={"method": "descendants", "roots": ["r"]}),
    )

    lines = flowchart(bp, limit=4).splitlines()

    assert '  more["+4 more"]' in lines
    assert [line for line in lines if "-.->" in line] == [
        "  n_r -.-> more",
        "  n_x1 -.-> more",  # z, below x1, is hidden too
    ]


@pytest.mark.parametrize(("size", "hidden"), [(40, 0), (41, 1), (45, 5)])
def test_the_default_limit_is_forty_nodes(size: int, hidden: int) -> None:
    lines = flowchart(chain([f"n{i:02}" for i in range(size)])).splitlines()

    boxes = [line for line in lines if '["' in line and "more" not in line]
    assert len(boxes) == min(size, 40)
    assert (f'  more["+{hidden} more"]' in lines) is bool(hidden)
    assert ("  class more more" in lines) is bool(hidden)


def test_a_node_named_more_is_not_the_more_node() -> None:
    bp = chain(["a", "more", "c", "d"])

    lines = flowchart(bp, limit=2).splitlines()

    assert '  n_more["more"]' in lines
    assert '  more["+2 more"]' in lines
    assert "  n_a --> n_more" in lines
    assert "  n_more -.-> more" in lines


def test_left_out_nodes_are_shown_with_their_class_even_when_collapsed() -> None:
    bp = chain([f"n{i}" for i in range(6)], block=["n5"])  # the leaf: left out

    lines = flowchart(bp, limit=2).splitlines()

    assert '  n_n5["n5<br/><i>blocked, left out</i>"]' in lines
    assert '  more["+3 more"]' in lines  # n2..n4: n5 is not in the scope
    assert "  class n_n5 leftout" in lines
