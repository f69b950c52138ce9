"""`compare` and `change_findings`: what merging does to each Backfill, from two plans."""

from __future__ import annotations

from typing import Any

import pytest

from backfill_ctl.risks.compare import BackfillChange, change_findings, compare
from backfill_ctl.spec.loader import Specs
from backfill_ctl.usecases.plan import make_plan
from tests.builders import NOW, backfill, node, specs_of, workspace

# a -> b -> c, daily: a Backfill from a holds 3 instances per business date.
CATALOG = [
    workspace("ws", operators=("op",)),
    node("a"),
    node("b", upstream=["a"]),
    node("c", upstream=["b"]),
]
MARCH_1_TO_3 = [{"from": "2024-03-01", "to": "2024-03-03"}]  # 3 dates: 9 instances
MARCH_2_TO_5 = [{"from": "2024-03-02", "to": "2024-03-05"}]  # 4 dates: 12 instances


def changes(base: list[dict[str, Any]], head: list[dict[str, Any]]) -> dict[str, BackfillChange]:
    before, after = specs_of(*base, file="base.yaml"), specs_of(*head, file="head.yaml")
    found = compare(before, plan(before), after, plan(after))
    assert [c.name for c in found] == sorted(c.name for c in found)
    return {c.name: c for c in found}


def plan(specs: Specs) -> Any:
    return make_plan(specs, NOW, "op")[0]


# -- compare --------------------------------------------------------------------------


def test_a_new_backfill_is_added_with_all_its_instances() -> None:
    assert changes(CATALOG, [*CATALOG, backfill("bf", dates=MARCH_1_TO_3)]) == {
        "bf": BackfillChange("bf", "added", 9, 0)
    }


def test_a_deleted_backfill_is_removed_with_all_its_instances() -> None:
    assert changes([*CATALOG, backfill("bf", dates=MARCH_1_TO_3)], CATALOG) == {
        "bf": BackfillChange("bf", "removed", 0, 9)
    }


def test_an_edited_backfill_is_changed_and_counts_instances_by_id() -> None:
    found = changes(
        [*CATALOG, backfill("bf", dates=MARCH_1_TO_3)],
        [*CATALOG, backfill("bf", dates=MARCH_2_TO_5)],
    )

    # 2 and 3 March are in both: their 6 instances keep their ids, and are the first and
    # second dates now (~6). 1 March goes (3), 4 and 5 March come (6).
    assert found == {"bf": BackfillChange("bf", "changed", 6, 3, updated=6)}


@pytest.mark.parametrize(
    ("edit", "updated"),
    [({"order": "descending"}, 6), ({"suspend": True}, 0), ({"alerts": {"when": "never"}}, 0)],
    ids=["order", "suspend", "alerts"],
)
def test_an_edit_that_keeps_every_instance_is_still_a_change(
    edit: dict[str, Any], updated: int
) -> None:
    found = changes(
        [*CATALOG, backfill("bf", dates=MARCH_1_TO_3)],
        [*CATALOG, backfill("bf", dates=MARCH_1_TO_3, **edit)],
    )

    # Descending, 1 and 3 March swap places: their instances change their sequence.
    assert found == {"bf": BackfillChange("bf", "changed", 0, 0, updated=updated)}


def test_a_catalog_change_alone_replans_a_backfill() -> None:
    found = changes(
        [*CATALOG, backfill("bf", dates=MARCH_1_TO_3)],
        [*CATALOG, node("d", upstream=["c"]), backfill("bf", dates=MARCH_1_TO_3)],
    )

    assert found == {"bf": BackfillChange("bf", "replanned", 3, 0)}  # d on 3 dates


def test_the_same_document_in_another_file_and_layout_is_unchanged() -> None:
    bf = backfill("bf", dates=MARCH_1_TO_3)
    moved = {**bf, "spec": dict(reversed(list(bf["spec"].items())))}  # other key order

    assert changes([*CATALOG, bf], [moved, *reversed(CATALOG)]) == {
        "bf": BackfillChange("bf", "unchanged", 0, 0)
    }


def test_every_backfill_of_both_sides_is_compared_in_name_order() -> None:
    found = changes(
        [*CATALOG, backfill("gone", dates=["2024-03-01"]), backfill("kept", dates=["2024-03-01"])],
        [*CATALOG, backfill("kept", dates=["2024-03-01"]), backfill("added", dates=["2024-03-01"])],
    )

    assert list(found.values()) == [
        BackfillChange("added", "added", 3, 0),
        BackfillChange("gone", "removed", 0, 3),
        BackfillChange("kept", "unchanged", 0, 0),
    ]


def test_a_backfill_that_cannot_be_planned_any_more_has_no_delta() -> None:
    found = changes(
        [*CATALOG, backfill("bf", dates=MARCH_1_TO_3)],
        [*CATALOG, backfill("bf", dates=["2024-02-30"])],  # not a date: not planned
    )

    # Not "-9 instances": the errors that stop it from planning are what to report.
    assert found == {"bf": BackfillChange("bf", "changed", 0, 0, planned=False)}


def test_a_catalog_error_is_no_replanning() -> None:
    broken = [*CATALOG[:-1], node("c", upstream=["ghost"]), backfill("bf")]
    assert changes([*CATALOG, backfill("bf")], broken) == {
        "bf": BackfillChange("bf", "unchanged", 0, 0, planned=False)
    }


def test_a_backfill_document_with_broken_metadata_is_no_comparison() -> None:
    broken = backfill("x")
    broken["metadata"] = ["x"]  # a schema error, reported by validation

    found = changes(CATALOG, [*CATALOG, broken, backfill("bf")])

    assert found == {"bf": BackfillChange("bf", "added", 3, 0)}


# -- change_findings -------------------------------------------------------------------

BASE = [*CATALOG, backfill("bf", dates=MARCH_1_TO_3)]
APPLY_HINT = (
    "applying it creates the new instances, updates and cancels planned ones that have not "
    "started, and keeps those that started"
)
REPLAN_HINT = (
    "applying it updates the instances that have not started, keeps those that started, and "
    "leaves a backfill that has finished as it ran (rerun its instances, or edit the "
    "Backfill, to run it again)"
)


def findings_of(
    base: list[dict[str, Any]], head: list[dict[str, Any]], ref: str = "main"
) -> list[tuple[str, str, str, str | None]]:
    before, after = specs_of(*base, file="base.yaml"), specs_of(*head, file="head.yaml")
    found = change_findings(compare(before, plan(before), after, plan(after)), before, after, ref)
    return [(f.code, f.severity, f.message, f.hint) for f in found]


@pytest.mark.parametrize(
    ("head", "ref", "expected"),
    [
        (
            [*CATALOG, backfill("bf", dates=MARCH_1_TO_3), backfill("new")],
            "main",
            ("backfill-added", "notice", "adds Backfill new: +3 / -0 instances", None),
        ),
        (
            CATALOG,
            "main",
            (
                "backfill-removed",
                "notice",
                "removes Backfill bf (9 planned instances)",
                "apply --prune cancels its instances that have not started",
            ),
        ),
        (
            [*CATALOG, backfill("bf", dates=MARCH_2_TO_5)],
            "origin/release-1.2",
            (
                "backfill-changed",
                "warning",
                "edits Backfill bf, which exists on origin/release-1.2: +6 / -3 / ~6 instances",
                APPLY_HINT,
            ),
        ),
        (
            [*CATALOG, node("d", upstream=["c"]), backfill("bf", dates=MARCH_1_TO_3)],
            "main",
            (
                "backfill-changed",
                "warning",
                "the catalog change re-plans Backfill bf: +3 / -0 instances",
                REPLAN_HINT,
            ),
        ),
    ],
    ids=["added", "removed", "changed", "replanned"],
)
def test_each_change_is_one_finding(
    head: list[dict[str, Any]], ref: str, expected: tuple[str, str, str, str | None]
) -> None:
    assert findings_of(BASE, head, ref) == [expected]


def test_an_unchanged_backfill_has_no_finding() -> None:
    assert findings_of(BASE, [*reversed(BASE)]) == []


def test_findings_point_at_the_document_of_the_side_that_holds_it() -> None:
    before = specs_of(*CATALOG, backfill("gone"), backfill("edited"), file="base.yaml")
    after = specs_of(*CATALOG, backfill("edited", groups=1), backfill("new"), file="head.yaml")

    found = change_findings(compare(before, plan(before), after, plan(after)), before, after, "m")

    located = {(f.backfill, f.code): (f.file, f.doc, f.path) for f in found}
    assert located == {
        ("edited", "backfill-changed"): ("head.yaml", 4, ()),
        ("gone", "backfill-removed"): ("base.yaml", 4, ()),
        ("new", "backfill-added"): ("head.yaml", 5, ()),
    }
    assert all(f.line is None for f in found)  # located later, by the side's Sources


def test_a_backfill_that_failed_its_schema_is_still_located_at_its_document() -> None:
    before = specs_of(*CATALOG, file="base.yaml")
    wrong = backfill("bf") | {"apiVersion": "backfillctl.dev/v2"}
    after = specs_of(*CATALOG, wrong, file="head.yaml")
    assert "bf" not in after.backfills  # (not of this version: it cannot be built)

    found = change_findings(compare(before, plan(before), after, plan(after)), before, after, "m")

    assert [(f.code, f.file, f.doc, f.message) for f in found] == [
        (
            "backfill-added",
            "head.yaml",
            4,
            "adds Backfill bf: it cannot be planned (see the errors)",
        )
    ]


def test_a_moved_cron_time_is_a_change_of_the_same_instances() -> None:
    moved = [*CATALOG[:2], node("b", "45 2 * * *", upstream=["a"]), CATALOG[3]]
    found = changes(BASE, [*moved, backfill("bf", dates=MARCH_1_TO_3)])

    assert found == {
        "bf": BackfillChange(
            "bf", "replanned", 0, 0, updated=3, moves=((("b", "02:00", "02:45"), 3),)
        )
    }
    assert findings_of(BASE, [*moved, backfill("bf", dates=MARCH_1_TO_3)]) == [
        (
            "backfill-changed",
            "warning",
            "the catalog change re-plans Backfill bf: +0 / -0 / ~3 instances, 3 of b move "
            "02:00->02:45",
            REPLAN_HINT,
        )
    ]
