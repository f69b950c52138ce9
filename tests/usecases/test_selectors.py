"""Label selectors (backfill_ctl.usecases.selectors): kubectl's equality and set syntax."""

from __future__ import annotations

import pytest

from backfill_ctl.errors import UsageError
from backfill_ctl.usecases.selectors import Requirement, matches, parse, split

RETAIL = {"team": "retail", "env": "prod"}
WEB = {"team": "web"}
NONE: dict[str, str] = {}


def test_commas_inside_parentheses_belong_to_the_set() -> None:
    assert split("team in (a,b),env,!x") == ["team in (a,b)", "env", "!x"]
    assert parse(["team in (retail, web),env notin (dev)"]) == (
        Requirement("team", "in", ("retail", "web")),
        Requirement("env", "notin", ("dev",)),
    )


@pytest.mark.parametrize(
    ("selector", "retail", "web", "none"),
    [
        ("team=retail", True, False, False),
        ("team==retail", True, False, False),
        ("team!=retail", False, True, True),
        ("team in (retail,web)", True, True, False),
        ("team in (web)", False, True, False),
        ("team notin (retail)", False, True, True),
        ("env", True, False, False),
        ("!env", False, True, True),
        ("team,!env", False, True, False),
        ("team in (retail,web),env=prod", True, False, False),
    ],
)
def test_each_requirement_as_kubectl_reads_it(
    selector: str, retail: bool, web: bool, none: bool
) -> None:
    parsed = parse([selector])
    assert [matches(labels, parsed) for labels in (RETAIL, WEB, NONE)] == [retail, web, none]


def test_repeated_selectors_all_hold() -> None:
    assert matches(RETAIL, parse(["team=retail", "env"]))
    assert not matches(WEB, parse(["team=web", "env"]))
    assert matches(NONE, parse([]))


@pytest.mark.parametrize(
    "text", ["=retail", "", "team in (a", "team in ()", "team in a,b", "a b", "team=(x)"]
)
def test_a_malformed_selector_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse([text])
    assert caught.value.exit_code == 2
    assert caught.value.hint is not None and "key in (a,b)" in caught.value.hint
