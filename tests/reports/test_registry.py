"""The reporters by name: every `-o` a command offers has a reporter, and nothing else;
an unknown name is a clear usage error; the listing reporters write what `get` prints."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from backfill_ctl.cli.check import CheckFormat
from backfill_ctl.cli.get import Format
from backfill_ctl.cli.plan import PlanFormat
from backfill_ctl.cli.validate import ValidateFormat
from backfill_ctl.errors import UsageError
from backfill_ctl.reports.formats import VALIDATE, Validation
from backfill_ctl.reports.listing import Columns, Item
from backfill_ctl.reports.registry import REPORTER_BY_NAME, reporter
from tests.builders import backfill, node, specs_of, workspace

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from backfill_ctl.errors import Diagnostic


class Recorder:
    """A sink that keeps what is written, on which side."""

    def __init__(self, summary: bool = False) -> None:
        self.data: list[str] = []
        self.notes: list[str] = []
        self.summaries: list[str] = []
        self.summary = summary

    def write(self, text: str) -> None:
        self.data.append(text)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def diagnostics(self, diagnostics: Iterable[Diagnostic], *, code: bool, data: bool) -> None:
        lines = [d.format(code=code) + "\n" for d in diagnostics]
        (self.data if data else self.notes).extend(lines)

    def step_summary(self, text: Callable[[], str]) -> None:
        if self.summary:
            self.summaries.append(text())


def test_each_command_offers_exactly_its_reporters() -> None:
    assert set(REPORTER_BY_NAME) == {"plan", "check", "validate", "get"}
    assert REPORTER_BY_NAME["plan"].names == tuple(PlanFormat)
    assert REPORTER_BY_NAME["check"].names == tuple(CheckFormat)
    assert REPORTER_BY_NAME["validate"].names == tuple(ValidateFormat)
    # get without -o prints the table
    assert set(REPORTER_BY_NAME["get"].names) == {"table", *Format}


def test_an_unknown_format_or_command_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as raised:
        reporter("plan", "html")
    assert raised.value.message == "plan --output: unknown format 'html'"
    assert raised.value.hint == "use one of table, json, yaml"
    assert raised.value.exit_code == 2
    with pytest.raises(UsageError, match="'logs' has no output formats"):
        reporter("logs", "json")
    assert "markdown" in REPORTER_BY_NAME["check"]
    assert reporter("check", "markdown") is REPORTER_BY_NAME["check"]["markdown"]


def test_plan_reporters_render_a_plan_in_chunks() -> None:
    from backfill_ctl.usecases.plan import make_plan
    from tests.builders import NOW

    specs = specs_of(workspace(), node("a"), backfill())
    plan, _ = make_plan(specs, NOW, None)

    chunks = list(reporter("plan", "json")(plan, specs))
    assert len(chunks) > 1
    assert "".join(chunks).startswith("{")
    (table,) = reporter("plan", "table")(plan, specs)
    assert "bf" in table
    assert table.endswith("\n")
    empty = specs_of(workspace(), node("a"))
    none, _ = make_plan(empty, NOW, None)
    assert list(reporter("plan", "table")(none, empty)) == [
        "No Backfill to plan: the specs hold no Backfill document.\n"
    ]


def test_validate_text_puts_diagnostics_beside_the_data_and_json_in_it() -> None:
    from backfill_ctl.core.semantics import validate

    specs = specs_of(workspace(), node("a", upstream=["missing"]))
    found = Validation(specs, specs.diagnostics + validate(specs, None)[1])
    text, data = Recorder(), Recorder()

    VALIDATE["text"](found, text)
    VALIDATE["json"](found, data)

    assert found.errors == 1
    assert [n for n in text.notes if "missing" in n]
    assert text.data == [
        "1 file, 2 documents (1 workspace, 0 resource groups, 1 node, 0 backfills): "
        "1 error, 0 warnings\n"
    ]
    assert data.data[0].startswith('{\n  "valid": false,\n  "errors": 1,')


COLUMNS = Columns("backfills", ("NAME", "AGE"), ("FILE",))
ONE = Item("backfill/a", ("a", "1d"), ("f.yaml",), {"name": "a"})
LONGER = Item("backfill/a", ("a", "1000d"), ("f.yaml",), {"name": "a", "age": "1000d"})


def test_a_watched_table_keeps_and_widens_its_columns() -> None:
    sink = Recorder()
    table = reporter("get", "table")(COLUMNS, sink)

    table.listing([ONE])
    table.changes([LONGER])

    assert "".join(sink.data) == "NAME  AGE\na     1d\na     1000d\n"


def test_an_empty_table_says_so_beside_the_data_and_prints_its_header_later() -> None:
    sink = Recorder()
    wide = reporter("get", "wide")(COLUMNS, sink)

    wide.listing([])
    wide.changes([ONE])

    assert sink.notes == ["No backfills found."]
    assert "".join(sink.data) == "NAME  AGE  FILE\na     1d   f.yaml\n"


def test_data_and_names() -> None:
    yaml, json, names = Recorder(), Recorder(), Recorder()
    for name, sink in (("yaml", yaml), ("json", json), ("name", names)):
        report = reporter("get", name)(COLUMNS, sink)
        report.listing([ONE])
        report.changes([LONGER])

    assert yaml.data == ["- name: a\n", "---\nname: a\nage: 1000d\n"]
    assert json.data[0] == '[\n  {\n    "name": "a"\n  }\n]\n'
    assert names.data == ["backfill/a\n", "backfill/a\n"]
    assert json.notes == yaml.notes == names.notes == []
