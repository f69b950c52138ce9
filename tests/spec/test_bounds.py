"""Bounded messages and input (issue 11 item 9), and the names a syntax error hides."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from backfill_ctl.errors import MAX_TEXT, Diagnostic, UsageError, clip, quote
from backfill_ctl.reports.check_text import refusal
from backfill_ctl.reports.github import annotation
from backfill_ctl.spec.source import read_sources
from backfill_ctl.spec.yamlfile import unparsed_documents


def test_quote_keeps_a_few_hundred_characters_of_a_value() -> None:
    assert quote("short") == "'short'"
    assert quote("x" * 1000) == repr("x" * 200) + "... (800 more characters)"
    assert quote(list(range(10_000))) == "<a list of 10000 items>"
    assert len(quote({"a": ["b" * 5000] * 5})) < 400


def test_a_diagnostic_message_and_hint_are_cut() -> None:
    d = Diagnostic("m" * 50_000, hint="h" * 50_000)
    assert len(d.message) < MAX_TEXT + 50
    assert d.hint is not None and len(d.hint) < MAX_TEXT + 50
    assert clip("abc", 2) == "ab... (1 more characters)"


def test_a_github_annotation_is_bounded() -> None:
    d = Diagnostic("m" * 50_000, file="f.yaml", hint="h" * 50_000)
    assert len(annotation(d)) < 3 * MAX_TEXT


def test_a_file_above_the_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("a: 1\n" * 100, encoding="utf-8")
    with pytest.raises(UsageError) as caught:
        read_sources([str(path)], max_bytes=100)
    assert caught.value.message == (
        f"{path}: 500 bytes is larger than the limit of 100 bytes for a spec file"
    )
    assert read_sources([str(path)], max_bytes=500)[0].text.startswith("a: 1")


def test_stdin_above_the_limit_is_refused() -> None:
    with pytest.raises(UsageError, match=r"^<stdin>: .* larger than the limit of 10 bytes"):
        read_sources(["-"], io.StringIO("a: 1\n" * 10), max_bytes=10)


def test_the_documents_a_syntax_error_hides_are_named_from_their_text() -> None:
    text = (
        "kind: Node\nmetadata: {name: a}\n---\n"
        "kind: Workspace\nmetadata:\n  labels: {x: y}\n  name: 'ws'\nspec:\n\ttimezone: UTC\n"
        "---\nkind: Backfill\nmetadata:\n  name: bf\n"
    )
    assert unparsed_documents(text, 8) == [("Workspace", "ws", 4), ("Backfill", "bf", 11)]


@pytest.mark.parametrize(
    ("codes", "text"),
    [
        (
            ["too-many-instances", "self-dependent-parallel"],
            "apply refused: 2 error finding(s) (a Backfill may accept its risks with "
            "checks.stopOnRisk: false)",
        ),
        (
            ["too-many-instances", "target-without-instances"],
            "apply refused: 2 error finding(s); fix the others first (checks.stopOnRisk: "
            "false accepts only too-many-instances)",
        ),
        (
            ["dependency-loop"],
            "apply refused: 1 error finding(s); fix them first (checks.stopOnRisk: false "
            "does not accept these)",
        ),
    ],
)
def test_apply_refused_suggests_stop_on_risk_only_where_it_helps(
    codes: list[str], text: str
) -> None:
    assert refusal("apply", [Diagnostic("m", code=c) for c in codes]) == text
