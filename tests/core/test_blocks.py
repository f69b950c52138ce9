"""core/blocks.py: a date's rows by column, and back."""

from __future__ import annotations

from backfill_ctl.core.blocks import DRY_RUN, IGNORE_DEPS, TaskBlock, blocks_of
from backfill_ctl.core.records import TaskTuple

ROWS: list[TaskTuple] = [
    ("a1", "bf", "2024-03-01", 0, 1, 5, 100.0, "UTC", "rg", 0, None, 0, "pending", None, None),
    ("o1", "other", "2024-03-01", 0, 1, 5, 100.0, "UTC", "rg", 0, None, 0, "pending", None, None),
    ("b1", "bf", "2024-03-01", 0, 1, 5, 100.5, "UTC", "gpu", 1, ("a1",), 1, "failed", "x", 7.5),
    ("a2", "bf", "2024-03-02", 0, 2, 5, 200.0, "UTC", "rg", 0, (), 0, "pending", None, None),
]


def test_rows_become_a_block_per_date_with_shared_columns_as_one_value() -> None:
    one, other, two = blocks_of(ROWS)
    assert (one.backfill, one.bizdate, one.group, one.sequence, one.ids) == (
        "bf",
        "2024-03-01",
        0,
        1,
        ["a1", "b1"],
    )
    assert (one.priority, one.timezone) == (5, "UTC")  # shared: one value
    assert one.cyctime == [100.0, 100.5] and one.resource_group == ["rg", "gpu"]
    assert one.flags == [0, DRY_RUN | IGNORE_DEPS] and one.state == ["pending", "failed"]
    assert (one.deps, one.reason, one.not_before) == ([[], ["a1"]], [None, "x"], [None, 7.5])
    assert other.ids == ["o1"] and two.ids == ["a2"]
    assert (two.deps, two.reason, two.not_before, two.flags) == (None, None, None, 0)


def test_a_block_gives_back_its_rows() -> None:
    rows = [r for b in blocks_of(ROWS) for r in b.rows()]
    plain = [(*r[:10], tuple(r[10] or ()), *r[11:]) for r in rows]
    assert sorted(plain) == sorted((*r[:10], tuple(r[10] or ()), *r[11:]) for r in ROWS)


def test_an_empty_block_has_no_rows() -> None:
    empty = TaskBlock("bf", "2024-03-01", 0, 1, [], 5, 1.0, "UTC", "rg", 0, "pending")
    assert empty.rows() == []
