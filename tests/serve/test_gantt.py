"""The Gantt of attempts by date group, drawn from a store's date spans: a store filled by
save_apply, its attempts begun and ended through the store as the controller does."""

from __future__ import annotations

import re

from backfill_ctl.core.records import DateSpan
from backfill_ctl.serve import gantt
from backfill_ctl.serve.views import route
from backfill_ctl.state import StateStore, open_store
from tests.serve.test_dashboard import HOSTILE
from tests.state.contract import AT, WHO, backfill, instance

BAR = re.compile(
    r'<rect class="g-([a-z]+)" data-date="([^"]+)" x="([\d.]+)" y="(\d+)" width="([\d.]+)"'
    r' height="\d+"><title>([^<]*)</title>'
)


def filled() -> StateStore:
    """Group 0: 03-01 succeeded (AT..AT+60), 03-02 failed (AT+60..AT+90, a second
    instance waits); group 1: 03-03 runs since AT+30, 03-04 has not started."""
    store = open_store("memory:")
    store.save_apply(
        [backfill()],
        [
            instance("a1", day=1),
            instance("a2", day=2),
            instance("b2", "b", day=2, deps=("a2",)),
            instance("a3", day=3, group=1),
            instance("a4", day=4, group=1),
        ],
        [],
        [],
        at=AT,
        resource_groups=[("rg", "shared", 4)],
        **WHO,
    )
    for ident, began, ended, outcome in (
        ("a1", AT, AT + 60, "succeeded"),
        ("a2", AT + 60, AT + 90, "failed"),
        ("a3", AT + 30, None, None),
    ):
        number = store.begin_attempt(ident, "local", at=began, **WHO)
        assert number is not None
        if ended is not None:
            store.end_attempt(
                ident, number, attempt_state=outcome, instance_state=outcome, exit_code=0,
                message=None, at=ended, **WHO,
            )  # fmt: skip
    return store


def bars(html: str) -> dict[str, tuple[str, float, int, float, str]]:
    return {m[2]: (m[1], float(m[3]), int(m[4]), float(m[5]), m[6]) for m in BAR.finditer(html)}


def test_a_bar_per_started_date_in_its_group_s_lane_coloured_by_its_outcome() -> None:
    html = gantt.gantt(filled().date_spans("bf"), now=AT + 120)
    found = bars(html)
    assert sorted(found) == ["2024-03-01", "2024-03-02", "2024-03-03"]  # 03-04: no attempt
    assert {d: b[0] for d, b in found.items()} == {
        "2024-03-01": "succeeded",
        "2024-03-02": "failed",  # one failed, one waits: failed
        "2024-03-03": "running",
    }
    lanes = {d: b[2] for d, b in found.items()}
    assert lanes["2024-03-01"] == lanes["2024-03-02"] < lanes["2024-03-03"]
    x = {d: (b[1], b[1] + b[3]) for d, b in found.items()}
    scale = gantt.WIDTH / 120  # AT .. now
    assert x["2024-03-01"] == (gantt.LABEL, gantt.LABEL + 60 * scale)
    assert x["2024-03-02"] == (gantt.LABEL + 60 * scale, gantt.LABEL + 90 * scale)
    assert x["2024-03-03"] == (gantt.LABEL + 30 * scale, gantt.LABEL + gantt.WIDTH)  # to now
    assert found["2024-03-02"][4] == (
        "2024-03-02 (group 0): failed, 2024-03-20T01:01:00Z to 2024-03-20T01:01:30Z (30s)"
        " · failed 1, pending 1"
    )
    assert "to now (1m30s so far) · running 1" in found["2024-03-03"][4]
    assert '<text x="4" y="33">group 0</text>' in html and ">group 1</text>" in html
    assert '<line class=now x1="970.0"' in html  # a date runs: where now is
    labels = re.findall(r'text-anchor="middle">([^<]+)<', html)
    assert labels == [f"01:{m:02d}:{s:02d}" for m in (0, 1) for s in (0, 15, 30, 45)] + ["01:02:00"]


def test_the_axis_has_round_ticks_and_the_outcomes_are_told_apart() -> None:
    span = DateSpan(AT, AT + 3 * 3600, {"succeeded": 2, "pending": 1})
    html = gantt.gantt({(0, 0, "2024-03-01"): span}, now=AT + 5)
    assert bars(html)["2024-03-01"][0] == "mixed"
    labels = re.findall(r'text-anchor="middle">([^<]+)<', html)
    assert labels == ["01:00", "01:30", "02:00", "02:30", "03:00", "03:30", "04:00"]
    assert gantt.outcome(DateSpan(AT, AT, {"succeeded": 3})) == "succeeded"
    assert gantt.outcome(DateSpan(AT, None, {"failed": 1, "running": 1})) == "running"
    assert gantt.gantt({(0, 0, "2024-03-01"): DateSpan(None, None, {"pending": 1})}, AT) == ""


def test_the_backfill_page_shows_the_gantt_and_escapes_its_dates() -> None:
    store = filled()
    code, body, _ = route(store, "/backfills/bf")
    html = body.decode()
    assert code == 200
    assert "<h2>Attempts by date group</h2><svg class=gantt" in html
    assert set(bars(html)) == {"2024-03-01", "2024-03-02", "2024-03-03"}
    hostile = gantt.gantt({(0, 0, HOSTILE): DateSpan(AT, AT + 1, {"succeeded": 1})}, AT)
    assert HOSTILE not in hostile and "&lt;img src=x onerror=alert(1)&gt;" in hostile
