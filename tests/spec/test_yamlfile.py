"""Strict YAML reading (spec.yamlfile): the YAML 1.1 traps, each pinned to its message."""

from __future__ import annotations

import time
from typing import Any

import pytest
import yaml

from backfill_ctl.errors import Diagnostic
from backfill_ctl.spec import yamlfile
from backfill_ctl.spec.yamlfile import RawDocument, parse_text

CALLS: list[Any] = []


def constructor_spy(*args: Any) -> str:
    """Target of the `!!python/object/apply` tests: reading YAML must never call it."""
    CALLS.append(args)
    return "constructed"


def parse(text: str) -> tuple[list[RawDocument], list[Diagnostic]]:
    return parse_text("f.yaml", text)


def data_of(text: str) -> Any:
    docs, diags = parse(text)
    assert not diags, [d.format() for d in diags]
    assert len(docs) == 1
    return docs[0].data


def only(diags: list[Diagnostic]) -> Diagnostic:
    assert len(diags) == 1, [d.format() for d in diags]
    return diags[0]


# -- duplicate keys ------------------------------------------------------------------


def test_duplicate_key_names_the_key_and_the_first_line_and_keeps_the_first() -> None:
    docs, diags = parse("a: 1\nb: 2\na: 3\n")
    d = only(diags)
    assert d.message == "duplicate key 'a' (first defined on line 1)"
    assert d.hint == "remove one of the two; YAML would keep only the last"
    assert (d.line, d.col, d.path, d.code) == (3, 1, ("a",), "yaml")
    assert docs[0].data == {"a": 1, "b": 2}


def test_duplicate_key_in_a_nested_mapping() -> None:
    _, diags = parse("spec:\n  select:\n    method: link\n    method: manual\n")
    d = only(diags)
    assert d.message == "duplicate key 'method' (first defined on line 3)"
    assert (d.line, d.col, d.path) == (4, 5, ("spec", "select", "method"))


def test_duplicate_key_in_a_list_item() -> None:
    _, diags = parse("dates:\n  - from: 2024-03-01\n    to: 2024-03-02\n    from: 2024-03-03\n")
    d = only(diags)
    assert d.message == "duplicate key 'from' (first defined on line 2)"
    assert (d.line, d.col, d.path) == (4, 5, ("dates", 0, "from"))


def test_quoted_and_plain_spellings_of_a_key_are_the_same_key() -> None:
    _, diags = parse('kind: Node\n"kind": Backfill\n')
    assert only(diags).message == "duplicate key 'kind' (first defined on line 1)"


def test_the_same_key_in_different_mappings_is_not_a_duplicate() -> None:
    assert data_of("a: {x: 1}\nb: {x: 2}\n") == {"a": {"x": 1}, "b": {"x": 2}}


# -- YAML 1.1 booleans ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "value"),
    [("yes", True), ("no", False), ("on", True), ("off", False), ("Yes", True), ("OFF", False)],
)
def test_yaml11_boolean_words_as_values_are_errors(word: str, value: bool) -> None:
    docs, diags = parse(f"suspend: {word}\n")
    d = only(diags)
    assert d.message == f"{word!r} is read as a boolean by YAML 1.1"
    assert d.hint == f'write true or false, or quote it ("{word}") for a string'
    assert (d.line, d.col, d.path) == (1, 10, ("suspend",))
    # the value is still what YAML 1.1 means, so the schema sees the same trap
    assert docs[0].data == {"suspend": value}


@pytest.mark.parametrize("word", ["y", "n", "Y", "N"])
def test_single_letters_are_strings_in_pyyaml(word: str) -> None:
    # YAML 1.1 lists y/n as booleans, but PyYAML's resolver does not: they stay text
    assert data_of(f"v: {word}\n") == {"v": word}


@pytest.mark.parametrize(
    ("word", "value"), [("true", True), ("false", False), ("True", True), ("FALSE", False)]
)
def test_true_and_false_are_accepted(word: str, value: bool) -> None:
    assert data_of(f"v: {word}\n") == {"v": value}


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("010", "write 10 (or 0o10 for octal)"),
        ("-0755", "write -755 (or -0o755 for octal)"),
    ],
)
def test_yaml11_octal_numbers_are_errors(text: str, hint: str) -> None:
    d = only(parse(f"priority: {text}\n")[1])
    assert (d.message, d.hint) == (f"{text!r} is read as an octal number by YAML 1.1", hint)


@pytest.mark.parametrize("text", ["0", "10", "0o10", "0x1f", "0.5"])
def test_numbers_that_mean_the_same_in_yaml_12_are_fine(text: str) -> None:
    assert parse(f"n: {text}\n")[1] == []


@pytest.mark.parametrize("word", ["yes", "no", "on", "off"])
def test_yaml11_boolean_words_as_keys_are_errors_and_dropped(word: str) -> None:
    docs, diags = parse(f"{word}: 1\nkeep: 2\n")
    d = only(diags)
    assert d.message == f"key {word!r} is read as a boolean by YAML 1.1"
    assert d.hint == f'quote it: "{word}":'
    assert (d.line, d.col, d.path) == (1, 1, (word,))
    assert docs[0].data == {"keep": 2}


def test_quoted_boolean_words_are_strings() -> None:
    assert data_of("'on': \"yes\"\n") == {"on": "yes"}


def test_a_text_read_plain_and_quoted_keeps_each_meaning_in_every_file() -> None:
    """Tags are resolved once per distinct text and quoting, for every file read: the
    same words quoted and plain, in one document and in the next files, keep theirs."""
    text = "a: 12\nb: '12'\nc: null\nd: 'null'\ne: [12, '12', 1.5, '1.5', ~, '']\n"
    expected = {
        "a": 12,
        "b": "12",
        "c": None,
        "d": "null",
        "e": [12, "12", 1.5, "1.5", None, ""],
    }

    assert [data_of(text) for _ in range(3)] == [expected] * 3
    assert data_of("'12': 12\n") == {"12": 12}


# -- numbers, times and dates --------------------------------------------------------


@pytest.mark.parametrize("text", ["22:00", "00:00", "06:30", "1:30", "1:30:00", "190:20:30"])
def test_base60_numbers_stay_the_text_written(text: str) -> None:
    # YAML 1.1 reads 22:00 as the integer 1320; a time of day must stay "22:00"
    assert data_of(f"from: {text}\n") == {"from": text}


def test_base60_float_stays_text() -> None:
    assert data_of("t: 1:30.5\n") == {"t": "1:30.5"}


def test_plain_numbers_are_numbers() -> None:
    assert data_of("a: 8\nb: 1.5\nc: 0x10\nd: 1_000\ne: -3\n") == {
        "a": 8,
        "b": 1.5,
        "c": 16,
        "d": 1000,
        "e": -3,
    }


@pytest.mark.parametrize("text", ["2024-03-01", "2024-03-01T10:00:00Z", "2024-03-01 10:00:00"])
def test_unquoted_dates_and_timestamps_stay_text(text: str) -> None:
    assert data_of(f"d: {text}\n") == {"d": text}


def test_a_date_as_a_key_is_its_text() -> None:
    assert data_of("2024-03-01: x\n") == {"2024-03-01": "x"}


# -- explicit tags -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("a: !!python/object:os.system {}\n", "tag:yaml.org,2002:python/object:os.system"),
        (
            "a: !!python/object/apply:tests.spec.test_yamlfile.constructor_spy [x]\n",
            "tag:yaml.org,2002:python/object/apply:tests.spec.test_yamlfile.constructor_spy",
        ),
        (
            "a: !!python/name:tests.spec.test_yamlfile.constructor_spy ''\n",
            "tag:yaml.org,2002:python/name:tests.spec.test_yamlfile.constructor_spy",
        ),
        ("a: !!binary aGVsbG8=\n", "tag:yaml.org,2002:binary"),
        ("a: !!set {x, y}\n", "tag:yaml.org,2002:set"),
        ("a: !!omap [{x: 1}]\n", "tag:yaml.org,2002:omap"),
        ("a: !custom x\n", "!custom"),
        ("a: !!str {b: 1}\n", "tag:yaml.org,2002:str"),
    ],
)
def test_explicit_tags_are_rejected_without_constructing(text: str, tag: str) -> None:
    CALLS.clear()
    docs, diags = parse(text)
    d = only(diags)
    assert d.message == f"unsupported YAML tag {tag!r}"
    assert d.hint == "remove the explicit tag; specs use plain YAML only"
    assert (d.line, d.col, d.path) == (1, 4, ("a",))
    assert CALLS == []
    # what is left is plain data: nothing but dicts, lists and scalars
    assert type(docs[0].data["a"]) in (dict, list, str)


@pytest.mark.parametrize(("text", "value"), [("a: !!str 12\n", "12"), ("a: !!int '12'\n", 12)])
def test_core_scalar_tags_are_plain_yaml(text: str, value: Any) -> None:
    assert data_of(text) == {"a": value}


@pytest.mark.parametrize("text", ["a: !!int abc\n", "a: !!float abc\n"])
def test_a_number_tag_on_text_is_an_error_not_a_crash(text: str) -> None:
    docs, diags = parse(text)
    d = only(diags)
    assert d.message == "'abc' is not a number"
    assert (d.line, d.col, d.path) == (1, 4, ("a",))
    assert docs[0].data == {"a": "abc"}


# -- merge keys and aliases ----------------------------------------------------------


def test_merge_key_explicit_keys_win() -> None:
    text = "base: &b {order: ascending, groups: 2}\nspec:\n  <<: *b\n  groups: 3\n"
    assert data_of(text)["spec"] == {"order": "ascending", "groups": 3}


def test_merge_key_with_a_list_earlier_sources_win() -> None:
    text = "a: &a {x: 1, y: 2}\nb: &b {x: 10, z: 3}\nm:\n  <<: [*a, *b]\n  y: 20\n"
    assert data_of(text)["m"] == {"x": 1, "y": 20, "z": 3}


def test_merge_key_explicit_key_wins_even_before_the_merge() -> None:
    assert data_of("a: &a {x: 1}\nm:\n  x: 2\n  <<: *a\n")["m"] == {"x": 2}


def test_merge_of_a_scalar_is_an_error() -> None:
    _, diags = parse("m:\n  <<: 5\n")
    d = only(diags)
    assert d.message == "a merge key (<<) needs a mapping"
    assert (d.line, d.col, d.path) == (2, 7, ("m",))


def test_aliases_repeat_their_anchor() -> None:
    assert data_of("a: &x [1, 2]\nb: *x\n") == {"a": [1, 2], "b": [1, 2]}


@pytest.mark.parametrize(
    ("text", "path"), [("a: &a [*a]\n", ("a", 0)), ("a: &a {b: *a}\n", ("a", "b"))]
)
def test_recursive_alias_is_an_error(text: str, path: tuple[Any, ...]) -> None:
    _, diags = parse(text)
    d = only(diags)
    assert d.message == "recursive alias"
    assert d.hint == "an alias may not refer to itself"
    assert d.path == path


def test_billion_laughs_is_stopped() -> None:
    # nine levels of nine aliases: 9**10 values if expanded; we stop at 100000 repeats
    lines = ["a0: &a0 [" + ", ".join(["lol"] * 9) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    start = time.perf_counter()
    _, diags = parse("\n".join(lines) + "\n")
    elapsed = time.perf_counter() - start
    d = only(diags)
    assert d.message == "aliases expand this document to more than 100000 repeated values"
    assert d.hint == "remove the aliases that repeat large parts of the document"
    assert elapsed < 10  # a full expansion would not finish at all


# -- syntax errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "col", "problem", "hint"),
    [
        (
            "a: 1\n\tb: 2\n",
            2,
            1,
            "found a tab character that violates indentation",
            "indent with spaces; YAML does not allow tabs for indentation",
        ),
        (
            "spec:\n\tgroups: 2\n",
            2,
            1,
            "found character that cannot start any token",
            "indent with spaces; YAML does not allow tabs for indentation",
        ),
        (
            "a: b: c\n",
            1,
            5,
            "mapping values are not allowed in this context",
            "a value containing ': ' must be quoted",
        ),
        (
            "a: [1, 2\n",
            2,
            1,
            "did not find expected ',' or ']'",
            "check the indentation and quoting around this position",
        ),
    ],
)
def test_syntax_errors_have_line_column_and_hint(
    text: str, line: int, col: int, problem: str, hint: str
) -> None:
    docs, diags = parse(text)
    d = only(diags)
    assert d.message == f"YAML syntax error: {problem}"
    assert d.hint == hint
    assert (d.file, d.line, d.col, d.code) == ("f.yaml", line, col, "yaml-syntax")
    assert docs == []


def test_a_syntax_error_ends_the_file_but_keeps_the_documents_before_it() -> None:
    docs, diags = parse("a: 1\n---\nb: [\n---\nc: 3\n")
    assert [d.data for d in docs] == [{"a": 1}]
    d = only(diags)
    assert (d.doc, d.line) == (1, 4)


# -- documents -----------------------------------------------------------------------


def test_multi_document_file_with_empty_documents_keeps_indexes_and_lines() -> None:
    text = "---\n---\na: 1\n---\n# only a comment\n---\nb: 2\n...\n"
    docs, diags = parse(text)
    assert not diags
    assert [(d.index, d.line, d.data) for d in docs] == [
        (0, 2, None),
        (1, 3, {"a": 1}),
        (2, 6, None),
        (3, 7, {"b": 2}),
    ]
    assert {d.file for d in docs} == {"f.yaml"}


def test_document_line_is_where_its_content_starts() -> None:
    docs, _ = parse("# header\n\nkind: A\n---\n\n\nkind: B\n")
    assert [(d.line, d.data) for d in docs] == [(3, {"kind": "A"}), (7, {"kind": "B"})]


def test_diagnostics_carry_their_document_index() -> None:
    _, diags = parse("a: 1\n---\nb: 1\nb: 2\n")
    d = only(diags)
    assert (d.doc, d.line) == (1, 4)


@pytest.mark.parametrize("text", ["", "\n", "# nothing\n"])
def test_empty_files_have_no_documents(text: str) -> None:
    assert parse(text) == ([], [])


@pytest.mark.parametrize("loader", [yaml.SafeLoader, yamlfile._Loader])
def test_tab_hint_with_either_parser(
    loader: type[yaml.SafeLoader], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the C parser is used when available; the pure-Python fallback words tab errors
    # differently ("found character '\t' ..."), and must give the same hint
    monkeypatch.setattr(yamlfile, "_Loader", loader)
    _, diags = parse("spec:\n\tgroups: 2\n")
    d = only(diags)
    assert d.hint == "indent with spaces; YAML does not allow tabs for indentation"
    assert (d.line, d.col) == (2, 1)
