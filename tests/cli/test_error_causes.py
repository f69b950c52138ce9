"""Issue 11, items 7-9: errors point at their cause, every error has a hint that fixes
it, and neither a message nor the input it is read from is unbounded.

Each case runs the real app on spec files in a temporary directory and pins what the
user reads: the root cause first, the errors that follow from it after it and saying so.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.builders import backfill, dump, node, workspace
from tests.cli.helpers import NOW, run, write_files

WORKSPACE_WITH_A_TAB = (
    "apiVersion: backfillctl.dev/v1alpha1\n"
    "kind: Workspace\n"
    "metadata:\n"
    "  name: ws\n"
    "spec:\n"
    "\ttimezone: UTC\n"
)
KNOCK_ON_HINT = "  hint: fix the errors of that document first; this one follows from them"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def misspelt(doc: dict[str, object], field: str, typo: str) -> dict[str, object]:
    spec = doc["spec"]
    assert isinstance(spec, dict)
    spec[typo] = spec.pop(field)
    return doc


# -- 7. the root cause first ---------------------------------------------------------


def test_a_tab_in_a_workspace_is_the_first_error_and_its_users_say_where_it_is() -> None:
    write_files(
        Path(),
        {
            "a-nodes.yaml": dump(node("a"), node("b", upstream=["a"])),
            "ws.yaml": WORKSPACE_WITH_A_TAB,
        },
    )
    result = run("validate", ".")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "ws.yaml:6:1: error: YAML syntax error: found character that cannot start any token",
        "  hint: indent with spaces; YAML does not allow tabs for indentation",
        "a-nodes.yaml:5:3: error: $.metadata.workspace: workspace 'ws' is defined in "
        "ws.yaml:2 but that document has errors (see above)",
        KNOCK_ON_HINT,
        "a-nodes.yaml:21:3: error: $.metadata.workspace: workspace 'ws' is defined in "
        "ws.yaml:2 but that document has errors (see above)",
        KNOCK_ON_HINT,
    ]


def test_a_misspelt_field_of_a_node_is_one_error_not_an_unknown_node() -> None:
    nodes = dump(misspelt(node("a"), "schedule", "scheduel"), node("b", upstream=["a"]), node("c"))
    write_files(Path(), {"nodes.yaml": nodes, "ws.yaml": dump(workspace("ws"))})
    result = run("validate", ".")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "nodes.yaml:15:3: error: $.spec.scheduel: unknown field 'scheduel'",
        "  hint: did you mean 'schedule'? (it is required)",
        "nodes.yaml:27:5: error: $.spec.upstream[0]: node 'a' is defined in nodes.yaml:1 "
        "but that document has errors (see above)",
        KNOCK_ON_HINT,
    ]
    assert "use one of" not in result.stderr


def test_check_of_a_backfill_on_a_broken_node_reports_the_node_first() -> None:
    write_files(
        Path(),
        {
            "a.yaml": dump(backfill(select={"method": "descendants", "roots": ["a"]})),
            "b.yaml": dump(workspace("ws", operators=("ops",)), misspelt(node("a"), "run", "rnu")),
        },
    )
    result = run("check", ".", "--now", NOW, "--as", "ops")
    assert result.exit_code == 1
    errors = [line for line in result.stdout.splitlines() if ": error" in line]
    assert errors[0].startswith("b.yaml:")
    assert "unknown field 'rnu'" in errors[0]
    assert errors[-1].endswith(
        "$.spec.select.roots[0]: node 'a' is defined in b.yaml:10 but that document has "
        "errors (see above)"
    )
    assert "unknown node" not in result.stdout + result.stderr


# -- 8. a hint for every error ---------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "lines"),
    [
        (
            {"groups": "two"},
            [
                "b.yaml:12:3: error: $.spec.groups: 'two' is not of type 'integer'",
                "  hint: this field takes a whole number, not a string",
            ],
        ),
        (
            {"groups": 0},
            [
                "b.yaml:12:3: error: $.spec.groups: 0 is less than the minimum of 1",
                "  hint: use 1 or more",
            ],
        ),
        (
            {"select": {"method": "descendants", "roots": []}},
            [
                "b.yaml:8:5: error: $.spec.select.roots: the list is empty; at least 1 needed",
                "  hint: list at least 1 item",
            ],
        ),
    ],
)
def test_schema_errors_have_a_hint(spec: dict[str, object], lines: list[str]) -> None:
    write_files(
        Path(),
        {"a.yaml": dump(workspace("ws"), node("a")), "b.yaml": dump(backfill(**spec))},
    )
    result = run("validate", ".")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == lines


def test_a_cron_field_out_of_range_is_named() -> None:
    write_files(Path(), {"a.yaml": dump(workspace("ws"), node("a", schedule="0 25 * * *"))})
    result = run("validate", ".")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0].endswith(
        "$.spec.schedule: invalid cron expression '0 25 * * *': hour 25 is out of range 0-23"
    )


def test_an_unknown_timezone_suggests_the_nearest() -> None:
    write_files(Path(), {"a.yaml": dump(workspace("ws", timezone="Asia/Shangai"))})
    result = run("validate", ".")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "a.yaml:6:3: error: $.spec.timezone: unknown timezone 'Asia/Shangai'",
        "  hint: did you mean 'Asia/Shanghai'?",
    ]


def test_apply_refused_suggests_stop_on_risk_only_for_risks(tmp_path: Path) -> None:
    early = backfill(timeWindow={"from": "00:00", "to": "01:00"})
    write_files(
        Path(),
        {"a.yaml": dump(workspace("ws", operators=("ops",)), node("a")), "b.yaml": dump(early)},
    )
    result = run("apply", ".", "--now", NOW, "--as", "ops", "--state", str(tmp_path / "s.db"))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "apply refused: 1 error finding(s); fix them first "
        "(checks.stopOnRisk: false does not accept these)"
    )


# -- 9. bounded output and input --------------------------------------------------------

BOMB = "\n".join(
    [
        "apiVersion: backfillctl.dev/v1alpha1",
        "kind: Backfill",
        "metadata: {name: bf}",
        "a0: &a0 [" + ", ".join(["lol"] * 9) + "]",
        *(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)),
        "spec: {select: {method: descendants, roots: [*a9]}, dates: [2024-03-01]}",
    ]
)


@pytest.mark.parametrize("command", [("validate", "."), ("check", ".", "-o", "github")])
def test_an_alias_bomb_gives_a_short_error_quickly(command: tuple[str, ...]) -> None:
    write_files(Path(), {"a.yaml": dump(workspace("ws"), node("a")), "bomb.yaml": BOMB + "\n"})
    start = time.perf_counter()
    result = run(*command, "--now", NOW) if command[0] == "check" else run(*command)
    assert time.perf_counter() - start < 10
    assert result.exit_code == 1
    assert len(result.stdout + result.stderr) < 2000
    assert "aliases expand this document to more than 100000 repeated values" in (
        result.stdout + result.stderr
    )


def test_a_huge_value_is_quoted_in_part() -> None:
    write_files(Path(), {"a.yaml": dump(workspace("ws", timezone="x" * 100_000))})
    result = run("validate", ".")
    assert result.exit_code == 1
    assert len(result.stderr) < 1500
    assert "more characters" in result.stderr


def test_a_spec_file_above_the_limit_is_refused_before_parsing() -> None:
    line = "# " + "x" * 98 + "\n"
    Path("big.yaml").write_text(line * (11 * 1024 * 1024 // len(line)), encoding="utf-8")
    size = Path("big.yaml").stat().st_size
    start = time.perf_counter()
    result = run("validate", "big.yaml")
    assert time.perf_counter() - start < 5
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: big.yaml: 11.0 MiB ({size} bytes) is larger than the limit of 10.0 MiB "
        "(10485760 bytes) for a spec file",
        "  hint: split it into several smaller spec files",
    ]
