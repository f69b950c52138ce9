"""`backfillctl validate`: every kind of mistake with the exact message a user sees.

A message is a contract: each case pins the exit code and the exact stderr lines
(`file:line:col: error: $.path: message` and its `hint:`). Spec mistakes exit 1,
unusable input exits 2, and no traceback ever reaches the user (see helpers.run).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.builders import backfill, config, dump, node, workspace
from tests.cli.helpers import CATALOG, EXAMPLE_SPECS, NOW, drop, run, write_files


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # file names in messages are the paths as given


@dataclass(frozen=True)
class Mistake:
    files: dict[str, str | bytes]
    stderr: list[str]
    code: int = 1
    args: tuple[str, ...] = (".",)


def with_catalog(backfill_doc: str, **more: str) -> dict[str, str | bytes]:
    return {"catalog.yaml": CATALOG, "backfill.yaml": backfill_doc, **more}


DUPLICATE_KEY = """\
apiVersion: backfillctl.dev/v1alpha1
kind: Backfill
metadata: {name: bf}
spec:
  select: {method: descendants, roots: [a]}
  dates: [2024-03-01]
  groups: 2
  groups: 3
"""
UNQUOTED_COLON = """\
apiVersion: backfillctl.dev/v1alpha1
kind: Backfill
metadata:
  name: bf
  labels: {ticket: DATA-1}
spec:
  parameters:
    note: fix: reload orders
"""

SPEC_MISTAKES: dict[str, Mistake] = {
    "yaml-syntax": Mistake(
        with_catalog(UNQUOTED_COLON),
        [
            "backfill.yaml:8:14: error: YAML syntax error: "
            "mapping values are not allowed in this context",
            "  hint: a value containing ': ' must be quoted",
        ],
    ),
    "duplicate-key": Mistake(
        with_catalog(DUPLICATE_KEY),
        [
            "backfill.yaml:8:3: error: $.spec.groups: duplicate key 'groups' "
            "(first defined on line 7)",
            "  hint: remove one of the two; YAML would keep only the last",
        ],
    ),
    "unknown-field": Mistake(
        with_catalog(dump(backfill(grups=2))),
        [
            "backfill.yaml:12:3: error: $.spec.grups: unknown field 'grups'",
            "  hint: did you mean 'groups'?",
        ],
    ),
    "missing-field": Mistake(
        with_catalog(dump(drop(backfill(), "spec", "dates"))),
        [
            "backfill.yaml:5:1: error: $.spec: missing required field 'dates'",
            "  hint: add the missing field",
        ],
    ),
    "wrong-enum": Mistake(
        with_catalog(dump(backfill(order="up"))),
        [
            "backfill.yaml:12:3: error: $.spec.order: 'up' is not one of: ascending, descending",
            "  hint: use one of: ascending, descending",
        ],
    ),
    "kind-that-is-a-list": Mistake(
        with_catalog("apiVersion: backfillctl.dev/v1alpha1\nkind: [Backfill]\n"),
        [
            "backfill.yaml:2:1: error: $.kind: unknown kind ['Backfill']",
            "  hint: did you mean 'Backfill'?",
        ],
    ),
    "selection-without-method": Mistake(
        with_catalog(dump(backfill(select={"roots": ["a"]}))),
        [
            "backfill.yaml:6:3: error: $.spec.select: missing required field 'method'",
            "  hint: add the missing field",
        ],
    ),
    "misspelt-enum": Mistake(
        with_catalog(dump(backfill(order="decending"))),
        [
            "backfill.yaml:12:3: error: $.spec.order: 'decending' is not one of: ascending, "
            "descending",
            "  hint: did you mean 'descending'?",
        ],
    ),
    "bad-date": Mistake(
        with_catalog(dump(backfill(dates=["2024-02-30"]))),
        [
            "backfill.yaml:11:5: error: $.spec.dates[0]: '2024-02-30' is not a calendar date",
            "  hint: A calendar date, YYYY-MM-DD (quoted or not), for example '2024-03-01'",
        ],
    ),
    "business-date-past-the-calendar": Mistake(
        with_catalog(dump(backfill(dates=["9999-12-31"]))),
        [
            "backfill.yaml:11:5: error: $.spec.dates[0]: business date 9999-12-31 is out of range",
            "  hint: use a date from 0200-01-01 to 9799-12-31: an instance is scheduled the day "
            "after its business date, and its parameters may shift that by up to 100 years",
        ],
    ),
    "business-date-before-the-calendar": Mistake(
        with_catalog(dump(backfill(dates=[{"from": "0001-01-01", "to": "2024-03-01"}]))),
        [
            "backfill.yaml:11:5: error: $.spec.dates[0].from: business date 0001-01-01 is out "
            "of range",
            "  hint: use a date from 0200-01-01 to 9799-12-31: an instance is scheduled the day "
            "after its business date, and its parameters may shift that by up to 100 years",
        ],
    ),
    "duration-past-the-calendar": Mistake(
        {
            "catalog.yaml": CATALOG,
            "more.yaml": dump(node("d", run={"command": ["x"], "timeout": "9999999999d"})),
        },
        [
            "more.yaml:14:5: error: $.spec.run.timeout: '9999999999d' is longer than the "
            "limit of 36600d (100 years)",
            "  hint: write a shorter duration, such as 2h or 30d",
        ],
    ),
    "reversed-range": Mistake(
        with_catalog(dump(backfill(dates=[{"from": "2024-03-05", "to": "2024-03-01"}]))),
        [
            "backfill.yaml:11:5: error: $.spec.dates[0]: reversed range: "
            "from 2024-03-05 is after to 2024-03-01",
            "  hint: swap from and to",
        ],
    ),
    "unknown-root": Mistake(
        with_catalog(dump(backfill(select={"method": "descendants", "roots": ["aa"]}))),
        [
            "backfill.yaml:9:7: error: $.spec.select.roots[0]: unknown node 'aa'",
            "  hint: did you mean 'a'?",
        ],
    ),
    "unknown-upstream": Mistake(
        {"catalog.yaml": CATALOG, "more.yaml": dump(node("d", upstream=["bb"]))},
        [
            "more.yaml:11:5: error: $.spec.upstream[0]: unknown upstream node 'bb'",
            "  hint: did you mean 'b'?",
        ],
    ),
    "unknown-block": Mistake(
        with_catalog(
            dump(backfill(select={"method": "descendants", "roots": ["a"], "block": ["zz"]}))
        ),
        [
            "backfill.yaml:11:7: error: $.spec.select.block[0]: unknown node 'zz'",
            "  hint: add a Node with that name",
        ],
    ),
    "unknown-workspace": Mistake(
        {"catalog.yaml": CATALOG, "more.yaml": dump(node("d", workspace="sales"))},
        [
            "more.yaml:5:3: error: $.metadata.workspace: unknown workspace 'sales'",
            "  hint: add a Workspace document with that name, or use one of: ws",
        ],
    ),
    "unknown-resource-group": Mistake(
        {"catalog.yaml": CATALOG, "more.yaml": dump(node("d", resourceGroup="etl"))},
        [
            "more.yaml:16:3: error: $.spec.resourceGroup: unknown resource group 'etl'",
            "  hint: add a ResourceGroup document with that name",
        ],
    ),
    "unknown-resource-group-of-backfill": Mistake(
        with_catalog(dump(backfill(resourceGroup="pool"))),
        [
            "backfill.yaml:12:3: error: $.spec.resourceGroup: unknown resource group 'pool'",
            "  hint: use follow-node or a ResourceGroup's name",
        ],
    ),
    "bad-cron": Mistake(
        {"catalog.yaml": CATALOG, "more.yaml": dump(node("d", schedule="0 2 * *"))},
        [
            "more.yaml:9:3: error: $.spec.schedule: invalid cron expression '0 2 * *': "
            "it has 4 fields, a cron expression has 5",
            '  hint: use five fields: minute hour day-of-month month day-of-week, e.g. "0 2 * * *"',
        ],
    ),
    "bad-timezone": Mistake(
        {"catalog.yaml": CATALOG, "more.yaml": dump(workspace("w2", timezone="Mars/Base"))},
        [
            "more.yaml:6:3: error: $.spec.timezone: unknown timezone 'Mars/Base'",
            "  hint: use an IANA name such as Asia/Shanghai, Europe/Berlin or UTC",
        ],
    ),
    "dependency-loop": Mistake(
        {
            "catalog.yaml": dump(
                workspace(),
                node("a", upstream=["c"]),
                node("b", upstream=["a"]),
                node("c", upstream=["b"]),
            )
        },
        [
            "catalog.yaml:19:5: error: $.spec.upstream[0]: dependency loop: a -> b -> c -> a",
            "  hint: remove one of these upstream entries to break the loop",
        ],
    ),
    "unreachable-end": Mistake(
        with_catalog(dump(backfill(select={"method": "link", "start": "c", "ends": ["a"]}))),
        [
            "backfill.yaml:10:7: error: $.spec.select.ends[0]: "
            "end 'a' is not reachable from start 'c'",
            "  hint: pick an end downstream of the start, or a start upstream of every end",
        ],
    ),
    "too-many-roots": Mistake(
        with_catalog(
            dump(
                config(limits={"maxRoots": 1}),
                backfill(select={"method": "descendants", "roots": ["a", "b"]}),
            )
        ),
        [
            "backfill.yaml:14:5: error: $.spec.select.roots: 2 roots, more than the limit of 1",
            "  hint: split the backfill, or raise Config spec.limits.maxRoots",
        ],
    ),
    "too-many-nodes": Mistake(
        with_catalog(dump(config(limits={"maxNodes": 2}), backfill())),
        [
            "backfill.yaml:12:3: error: $.spec.select: "
            "the scope holds 3 nodes, more than the limit of 2",
            "  hint: narrow the selection, or raise Config spec.limits.maxNodes",
        ],
    ),
    "unknown-parameter": Mistake(
        {"catalog.yaml": CATALOG, "more.yaml": dump(node("d", command=["run", "${foo}"]))},
        [
            "more.yaml:14:7: error: $.spec.run.command[1]: "
            "unknown parameter or time expression ${foo}",
            "  hint: ${...} is a named parameter or the business date: tokens yyyy yy mm dd "
            "and an optional offset, e.g. ${yyyymmdd-1}; write $${...} for a literal ${...}; "
            "no parameters are defined",
        ],
    ),
    "parameter-where-no-expansion-gives-it": Mistake(
        {
            "catalog.yaml": CATALOG,
            "more.yaml": dump(node("d", command="run `cat ${pt}`", parameters={"pt": "$bizdate"})),
        },
        [
            "more.yaml:12:5: error: $.spec.run.command: ${pt} stands inside `...`, "
            "where the shell rewrites the text and nested quotes are unspecified",
            "  hint: write $(...) instead of backquotes",
        ],
    ),
    "env-hides-a-parameter": Mistake(
        {
            "catalog.yaml": CATALOG,
            "more.yaml": dump(
                node(
                    "d",
                    parameters={"pt": "$bizdate"},
                    run={"command": "run ${pt}", "env": {"BACKFILL_PARAM_PT": "x"}},
                )
            ),
        },
        [
            "more.yaml:14:7: error: $.spec.run.env.BACKFILL_PARAM_PT: "
            "BACKFILL_PARAM_PT is where parameter pt's value is exported",
            "  hint: remove it, or name the variable otherwise; ${pt} is already in the "
            "environment as BACKFILL_PARAM_PT",
        ],
    ),
}


@pytest.mark.parametrize("mistake", SPEC_MISTAKES.values(), ids=SPEC_MISTAKES.keys())
def test_a_spec_mistake_is_reported_exactly_with_exit_1(tmp_path: Path, mistake: Mistake) -> None:
    write_files(tmp_path, mistake.files)

    result = run("validate", *mistake.args)

    assert result.exit_code == 1
    assert result.stderr.splitlines() == mistake.stderr
    assert result.stdout.endswith(": 1 error, 0 warnings\n")


@pytest.mark.parametrize("mistake", SPEC_MISTAKES.values(), ids=SPEC_MISTAKES.keys())
def test_plan_reports_the_same_spec_mistake(tmp_path: Path, mistake: Mistake) -> None:
    write_files(tmp_path, mistake.files)

    result = run("plan", *mistake.args, "--as", "alice", "--now", NOW)

    assert result.exit_code == 1
    assert result.stderr.splitlines() == mistake.stderr


@pytest.mark.parametrize(
    "command",
    [("plan",), ("check",), ("apply", "--dry-run", "--state", "s.db"), ("diff", "--state", "s.db")],
)
@pytest.mark.parametrize("day", ["9999-12-30", "9999-12-31", "0001-01-01"])
def test_every_planning_command_reports_a_date_at_the_calendar_ends(
    tmp_path: Path, command: tuple[str, ...], day: str
) -> None:
    """Not an internal error (exit 3): the date is a spec mistake, located, exit 1 (diff:
    2, its code for an error)."""
    write_files(tmp_path, with_catalog(dump(backfill(dates=[day]))))

    result = run(command[0], ".", *command[1:], "--as", "alice", "--now", NOW)

    assert result.exit_code == (2 if command[0] == "diff" else 1)
    line = rf"backfill\.yaml:11:5: error( \[[\w-]+\])?: \$\.spec\.dates\[0\]: business date {day} "
    assert re.search(line + "is out of range$", result.stdout + result.stderr, re.M)


@pytest.mark.parametrize("command", ["validate", "plan", "check"])
@pytest.mark.parametrize("overrides", [None, {"y": "1"}, {"x": "1"}])
@pytest.mark.parametrize(
    "text", ["echo ${x}", 'echo "${x}" ${x}', "echo '${x}'; echo $(cat ${x})", "run ${x}\n"]
)
def test_an_unknown_parameter_of_a_string_command_is_reported_once(
    tmp_path: Path, command: str, overrides: dict[str, str] | None, text: str
) -> None:
    """At the node, not again at each Backfill with parameters that selects it: the node
    fails on its own, whatever the Backfill overrides."""
    extra = {"parameters": overrides} if overrides else {}
    write_files(
        tmp_path,
        {
            "catalog.yaml": CATALOG,
            "more.yaml": dump(node("d", command=text)),
            "backfill.yaml": dump(
                backfill(select={"method": "descendants", "roots": ["d"]}, **extra)
            ),
        },
    )

    now = () if command == "validate" else ("--now", NOW)
    result = run(command, ".", "--as", "alice", *now)

    assert result.exit_code == 1
    lines = (result.stdout + result.stderr).splitlines()
    assert [line for line in lines if "${x}" in line and "hint:" not in line] == [
        next(line for line in lines if line.startswith("more.yaml:12:5: error"))
    ]
    assert next(line for line in lines if "error" in line and "${x}" in line).endswith(
        "$.spec.run.command: unknown parameter or time expression ${x}"
    )


INPUT_MISTAKES: dict[str, Mistake] = {
    "missing-path": Mistake(
        {"catalog.yaml": CATALOG},
        [
            "error: specs/nope.yaml: no such file or directory",
            "  hint: check the path; it is relative to the current directory",
        ],
        code=2,
        args=("catalog.yaml", "specs/nope.yaml"),
    ),
    "directory-without-yaml": Mistake(
        {"catalog.yaml": CATALOG, "docs/README.md": "# not a spec\n"},
        [
            "error: docs: no .yaml or .yml files in this directory",
            "  hint: pass the directory that holds your specs",
        ],
        code=2,
        args=("catalog.yaml", "docs"),
    ),
    "not-utf8": Mistake(
        {"catalog.yaml": CATALOG, "latin1.yaml": "kind: Node # café\n".encode("latin-1")},
        [
            "error: latin1.yaml:1:17: not UTF-8 text (invalid continuation byte)",
            "  hint: save the file as UTF-8",
        ],
        code=2,
    ),
}


@pytest.mark.parametrize("command", ["validate", "plan"])
@pytest.mark.parametrize("mistake", INPUT_MISTAKES.values(), ids=INPUT_MISTAKES.keys())
def test_unusable_input_exits_2_with_the_path_and_a_hint(
    tmp_path: Path, mistake: Mistake, command: str
) -> None:
    write_files(tmp_path, mistake.files)

    result = run(command, *mistake.args)

    assert result.exit_code == 2
    assert result.stderr.splitlines() == mistake.stderr
    assert result.stdout == ""


def test_every_error_of_every_file_is_reported_in_one_run_sorted_by_file_and_line(
    tmp_path: Path,
) -> None:
    write_files(
        tmp_path,
        {
            "b.yaml": dump(backfill(grups=2)),
            "a.yaml": dump(
                workspace(timezone="Mars/Base"),
                node("a", schedule="0 2 * *"),
                node("b", upstream=["zz"]),
            ),
            "c.yaml": "kind: [\n",
        },
    )

    # Files named out of order on the command line: the report is still sorted.
    result = run("validate", "c.yaml", "b.yaml", "a.yaml")

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "a.yaml:6:3: error: $.spec.timezone: unknown timezone 'Mars/Base'",
        "  hint: use an IANA name such as Asia/Shanghai, Europe/Berlin or UTC",
        "a.yaml:17:3: error: $.spec.schedule: invalid cron expression '0 2 * *': "
        "it has 4 fields, a cron expression has 5",
        '  hint: use five fields: minute hour day-of-month month day-of-week, e.g. "0 2 * * *"',
        "a.yaml:35:5: error: $.spec.upstream[0]: unknown upstream node 'zz'",
        "  hint: add a Node with that name, or use one of: a, b",
        "b.yaml:12:3: error: $.spec.grups: unknown field 'grups'",
        "  hint: did you mean 'groups'?",
        "c.yaml:2:1: error: YAML syntax error: did not find expected node content",
        "  hint: check the indentation and quoting around this position",
    ]
    assert result.stdout == (
        "3 files, 4 documents (1 workspace, 0 resource groups, 2 nodes, 1 backfill): "
        "5 errors, 0 warnings\n"
    )


def test_a_schema_error_does_not_hide_the_documents_other_errors(tmp_path: Path) -> None:
    """An unknown field, or a wrong value of a field no other check reads, is left out:
    the references, ranges, cron and parameters of the rest are checked in the same run."""
    write_files(
        tmp_path,
        {
            "catalog.yaml": CATALOG,
            "more.yaml": dump(node("d", "0 1 * *", command="echo ${x}", priority=4)),
            "backfill.yaml": dump(
                backfill(
                    select={"method": "descendants", "roots": ["nope"]},
                    dates=[{"from": "2024-03-05", "to": "2024-03-01"}],
                    grups=2,
                )
            ),
        },
    )

    result = run("validate", ".")

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "backfill.yaml:9:7: error: $.spec.select.roots[0]: unknown node 'nope'",
        "  hint: add a Node with that name",
        "backfill.yaml:11:5: error: $.spec.dates[0]: reversed range: "
        "from 2024-03-05 is after to 2024-03-01",
        "  hint: swap from and to",
        "backfill.yaml:13:3: error: $.spec.grups: unknown field 'grups'",
        "  hint: did you mean 'groups'?",
        "more.yaml:9:3: error: $.spec.schedule: invalid cron expression '0 1 * *': "
        "it has 4 fields, a cron expression has 5",
        '  hint: use five fields: minute hour day-of-month month day-of-week, e.g. "0 2 * * *"',
        "more.yaml:12:5: error: $.spec.run.command: unknown parameter or time expression ${x}",
        "  hint: ${...} is a named parameter or the business date: tokens yyyy yy mm dd and an "
        "optional offset, e.g. ${yyyymmdd-1}; write $${...} for a literal ${...}; no "
        "parameters are defined",
        "more.yaml:13:3: error: $.spec.priority: 4 is not one of: 1, 3, 5, 7, 8",
        "  hint: use one of: 1, 3, 5, 7, 8",
    ]
    assert result.stdout == (
        "3 files, 6 documents (1 workspace, 0 resource groups, 4 nodes, 1 backfill): "
        "6 errors, 0 warnings\n"
    )


def test_a_wrong_date_or_argv_item_does_not_hide_the_rest_of_its_document(
    tmp_path: Path,
) -> None:
    write_files(
        tmp_path,
        {
            "catalog.yaml": CATALOG,
            "more.yaml": dump(node("d", "0 1 * *", command=["sleep", 5])),
            "backfill.yaml": dump(
                backfill(select={"method": "descendants", "roots": ["nope"]}, dates=["2024-3-1"])
            ),
        },
    )

    result = run("validate", ".")

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "backfill.yaml:9:7: error: $.spec.select.roots[0]: unknown node 'nope'",
        "  hint: add a Node with that name",
        "backfill.yaml:11:5: error: $.spec.dates[0]: '2024-3-1' is not a calendar date",
        "  hint: A calendar date, YYYY-MM-DD (quoted or not), for example '2024-03-01'",
        "more.yaml:9:3: error: $.spec.schedule: invalid cron expression '0 1 * *': "
        "it has 4 fields, a cron expression has 5",
        '  hint: use five fields: minute hour day-of-month month day-of-week, e.g. "0 2 * * *"',
        "more.yaml:14:7: error: $.spec.run.command[1]: 5 is not of type 'string'",
        "  hint: quote the value to make it a string",
    ]


def test_what_a_removed_field_decides_is_not_checked_without_it(tmp_path: Path) -> None:
    """No made-up errors: a node without its parameters has no unknown ${pt}, and is not in
    the catalog (a Backfill naming it is told why); a Backfill without a field of its
    selection has no scope, so no selection errors. Their other checks still run."""
    write_files(
        tmp_path,
        {
            "catalog.yaml": CATALOG,
            "more.yaml": dump(node("d", "0 1 * *", command=["run", "${pt}"], parameters={"pt": 1})),
            "backfill.yaml": dump(
                backfill(
                    select={"method": "descendants", "roots": ["nope", "d"], "block": "b"},
                    dates=[{"from": "2024-03-05", "to": "2024-03-01"}],
                ),
                backfill("bf2", select={"method": "descendants", "roots": ["d"]}),
            ),
        },
    )

    result = run("validate", ".")

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "backfill.yaml:11:5: error: $.spec.select.block: 'b' is not of type 'array'",
        "  hint: write a list, for example [b]",
        "backfill.yaml:13:5: error: $.spec.dates[0]: reversed range: "
        "from 2024-03-05 is after to 2024-03-01",
        "  hint: swap from and to",
        "more.yaml:9:3: error: $.spec.schedule: invalid cron expression '0 1 * *': "
        "it has 4 fields, a cron expression has 5",
        '  hint: use five fields: minute hour day-of-month month day-of-week, e.g. "0 2 * * *"',
        "more.yaml:16:5: error: $.spec.parameters.pt: 1 is not of type 'string'",
        "  hint: quote the value to make it a string",
        "backfill.yaml:24:7: error: $.spec.select.roots[0]: node 'd' is defined in "
        "more.yaml:1 but that document has errors (see above)",
        "  hint: fix the errors of that document first; this one follows from them",
    ]


@pytest.mark.parametrize("command", ["plan", "check"])
def test_a_backfill_built_without_a_wrong_field_is_still_not_planned(
    tmp_path: Path, command: str
) -> None:
    write_files(tmp_path, with_catalog(dump(backfill(grups=2))))

    result = run(command, ".", "--as", "alice", "--now", NOW)

    assert result.exit_code == 1
    assert "$.spec.grups: unknown field 'grups'" in result.stdout + result.stderr
    assert "0 instances" in result.stdout or "No Backfill could be planned" in result.stdout


# -- success, warnings, formats, stdin ------------------------------------------------


def test_valid_specs_print_one_summary_line_on_stdout(tmp_path: Path) -> None:
    write_files(tmp_path, with_catalog(dump(backfill())))

    result = run("validate", ".")

    assert result.exit_code == 0
    assert result.stdout == (
        "2 files, 5 documents (1 workspace, 0 resource groups, 3 nodes, 1 backfill): valid\n"
    )
    assert result.stderr == ""


def test_the_example_repo_is_valid() -> None:
    result = run("validate", str(EXAMPLE_SPECS))

    assert result.exit_code == 0
    assert result.stdout == (
        "7 files, 25 documents (2 workspaces, 3 resource groups, 16 nodes, 3 backfills): valid\n"
    )


BLOCKED_INTERMEDIATE = dump(
    backfill(select={"method": "descendants", "roots": ["a"], "block": ["b"]})
)
BLOCKED_WARNING = [
    "backfill.yaml:11:7: warning: $.spec.select.block[0]: blocked node 'b' is an intermediate "
    "node: it is dry-run, and its descendants may read missing data",
    "  hint: unblock it, or also leave out its descendants",
]


def test_warnings_are_shown_but_do_not_fail(tmp_path: Path) -> None:
    write_files(tmp_path, with_catalog(BLOCKED_INTERMEDIATE))

    result = run("validate", ".")

    assert result.exit_code == 0
    assert result.stderr.splitlines() == BLOCKED_WARNING
    assert result.stdout.endswith("1 backfill): 0 errors, 1 warning\n")


def test_validate_as_an_actor_checks_permissions(tmp_path: Path) -> None:
    write_files(tmp_path, with_catalog(dump(backfill())))

    assert run("validate", ".", "--as", "ops").exit_code == 0
    result = run("validate", ".", "--as", "bob")

    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        "backfill.yaml:6:3: error: $.spec.select: 'bob' may not operate target node 'a' "
        "(allowed: alice, ops); the backfill cannot run"
    )


def test_json_output_lists_every_diagnostic(tmp_path: Path) -> None:
    write_files(
        tmp_path,
        {
            "catalog.yaml": CATALOG,
            "backfill.yaml": BLOCKED_INTERMEDIATE,
            "bad.yaml": dump(backfill("bf2", grups=2)),
        },
    )

    result = run("validate", ".", "-o", "json")

    assert result.exit_code == 1
    assert result.stderr == ""  # the diagnostics are the data, on stdout
    assert json.loads(result.stdout) == {
        "valid": False,
        "errors": 1,
        "warnings": 1,
        "diagnostics": [
            {
                "severity": "warning",
                "code": "dry-run-intermediate",
                "file": "backfill.yaml",
                "line": 11,
                "column": 7,
                "path": "$.spec.select.block[0]",
                "message": "blocked node 'b' is an intermediate node: it is dry-run, "
                "and its descendants may read missing data",
                "hint": "unblock it, or also leave out its descendants",
                "backfill": "bf",
                "nodes": ["b"],
                "instances": [],
            },
            {
                "severity": "error",
                "code": "schema",
                "file": "bad.yaml",
                "line": 12,
                "column": 3,
                "path": "$.spec.grups",
                "message": "unknown field 'grups'",
                "hint": "did you mean 'groups'?",
                "backfill": None,
                "nodes": [],
                "instances": [],
            },
        ],
    }


def test_json_output_of_valid_specs(tmp_path: Path) -> None:
    write_files(tmp_path, with_catalog(dump(backfill())))

    result = run("validate", ".", "--output", "json")

    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "valid": True,
        "errors": 0,
        "warnings": 0,
        "diagnostics": [],
    }


def test_dash_reads_the_specs_from_stdin(tmp_path: Path) -> None:
    write_files(tmp_path, {"catalog.yaml": CATALOG})

    result = run("validate", "catalog.yaml", "-", stdin=dump(backfill()))

    assert result.exit_code == 0
    assert result.stdout == (
        "2 files, 5 documents (1 workspace, 0 resource groups, 3 nodes, 1 backfill): valid\n"
    )


def test_a_mistake_read_from_stdin_is_located_in_stdin(tmp_path: Path) -> None:
    write_files(tmp_path, {"catalog.yaml": CATALOG})

    result = run("validate", "catalog.yaml", "-", stdin=dump(backfill(grups=2)))

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "<stdin>:12:3: error: $.spec.grups: unknown field 'grups'",
        "  hint: did you mean 'groups'?",
    ]


def test_an_unknown_output_format_is_a_usage_error(tmp_path: Path) -> None:
    write_files(tmp_path, {"catalog.yaml": CATALOG})

    result = run("validate", ".", "-o", "yaml")

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines()[0] == "Usage: backfillctl validate [OPTIONS] {PATHS}..."
    assert "'yaml' is not one of 'text', 'json'" in result.stderr
