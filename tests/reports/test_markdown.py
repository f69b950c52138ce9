"""`check -o markdown`: the pull-request comment, its order, escaping and size budget."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from backfill_ctl import __version__
from backfill_ctl.errors import Diagnostic
from backfill_ctl.reports.markdown import LIMIT, MARKER, cell, render_markdown
from backfill_ctl.reports.mermaid import flowchart
from backfill_ctl.usecases.check import Base, CheckResult, run_check
from tests.builders import NOW, backfill, node, specs_of, workspace

CATALOG = [
    workspace("ws", operators=("op",)),
    node("a"),
    node("b", upstream=["a"]),
    node("c", upstream=["b"]),
]
INSTANCES_HEAD = [
    "| Business date | Scheduled | Node | Group.seq | Priority | Run | Id |",
    "|---|---|---|---|---|---|---|",
]


def check(
    head: list[dict[str, Any]], base: list[dict[str, Any]] | None = None, actor: str | None = "op"
) -> CheckResult:
    based = Base("main", specs_of(*base, file="base.yaml")) if base is not None else None
    return run_check(specs_of(*head, file="head.yaml"), NOW, actor, based)


def origin(result: CheckResult, name: str) -> str:
    return next(str(bp.backfill.origin) for bp in result.plan.backfills if bp.name == name)


# Against main: `kept` moves from 1-3 March to 2-5 March (+6 / -3), `new` is added (+1),
# `gone` (b and c on 1 March) is removed (-2).
BASE = [
    *CATALOG,
    backfill("gone", select={"method": "descendants", "roots": ["b"]}, dates=["2024-03-01"]),
    backfill("kept", dates=[{"from": "2024-03-01", "to": "2024-03-03"}]),
]
HEAD = [
    *CATALOG,
    backfill("kept", dates=[{"from": "2024-03-02", "to": "2024-03-05"}]),
    backfill("new", select={"method": "descendants", "roots": ["c"]}, dates=["2024-03-10"]),
]


def test_the_comment_is_summary_changes_table_findings_sections_footer() -> None:
    result = check(HEAD, BASE)

    lines = render_markdown(result).splitlines()

    assert lines[:10] == [
        "⚠️ **backfillctl check: 1 warning, 2 notices** · 13 instances in 2 backfills "
        "(0 dry-run, 0 waiting for their time)",
        "",
        "Merging into `main`: 1 added, 1 changed, 1 removed; instances +7 / -5 / ~6.",
        "",
        "| Backfill | Change | Scope nodes | Dates | Groups | Instances | Dry-run "
        "| Waiting for time |",
        "|---|---|---|---|---|---|---|---|",
        f"| `kept` ({origin(result, 'kept')}) | changed +6 / -3 / ~6 | 3 | 4 | 1 | 12 | 0 | 0 |",
        f"| `new` ({origin(result, 'new')}) | added +1 / -0 | 1 | 1 | 1 | 1 | 0 | 0 |",
        "",
        "### Findings",
    ]
    findings = lines[lines.index("### Findings") : lines.index("### `kept`")]
    assert [row.split(" | ")[1] for row in findings[4:-1]] == [
        "`backfill-removed`",  # base.yaml sorts first
        "`backfill-changed`",
        "`backfill-added`",
    ]
    sections = [line for line in lines if line.startswith("### `")]
    assert sections == ["### `kept`", "### `new`"]
    assert lines[-4:] == [
        "---",
        f"Plan digest `{result.plan.digest}` · checked as `op` at 2024-03-20T01:00:00+00:00 "
        f"· backfillctl {__version__}",
        "",
        MARKER,
    ]


def test_a_section_is_the_selection_the_picture_and_the_folded_instances() -> None:
    result = check(HEAD, BASE)
    kept = next(bp for bp in result.plan.backfills if bp.name == "kept")

    lines = render_markdown(result).splitlines()

    start = lines.index("### `kept`")
    section = lines[start : lines.index("### `new`")]
    picture = flowchart(kept).splitlines()
    assert section[: 5 + len(picture) + 3] == [
        "### `kept`",
        "",
        "a and all descendants · dates 2024-03-02..2024-03-05 (4, ascending) in 1 group",
        "",
        "```mermaid",
        *picture,
        "```",
        "",
        "<details><summary>12 instances</summary>",
    ]
    rows = section[5 + len(picture) + 3 :]
    first = kept.instances[0]
    assert rows[:4] == [
        "",
        *INSTANCES_HEAD,
        f"| 2024-03-02 | 2024-03-03 02:00 +0000 | `a` | 0.0 | 1 | runs | `{first.id}` |",
    ]
    assert len([r for r in rows if r.startswith("| 2024-")]) == 12
    assert rows[-3:] == ["", "</details>", ""]


def test_without_a_base_there_is_no_merging_line_and_no_change_column() -> None:
    result = check(HEAD)

    lines = render_markdown(result).splitlines()

    assert lines[1:5] == [
        "",
        "| Backfill | Scope nodes | Dates | Groups | Instances | Dry-run | Waiting for time |",
        "|---|---|---|---|---|---|---|",
        f"| `kept` ({origin(result, 'kept')}) | 3 | 4 | 1 | 12 | 0 | 0 |",
    ]
    assert not any(line.startswith("Merging into") for line in lines)


def test_a_base_without_changes_says_so() -> None:
    result = check(HEAD, HEAD)

    lines = render_markdown(result).splitlines()

    assert lines[2] == "Merging into `main`: no Backfill changes; instances +0 / -0."
    assert f"| `new` ({origin(result, 'new')}) | unchanged | 1 | 1 | 1 | 1 | 0 | 0 |" in lines
    assert "No findings." in lines


@pytest.mark.parametrize(
    ("docs", "actor", "summary"),
    [
        (
            [*CATALOG, backfill(dates=["2024-03-01"])],
            "op",
            "✅ **backfillctl check: no findings** · 3 instances in 1 backfill "
            "(0 dry-run, 0 waiting for their time)",
        ),
        (  # notices only: still green
            [*CATALOG, backfill(dates=["2024-03-25"])],
            "op",
            "✅ **backfillctl check: 1 notice** · 3 instances in 1 backfill "
            "(0 dry-run, 3 waiting for their time)",
        ),
        (  # bo owns the targets a and c, not the intermediate b: b is dry-run
            [
                workspace("ws", operators=("op",)),
                node("a", owners=("bo",)),
                node("b", upstream=["a"]),
                node("c", upstream=["b"], owners=("bo",)),
                backfill(dates=["2024-03-01"]),
            ],
            "bo",
            "⚠️ **backfillctl check: 1 warning** · 3 instances in 1 backfill "
            "(1 dry-run, 0 waiting for their time)",
        ),
        (
            [
                workspace("ws", operators=("op",)),
                node("a", selfDependent=True),
                backfill(dates=["2024-03-01", "2024-03-02"], groups=2),
            ],
            "op",
            "❌ **backfillctl check: 1 error** · 2 instances in 1 backfill "
            "(0 dry-run, 0 waiting for their time)",
        ),
        (
            CATALOG,
            "op",
            "✅ **backfillctl check: no findings** · 0 instances in 0 backfills "
            "(0 dry-run, 0 waiting for their time)",
        ),
    ],
    ids=["clean", "notice", "warning", "error", "no-backfill"],
)
def test_the_summary_line_comes_first(docs: list[dict[str, Any]], actor: str, summary: str) -> None:
    assert render_markdown(check(docs, actor=actor)).splitlines()[0] == summary


def test_the_footer_says_when_permissions_were_not_checked() -> None:
    result = check([*CATALOG, backfill()], actor=None)

    footer = render_markdown(result).splitlines()[-3]

    assert footer.startswith(
        f"Plan digest `{result.plan.digest}` · checked without an actor (permissions not "
        "checked) at "
    )


# -- findings and cell escaping --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        ("plain", "plain"),
        ("a | b", "a \\| b"),
        ("<script>&", "&lt;script&gt;&amp;"),
        ("one\ntwo", "one<br>two"),
        ('"quoted"', '"quoted"'),
    ],
)
def test_cell_keeps_a_table_row_on_one_line_and_free_of_html(text: str, safe: str) -> None:
    assert cell(text) == safe


def test_a_finding_row_has_icon_severity_code_where_message_and_hint() -> None:
    result = check([*CATALOG, backfill()])
    findings = [
        Diagnostic(
            "x | y <b>\nnext line",
            file="specs/a|b.yaml",
            line=4,
            col=3,
            hint="try <this> | that",
            severity="warning",
            code="overlap",
        ),
        Diagnostic("no hint", file="", severity="notice", code="backfill-added"),
        Diagnostic("broken", file="c.yaml", line=1, severity="error", code="schema"),
    ]

    lines = render_markdown(replace(result, findings=findings)).splitlines()

    start = lines.index("### Findings")
    assert lines[start : start + 8] == [
        "### Findings",
        "",
        "| | Check | Where | Finding |",
        "|---|---|---|---|",
        "| ⚠️ warning | `overlap` | specs/a\\|b.yaml:4:3 | x \\| y &lt;b&gt;<br>next line"
        "<br>*try &lt;this&gt; \\| that* |",
        "| ℹ️ notice | `backfill-added` | &lt;input&gt; | no hint |",
        "| ❌ error | `schema` | c.yaml:1 | broken |",
        "",
    ]


def test_findings_are_listed_while_they_fit_in_two_fifths_of_the_comment() -> None:
    result = check([*CATALOG, backfill()])
    few = [Diagnostic(f"f{n}", file="a.yaml", line=n, code="x") for n in range(1, 104)]
    many = [Diagnostic("x" * 200, file="a.yaml", line=n, code="x") for n in range(1, 2001)]

    short = render_markdown(replace(result, findings=few)).splitlines()
    long = render_markdown(replace(result, findings=many))

    assert len([line for line in short if line.startswith("| ❌ error | `x` |")]) == 103
    rows = [line for line in long.splitlines() if line.startswith("| ❌ error | `x` |")]
    assert 0 < len(rows) < 2000
    assert sum(len(row) + 1 for row in rows) <= 2 * LIMIT // 5
    assert (
        f"| | | | … and {2000 - len(rows)} more findings: `backfillctl check -o json` lists "
        "them all |"
    ) in long.splitlines()
    assert len(long) < 65_536


# -- instance lists and the size of the comment ----------------------------------------


@pytest.mark.parametrize(("rows", "cut"), [(2, 7), (8, 1), (9, 0), (50, 0)])
def test_instance_rows_are_cut_at_rows(rows: int, cut: int) -> None:
    result = check([*CATALOG, backfill(dates=[{"from": "2024-03-01", "to": "2024-03-03"}])])

    lines = render_markdown(result, rows=rows).splitlines()

    listed = [line for line in lines if line.startswith("| 2024-03-0")]
    assert len(listed) == 9 - cut
    assert [r.split(" | ")[-1] for r in listed] == [
        f"`{i.id}` |" for i in result.plan.backfills[0].instances[: 9 - cut]
    ]
    more = f"… and {cut} more: `backfillctl plan -o json` lists every instance."
    assert (more in lines) is bool(cut)
    if cut:
        assert lines[lines.index(more) - 2] == listed[-1]  # after the table and a blank line


def many_large_backfills(count: int) -> CheckResult:
    """`count` Backfills of 61 dates each (50 rows shown), on nodes of their own."""
    docs: list[dict[str, Any]] = [workspace("ws", operators=("op",))]
    for k in range(count):
        docs.append(node(f"n{k:02}"))
        docs.append(
            backfill(
                f"bf{k:02}",
                select={"method": "descendants", "roots": [f"n{k:02}"]},
                dates=[{"from": "2024-01-01", "to": "2024-03-01"}],
            )
        )
    return check(docs)


def test_sections_that_do_not_fit_are_replaced_by_a_pointer() -> None:
    result = many_large_backfills(30)

    text = render_markdown(result)

    assert len(text) < 65_536  # GitHub's limit for a comment
    lines = text.splitlines()
    sections = [line for line in lines if line.startswith("### `")]
    shown = len(sections)
    assert 0 < shown < 30
    assert sections == [f"### `bf{k:02}`" for k in range(shown)]  # the first ones, in order
    pointer = (
        f"… the details of {30 - shown} more backfills do not fit in a comment: "
        "`backfillctl plan -o json` lists every instance."
    )
    assert lines[-8:] == ["</details>", "", pointer, "", "---", lines[-3], "", MARKER]
    assert lines.count(pointer) == 1
    # Every Backfill is still in the table; the cut is not early: one more section (they
    # are all the same size) would not have fitted.
    assert sum(1 for line in lines if line.startswith("| `bf")) == 30
    section = text[text.index("### `bf00`") : text.index("### `bf01`")]
    assert len(text) - len(pointer) - 2 + len(section) > LIMIT - 200


def test_a_very_long_backfill_table_is_cut_too() -> None:
    docs: list[dict[str, Any]] = [*CATALOG]
    docs += [backfill(f"backfill-with-a-rather-long-name-{k:04}") for k in range(800)]
    result = check(docs)

    text = render_markdown(result)

    assert len(text) < 65_536
    rows = [line for line in text.splitlines() if line.startswith("| `backfill-with")]
    assert 0 < len(rows) < 800
    assert any(
        line.startswith(f"| … and {800 - len(rows)} more backfills |") for line in text.splitlines()
    )


def test_a_comment_that_fits_has_no_pointer() -> None:
    text = render_markdown(many_large_backfills(3))

    assert "do not fit in a comment" not in text
    assert text.count("### `bf") == 3
    assert text.endswith(f"\n\n{MARKER}\n")


def test_a_dashboard_url_in_the_config_links_each_backfill_section() -> None:
    from tests.builders import config

    docs = [*HEAD, config(dashboard="https://backfills.example.com/")]
    text = render_markdown(check(docs))
    assert "[dashboard](https://backfills.example.com/backfills/kept) once applied" in text
    assert "[dashboard](https://backfills.example.com/backfills/new) once applied" in text
    assert "dashboard" not in render_markdown(check(HEAD))
