"""state/sql/blocks.py: a column all of a date's instances share is told from its text."""

from __future__ import annotations

import itertools
import json

from backfill_ctl.state.sql.blocks import _one


def test_a_column_of_one_value_is_that_value() -> None:
    assert _one("5,5,5", 3) == "5"
    assert _one('"UTC","UTC"', 2) == '"UTC"'
    assert _one('"UTC", "UTC"', 2, ", ") == '"UTC"'  # PostgreSQL's json_agg
    assert _one("null", 1) == "null"
    assert _one("[],[],[]", 3) == "[]"


def test_a_column_that_differs_or_whose_value_holds_a_comma_is_a_list() -> None:
    assert _one("5,55", 2) is None
    assert _one("5,5,6", 3) is None
    assert _one("ab,ab,xy", 3) is None  # the length and the count alone would say "ab"
    assert _one('"x,y","x,y"', 2) is None  # read as a list: the same values
    assert _one('"x, y", "x, y"', 2, ", ") is None


def test_the_text_test_agrees_with_splitting_on_every_short_column() -> None:
    """Every column of 1 to 4 numbers' texts, joined by commas, and of JSON strings
    (with commas, spaces and quotes in them) joined by SQLite's "," and PostgreSQL's ", "."""
    for n in range(1, 5):
        for values in itertools.product(["", "1", "11", "2", "12"], repeat=n):
            expected = values[0] if len(set(values)) == 1 else None
            assert _one(",".join(values), n) == expected, values
        for texts in itertools.product(["a", ",", ", ", "a,", '"', ""], repeat=n):
            strings = [json.dumps(t) for t in texts]
            expected = strings[0] if len(set(strings)) == 1 else None
            for sep in (",", ", "):
                found = _one(sep.join(strings), n, sep)
                assert found in (expected, None), (strings, sep)  # never a wrong value
                if "," not in texts[0]:
                    assert found == expected, (strings, sep)
