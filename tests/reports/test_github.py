"""`check -o github`: findings as workflow-command annotations, escaped as the runner wants."""

from __future__ import annotations

import pytest

from backfill_ctl.errors import Diagnostic, Severity
from backfill_ctl.reports.github import (
    annotation,
    escape_data,
    escape_property,
    render_annotations,
)


def finding(
    message: str = "m",
    severity: Severity = "error",
    *,
    file: str = "specs/b.yaml",
    line: int | None = 6,
    col: int | None = 3,
    code: str = "no-permission-target",
    hint: str | None = None,
) -> Diagnostic:
    return Diagnostic(
        message, file=file, line=line, col=col, severity=severity, code=code, hint=hint
    )


@pytest.mark.parametrize(
    ("text", "data", "prop"),
    [
        ("plain text", "plain text", "plain text"),
        ("100%", "100%25", "100%25"),
        ("%0A is not a newline", "%250A is not a newline", "%250A is not a newline"),
        ("one\ntwo", "one%0Atwo", "one%0Atwo"),
        ("one\r\ntwo", "one%0D%0Atwo", "one%0D%0Atwo"),
        ("a: b, c", "a: b, c", "a%3A b%2C c"),
        ("50%: x,\n", "50%25: x,%0A", "50%25%3A x%2C%0A"),
    ],
)
def test_escaping_follows_the_runner(text: str, data: str, prop: str) -> None:
    assert escape_data(text) == data
    assert escape_property(text) == prop


def test_an_annotation_points_at_file_line_and_column_with_the_hint() -> None:
    f = finding(
        "'bob' may not operate target node 'a': 100% sure",
        hint="ask alice, or ops",
    )

    assert annotation(f) == (
        "::error file=specs/b.yaml,line=6,col=3,title=backfillctl no-permission-target::"
        "'bob' may not operate target node 'a': 100%25 sure%0Ahint: ask alice, or ops"
    )


def test_properties_are_escaped_and_the_message_keeps_colons_and_commas() -> None:
    f = finding("a, b: c\nd", "warning", file="specs/a,b:c%.yaml", code="overlap")

    assert annotation(f) == (
        "::warning file=specs/a%2Cb%3Ac%25.yaml,line=6,col=3,title=backfillctl overlap::a, b: c%0Ad"
    )


@pytest.mark.parametrize(
    ("line", "col", "props"),
    [
        (None, None, "file=x.yaml,title=backfillctl backfill-added"),
        (None, 4, "file=x.yaml,title=backfillctl backfill-added"),  # no column without a line
        (7, None, "file=x.yaml,line=7,title=backfillctl backfill-added"),
    ],
)
def test_a_finding_without_a_line_has_no_line_property(
    line: int | None, col: int | None, props: str
) -> None:
    f = finding(
        "adds Backfill x", "notice", file="x.yaml", line=line, col=col, code="backfill-added"
    )

    assert annotation(f) == f"::notice {props}::adds Backfill x"


def test_a_finding_without_a_file_has_only_a_title() -> None:
    f = finding("no file", file="", line=None, col=None, code="invalid")

    assert annotation(f) == "::error title=backfillctl invalid::no file"


def test_errors_come_first_then_warnings_then_notices_each_in_their_order() -> None:
    findings = [
        finding("n1", "notice", file="a.yaml"),
        finding("w1", "warning", file="a.yaml"),
        finding("e1", "error", file="z.yaml"),
        finding("n2", "notice", file="b.yaml"),
        finding("e2", "error", file="a.yaml"),
        finding("w2", "warning", file="b.yaml"),
    ]

    lines = render_annotations(findings)

    assert [line.rsplit("::", 1)[1] for line in lines] == ["e1", "e2", "w1", "w2", "n1", "n2"]
    assert [line.split(" ")[0] for line in lines] == [
        "::error",
        "::error",
        "::warning",
        "::warning",
        "::notice",
        "::notice",
    ]


def test_no_findings_no_annotations() -> None:
    assert render_annotations([]) == []
