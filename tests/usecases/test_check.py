"""Every check of DESIGN §5.3: a fixture that triggers it and one that does not."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from backfill_ctl.risks import CHECKS
from backfill_ctl.usecases.check import Base, CheckResult, run_check
from tests.builders import backfill, config, dump, node, specs_of, workspace

NOW = datetime(2024, 3, 20, 1, 0, tzinfo=UTC)  # T = 2024-03-20 in UTC
WS = workspace("ws", operators=("op",))
CHAIN = [WS, node("a"), node("b", upstream=["a"]), node("c", upstream=["b"])]


@dataclass
class Case:
    risky: list[dict[str, Any]]
    calm: list[dict[str, Any]]
    actor: str | None = "op"
    base: list[dict[str, Any]] = field(default_factory=list)


def check(
    docs: list[dict[str, Any]], actor: str | None = "op", base: list[dict[str, Any]] | None = None
) -> CheckResult:
    based = Base("main", specs_of(*base, file="base.yaml")) if base else None
    return run_check(specs_of(*docs), NOW, actor, based)


def codes(result: CheckResult) -> set[str]:
    return {f.code for f in result.findings}


CASES: dict[str, Case] = {
    "dependency-loop": Case(
        [WS, node("a", upstream=["b"]), node("b", upstream=["a"]), backfill()],
        [WS, node("a"), node("b", upstream=["a"]), backfill()],
    ),
    "no-permission-target": Case(
        [workspace(), node("a", owners=("ann",)), backfill()],
        [workspace(), node("a", owners=("eve",)), backfill()],
        actor="eve",
    ),
    "no-permission-intermediate": Case(
        [
            workspace(),
            node("a", owners=("ann",)),
            node("b", upstream=["a"], owners=("bo",)),
            node("c", upstream=["b"], owners=("ann",)),
            backfill(),
        ],
        [
            workspace(),
            node("a", owners=("ann",)),
            node("b", upstream=["a"], owners=("ann",)),
            node("c", upstream=["b"], owners=("ann",)),
            backfill(),
        ],
        actor="ann",
    ),
    "dry-run-intermediate": Case(
        [*CHAIN, backfill(select={"method": "descendants", "roots": ["a"], "block": ["b"]})],
        [*CHAIN, backfill(select={"method": "descendants", "roots": ["a"], "block": ["c"]})],
    ),
    "isolated-node": Case(
        [*CHAIN, backfill(select={"method": "descendants", "roots": ["a"], "block": ["a"]})],
        # Excluding the roots on purpose (includeRoot: false) isolates nothing.
        [
            *CHAIN,
            backfill(
                select={
                    "method": "workspace",
                    "roots": ["a"],
                    "workspaces": ["ws"],
                    "includeRoot": False,
                }
            ),
        ],
    ),
    "isolated-instance": Case(
        [
            WS,
            node("u", "0 4 * * *"),
            node("v", "0 1 * * *", ["u"]),
            backfill(
                select={"method": "descendants", "roots": ["u"]},
                timeWindow={"from": "00:00", "to": "03:00"},
            ),
        ],
        [
            WS,
            node("u", "0 2 * * *"),
            node("v", "0 1 * * *", ["u"]),
            backfill(
                select={"method": "descendants", "roots": ["u"]},
                timeWindow={"from": "00:00", "to": "03:00"},
            ),
        ],
    ),
    "target-without-instances": Case(
        # a runs at 02:00: the window leaves it (the only node, a target) no instance.
        [WS, node("a"), backfill(timeWindow={"from": "00:00", "to": "01:00"})],
        [WS, node("a"), backfill(timeWindow={"from": "00:00", "to": "02:00"})],
    ),
    "waiting-for-time": Case(
        [*CHAIN, backfill(dates=["2024-03-19"])],  # scheduled 2024-03-20 02:00, after now
        [*CHAIN, backfill(dates=["2024-03-19"], runImmediately=True)],
    ),
    "self-dependent-parallel": Case(
        [WS, node("a", selfDependent=True), backfill(dates=["2024-03-01", "2024-03-02"], groups=2)],
        [WS, node("a", selfDependent=True), backfill(dates=["2024-03-01", "2024-03-02"])],
    ),
    "self-dependent-descending": Case(
        [
            WS,
            node("a", selfDependent=True),
            backfill(dates=["2024-03-01", "2024-03-02"], order="descending"),
        ],
        [WS, node("a", selfDependent=True), backfill(dates=["2024-03-01"], order="descending")],
    ),
    "overlap": Case(
        [
            *CHAIN,
            backfill("one", dates=["2024-03-01"]),
            backfill("two", select={"method": "descendants", "roots": ["b"]}, dates=["2024-03-01"]),
        ],
        [
            *CHAIN,
            backfill("one", dates=["2024-03-01"]),
            backfill("two", select={"method": "descendants", "roots": ["b"]}, dates=["2024-03-02"]),
        ],
    ),
    "too-many-instances": Case(
        [*CHAIN, config(checks={"maxInstances": 2}), backfill()],
        [*CHAIN, config(checks={"maxInstances": 3}), backfill()],
    ),
    "recurring-collision": Case(
        [*CHAIN, backfill(dates=["2024-03-19"], runImmediately=True)],  # T-1
        [*CHAIN, backfill(dates=["2024-03-18"])],  # T-2
    ),
    "backfill-added": Case(
        [*CHAIN, backfill("new")],
        [*CHAIN, backfill("new")],
        base=[*CHAIN, backfill("old")],
    ),
    "backfill-changed": Case(
        [*CHAIN, backfill(dates=["2024-03-02"])],
        [*CHAIN, backfill()],
        base=[*CHAIN, backfill()],
    ),
    "backfill-removed": Case(
        [*CHAIN],
        [*CHAIN, backfill()],
        base=[*CHAIN, backfill()],
    ),
}


def test_every_check_of_the_registry_has_a_case() -> None:
    assert set(CASES) == set(CHECKS)


@pytest.mark.parametrize("code", sorted(CASES))
def test_the_risky_fixture_triggers_the_check(code: str) -> None:
    case = CASES[code]
    found = [f for f in check(case.risky, case.actor, case.base).findings if f.code == code]
    assert found, code
    assert {f.severity for f in found} == {CHECKS[code].severity}


@pytest.mark.parametrize("code", sorted(CASES))
def test_the_calm_fixture_does_not(code: str) -> None:
    case = CASES[code]
    base = case.calm if case.base else None  # compared with itself: nothing changes
    assert code not in codes(check(case.calm, case.actor, base))


# -- what a finding says -------------------------------------------------------------


def line_of(docs: list[dict[str, Any]], text: str) -> int:
    """1-based line of the last line containing `text` in the dumped documents."""
    lines = dump(*docs).splitlines()
    return max(n for n, line in enumerate(lines, 1) if text in line)


def only(result: CheckResult, code: str) -> Any:
    (found,) = [f for f in result.findings if f.code == code]
    return found


def test_a_finding_names_the_backfill_file_line_nodes_and_instances() -> None:
    docs = [*CHAIN, backfill(dates=["2024-03-19"])]
    result = check(docs)
    f = only(result, "waiting-for-time")
    (bp,) = result.plan.backfills
    where = ("specs.yaml", line_of(docs, "  dates:"), ("spec", "dates"), "bf")
    assert (f.file, f.line, f.path, f.backfill) == where
    assert f.nodes == ("a", "b", "c")
    assert f.instances == tuple(i.id for i in bp.instances)
    assert f.message == (
        "3 instance(s) are scheduled after now (2024-03-20T01:00+00:00) and wait for their "
        "time; the first at 2024-03-20 02:00 +0000 (a, business date 2024-03-19)"
    )


def test_self_dependent_parallel_points_at_groups() -> None:
    result = check(CASES["self-dependent-parallel"].risky)
    f = only(result, "self-dependent-parallel")
    assert f.path == ("spec", "groups")
    assert f.message == (
        "self-dependent node(s) a would run their 2 dates in 2 parallel groups: a date may start "
        "before the previous date of the same node finished"
    )
    assert result.failed


def test_self_dependent_descending_points_at_order() -> None:
    # selfDependent: an instance waits for the node's previous instance; newest first,
    # each date runs before the date it would wait for.
    result = check(CASES["self-dependent-descending"].risky)
    f = only(result, "self-dependent-descending")
    assert f.path == ("spec", "order")
    assert f.nodes == ("a",)
    assert f.message == (
        "self-dependent node(s) a would run their 2 dates newest first (order: descending): "
        "each date runs before the previous date of the same node"
    )
    assert result.failed


def test_stop_on_risk_false_accepts_a_risk_as_a_warning() -> None:
    accepted = [
        WS,
        node("a", selfDependent=True),
        backfill(dates=["2024-03-01", "2024-03-02"], groups=2, checks={"stopOnRisk": False}),
    ]
    result = check(accepted)
    f = only(result, "self-dependent-parallel")
    assert f.severity == "warning"
    assert f.message.endswith("(accepted: checks.stopOnRisk is false)")
    assert not result.failed


def test_stop_on_risk_false_does_not_excuse_an_error_that_is_not_a_risk() -> None:
    result = check(
        [workspace(), node("a", owners=("ann",)), backfill(checks={"stopOnRisk": False})],
        actor="eve",
    )
    assert only(result, "no-permission-target").severity == "error"
    assert result.failed


def test_isolated_nodes_name_the_blocked_root() -> None:
    f = only(check(CASES["isolated-node"].risky), "isolated-node")
    assert f.nodes == ("b", "c")
    assert f.message == (
        "2 node(s) in scope are connected to no root of the backfill (blocked root: a): b, c"
    )


def test_isolated_instances_are_grouped_per_node_and_upstream() -> None:
    docs = [
        *CASES["isolated-instance"].risky[:-1],
        backfill(
            select={"method": "descendants", "roots": ["u"]},
            dates=["2024-03-01", "2024-03-02"],
            timeWindow={"from": "00:00", "to": "03:00"},
        ),
    ]
    result = check(docs)
    f = only(result, "isolated-instance")
    assert f.nodes == ("v", "u")
    assert f.path == ("spec", "timeWindow")
    assert len(f.instances) == 2
    assert f.message == (
        "v has no instance of its upstream u to wait for on 2 date(s) "
        "(2024-03-01, 2024-03-02): it runs without that input"
    )


def test_overlap_is_reported_on_both_backfills_and_ignores_dry_runs() -> None:
    result = check(CASES["overlap"].risky)
    found = sorted((f.backfill, f.message) for f in result.findings if f.code == "overlap")
    assert found == [
        (
            "one",
            "overlaps Backfill two on 2 node-date(s), e.g. b for 2024-03-01: the same "
            "partitions would be written twice",
        ),
        (
            "two",
            "overlaps Backfill one on 2 node-date(s), e.g. b for 2024-03-01: the same "
            "partitions would be written twice",
        ),
    ]
    blocked = [
        *CHAIN,
        backfill("one", dates=["2024-03-01"]),
        backfill(
            "two",
            select={"method": "descendants", "roots": ["a"], "block": ["b"]},
            dates=["2024-03-01"],
        ),
    ]
    nodes = {f.nodes for f in check(blocked).findings if f.code == "overlap"}
    assert nodes == {("a", "c")}  # b is dry-run in "two": it writes nothing


def test_overlaps_with_several_backfills_are_one_finding_per_backfill() -> None:
    docs = [*CHAIN, *(backfill(f"b{k}", dates=["2024-03-01"]) for k in range(4))]
    found = [f for f in check(docs).findings if f.code == "overlap"]
    assert [f.backfill for f in found] == ["b0", "b1", "b2", "b3"]
    assert found[0].message == (
        "overlaps 3 Backfills (b1, b2, b3) on 3 node-date(s), e.g. a for 2024-03-01: the same "
        "partitions would be written twice"
    )


def test_recurring_collision_uses_the_timezone_of_the_node() -> None:
    # 2024-03-20 01:00 UTC is 09:00 in Shanghai: T is the 20th there too, so T-1 is the 19th;
    # at 2024-03-19 20:00 UTC Shanghai is already on the 20th while UTC is on the 19th.
    late = datetime(2024, 3, 19, 20, 0, tzinfo=UTC)
    docs = [
        workspace("ws", "Asia/Shanghai", operators=("op",)),
        node("a"),
        backfill(dates=["2024-03-19"], runImmediately=True),
    ]
    assert "recurring-collision" in codes(run_check(specs_of(*docs), late, "op"))
    utc = [WS, node("a"), backfill(dates=["2024-03-19"], runImmediately=True)]
    assert "recurring-collision" not in codes(run_check(specs_of(*utc), late, "op"))


def test_too_many_instances_says_how_to_proceed() -> None:
    f = only(check(CASES["too-many-instances"].risky), "too-many-instances")
    assert f.message.startswith("3 instances, more than the limit of 2")
    assert f.hint == (
        "split it by dates or nodes, raise Config spec.checks.maxInstances, or "
        "accept the risk with checks.stopOnRisk: false"
    )


def test_a_removed_backfill_is_located_in_the_base_file() -> None:
    case = CASES["backfill-removed"]
    f = only(check(case.risky, base=case.base), "backfill-removed")
    assert (f.file, f.line) == ("base.yaml", line_of(case.base, "apiVersion"))
    assert f.message == "removes Backfill bf (3 planned instances)"


def test_findings_are_sorted_by_file_and_line() -> None:
    result = check(CASES["overlap"].risky)
    keys = [(f.file, f.line or 0) for f in result.findings]
    assert keys == sorted(keys)


def test_with_a_base_a_loop_is_shown_at_the_upstream_entry_the_change_added() -> None:
    base = [WS, node("a", upstream=["c"]), node("b", upstream=["a"]), node("c")]
    head = [WS, node("a", upstream=["c"]), node("b", upstream=["a"]), node("c", upstream=["b"])]
    # Without a base the loop a -> b -> c -> a is shown on its first node's entry (a: c)...
    alone = only(check(head), "dependency-loop")
    assert (alone.doc, alone.path) == (1, ("spec", "upstream", 0))
    # ...with one, on the edge the change added: c's `upstream: [b]`.
    moved = only(check(head, base=base), "dependency-loop")
    assert (moved.file, moved.doc, moved.path) == ("specs.yaml", 3, ("spec", "upstream", 0))
    assert moved.line == line_of(head, "- b")


def test_with_a_base_permissions_are_checked_on_the_backfills_the_change_adds_or_edits() -> None:
    base = [workspace(), node("a", owners=("ann",)), backfill("old"), backfill("edited")]
    head = [
        workspace(),
        node("a", owners=("ann",)),
        backfill("old"),
        backfill("edited", dates=["2024-03-02"]),
        backfill("new"),
    ]
    result = check(head, actor="eve", base=base)
    denied = sorted(f.backfill or "" for f in result.findings if f.code == "no-permission-target")
    assert denied == ["edited", "new"]  # "old" was approved with its own author
    assert [bp.name for bp in result.plan.backfills] == ["old"]
    # Without a base every Backfill is the actor's.
    alone = check(head, actor="eve")
    assert {f.backfill for f in alone.findings if f.code == "no-permission-target"} == {
        "edited",
        "new",
        "old",
    }


def test_a_backfill_that_plans_no_instance_fails_at_its_time_window() -> None:
    docs = [*CHAIN, backfill(timeWindow={"from": "00:00", "to": "01:00"})]
    result = check(docs)
    f = only(result, "target-without-instances")
    (bp,) = result.plan.backfills
    assert bp.instances == ()
    assert (f.file, f.line, f.col, f.path) == (
        "specs.yaml",
        line_of(docs, "  timeWindow:"),
        3,
        ("spec", "timeWindow"),
    )
    assert f.nodes == ("a", "c")
    assert f.message == (
        "the Backfill plans no instance at all: 2 target node(s) have no instance, their "
        "scheduled times are outside timeWindow 00:00-01:00: a (02:00), c (02:00)"
    )
    assert f.hint == "widen timeWindow to include 02:00, or select other targets"
    assert result.failed


def test_one_target_without_instances_is_an_error_even_when_others_run() -> None:
    docs = [
        WS,
        node("a", "0 1 * * *"),
        node("late", "0 5 * * *", ["a"]),
        backfill(timeWindow={"from": "00:00", "to": "03:00"}),
    ]
    result = check(docs)
    f = only(result, "target-without-instances")
    assert [i.node for i in result.plan.backfills[0].instances] == ["a"]
    assert f.message == (
        "1 target node(s) have no instance, their scheduled times are outside timeWindow "
        "00:00-03:00: late (05:00)"
    )
    assert result.failed


def test_a_target_out_of_its_effective_period_points_at_the_dates() -> None:
    docs = [WS, node("a", effective={"from": "2024-04-01"}), backfill(dates=["2024-03-01"])]
    f = only(check(docs), "target-without-instances")
    assert f.path == ("spec", "dates")
    assert f.message == (
        "the Backfill plans no instance at all: 1 target node(s) have no instance, no business "
        "date is scheduled (the day after) in their effective period: a (2024-04-01 to ...)"
    )
    assert f.hint == (
        "choose business dates whose next day is in the effective period, or select other targets"
    )
