"""`backfillctl plan`: the table for people, the `-o json` contract for tools, the options."""

from __future__ import annotations

import errno
import json
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from types import NoneType
from typing import Any

import pytest
import yaml

from backfill_ctl.core.planner import instance_id
from tests.builders import backfill, dump, node, workspace
from tests.cli.helpers import (
    CATALOG,
    EXAMPLE_SPECS,
    NOW,
    interruptible,
    plan_json,
    run,
    write_files,
)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # file names in messages are the paths as given


# In Shanghai (UTC+8): a daily root of priority 8, a monthly node (1st of the month, 05:00),
# a daily leaf and a blocked leaf below it. Five dates in two groups; at NOW (09:00 on
# 20 March) 2024-03-19 is T-1 (priority kept), 2024-03-20 is today (waits for its time).
SHANGHAI_SPECS: dict[str, str | bytes] = {
    "catalog.yaml": dump(
        workspace("ws", "Asia/Shanghai", operators=("ops",)),
        node("a", priority=8),
        node("m", upstream=["a"], schedule="0 5 1 * *", priority=5),
        node("c", upstream=["m"]),
        node("d", upstream=["c"]),
    ),
    "backfill.yaml": dump(
        backfill(
            "fix",
            select={"method": "descendants", "roots": ["a"], "block": ["d"]},
            dates=[{"from": "2024-02-28", "to": "2024-03-01"}, "2024-03-19", "2024-03-20"],
            groups=2,
        )
    ),
}


def test_the_default_output_is_a_table_per_backfill(tmp_path: Path) -> None:
    write_files(tmp_path, SHANGHAI_SPECS)

    result = run("plan", ".", "--now", NOW, "--as", "ops")

    assert result.exit_code == 0
    assert result.stderr == ""
    table = result.stdout.splitlines()
    assert table[:-1] == [
        "Backfill fix  (backfill.yaml:1)",
        "  select:   a and all descendants; blocked: d",
        "  dates:    2024-02-28..2024-03-01, 2024-03-19..2024-03-20 (5 dates, ascending)",
        "  group 0:  2024-02-28..2024-03-01 (3 dates)",
        "  group 1:  2024-03-19..2024-03-20 (2 dates)",
        "  plan:     3 nodes, 15 instances (4 dry-run, 3 waiting for their time)",
        "  left out: d (blocked)",
        "",
        "  NODE  CYCLE    ROLE          INSTANCES  DRY-RUN                PRIORITY      FIRST"
        "                   LAST",
        "  a     daily    target        5          -                      8 (older: 3)  "
        "2024-02-29 02:00 +0800  2024-03-21 02:00 +0800",
        "  m     monthly  intermediate  5          4 (not-scheduled-day)  5 (older: 2)  "
        "2024-02-29 05:00 +0800  2024-03-21 05:00 +0800",
        "  c     daily    target        5          -                      1             "
        "2024-02-29 02:00 +0800  2024-03-21 02:00 +0800",
        "",
    ]
    digest = plan_json(run("plan", ".", "--now", NOW, "--as", "ops", "-o", "json"))["digest"]
    assert table[-1] == f"Plan: 15 instances in 1 backfill (4 dry-run); digest {digest[:19]}"


def test_specs_without_a_backfill_have_nothing_to_plan(tmp_path: Path) -> None:
    write_files(tmp_path, {"catalog.yaml": CATALOG})

    result = run("plan", ".", "--now", NOW)

    assert (result.exit_code, result.stdout, result.stderr) == (
        0,
        "No Backfill to plan: the specs hold no Backfill document.\n",
        "",
    )
    assert plan_json(run("plan", ".", "--now", NOW, "-o", "json"))["backfills"] == []


# -- the -o json contract (DESIGN §4) -------------------------------------------------

INSTANCE_TYPES: dict[str, type | tuple[type, ...]] = {
    "id": str,
    "node": str,
    "bizdate": str,
    "cyctime": str,
    "dryRun": bool,
    "dryRunReason": (str, NoneType),
    "group": int,
    "sequence": int,
    "priority": int,
    "waitForTime": bool,
    "dependsOn": list,
    "command": (list, str),
}


def check_instance_contract(instance: dict[str, Any]) -> None:
    assert list(instance) == list(INSTANCE_TYPES)
    for name, kind in INSTANCE_TYPES.items():
        assert isinstance(instance[name], kind), (name, instance[name])
    for name in ("group", "sequence", "priority"):
        assert not isinstance(instance[name], bool)
    assert date.fromisoformat(instance["bizdate"]).isoformat() == instance["bizdate"]
    assert datetime.fromisoformat(instance["cyctime"]).utcoffset() is not None
    assert instance["dryRun"] is (instance["dryRunReason"] is not None)
    assert instance["dryRunReason"] in (None, "blocklisted", "no-permission", "not-scheduled-day")
    assert all(isinstance(dep, str) for dep in instance["dependsOn"])
    if isinstance(instance["command"], list):
        assert all(isinstance(arg, str) for arg in instance["command"])


def test_json_follows_the_plan_contract_for_every_instance(tmp_path: Path) -> None:
    write_files(tmp_path, SHANGHAI_SPECS)

    result = run("plan", ".", "--now", NOW, "--as", "ops", "-o", "json")

    assert (result.exit_code, result.stderr) == (0, "")
    data = plan_json(result)
    assert data["formatVersion"] == 1
    assert data["digest"].startswith("sha256:") and len(data["digest"]) == 7 + 64
    assert (data["now"], data["actor"]) == ("2024-03-20T01:00:00+00:00", "ops")
    [bp] = data["backfills"]
    assert (bp["name"], bp["file"], bp["line"]) == ("fix", "backfill.yaml", 1)
    assert bp["summary"] == {
        "instances": 15,
        "dryRun": 4,
        "nodes": 3,
        "dates": 5,
        "groups": 2,
        "waitingForTime": 3,
    }
    assert bp["groups"] == [
        ["2024-02-28", "2024-02-29", "2024-03-01"],
        ["2024-03-19", "2024-03-20"],
    ]
    assert bp["leftOut"] == ["d"]
    instances = bp["instances"]
    assert len(instances) == bp["summary"]["instances"]
    assert sum(i["dryRun"] for i in instances) == bp["summary"]["dryRun"]
    assert sum(i["waitForTime"] for i in instances) == bp["summary"]["waitingForTime"]
    for instance in instances:
        check_instance_contract(instance)
    ids = [i["id"] for i in instances]
    assert len(set(ids)) == len(ids)
    assert all(dep in ids for i in instances for dep in i["dependsOn"])


def test_json_instances_carry_the_planned_values(tmp_path: Path) -> None:
    write_files(tmp_path, SHANGHAI_SPECS)

    bp = plan_json(run("plan", ".", "--now", NOW, "--as", "ops", "-o", "json"))["backfills"][0]

    by_key = {(i["node"], i["bizdate"]): i for i in bp["instances"]}
    first_a = by_key["a", "2024-02-28"]
    assert first_a == {
        "id": instance_id("fix", "a", date(2024, 2, 28), 0, 1),
        "node": "a",
        "bizdate": "2024-02-28",
        "cyctime": "2024-02-29T02:00:00+08:00",
        "dryRun": False,
        "dryRunReason": None,
        "group": 0,
        "sequence": 0,
        "priority": 3,  # 8, degraded: older than T-1
        "waitForTime": False,
        "dependsOn": [],
        "command": ["run", "a", "20240228"],
    }
    # The monthly node runs on the 1st (business date 29 Feb); other days are dry-run.
    monthly = by_key["m", "2024-02-29"]
    assert (monthly["cyctime"], monthly["dryRun"]) == ("2024-03-01T05:00:00+08:00", False)
    assert monthly["dependsOn"] == [by_key["a", "2024-02-29"]["id"]]
    skipped = by_key["m", "2024-02-28"]
    assert (skipped["dryRun"], skipped["dryRunReason"]) == (True, "not-scheduled-day")
    # T-1 keeps its priority; today's instances wait for their time; date order in a group.
    assert by_key["a", "2024-03-19"]["priority"] == 8
    today = by_key["a", "2024-03-20"]
    assert (today["waitForTime"], today["group"], today["sequence"]) == (True, 1, 1)
    assert by_key["c", "2024-03-01"]["dependsOn"] == [by_key["m", "2024-03-01"]["id"]]


def test_yaml_output_is_the_same_data_as_json(tmp_path: Path) -> None:
    write_files(tmp_path, SHANGHAI_SPECS)

    as_yaml = run("plan", ".", "--now", NOW, "--as", "ops", "-o", "yaml")
    as_json = run("plan", ".", "--now", NOW, "--as", "ops", "-o", "json")

    assert as_yaml.exit_code == 0
    assert yaml.safe_load(as_yaml.stdout) == json.loads(as_json.stdout)


# -- now -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "now"),
    [
        (("--now", "2024-03-20T09:00:00+08:00"), {}, "2024-03-20T09:00:00+08:00"),
        (("--now", "2024-03-20T09:00"), {}, "2024-03-20T09:00:00+00:00"),  # no offset: UTC
        (("--now", "2024-03-20"), {}, "2024-03-20T00:00:00+00:00"),
        ((), {"BACKFILLCTL_NOW": "2024-03-01T00:00:00Z"}, "2024-03-01T00:00:00+00:00"),
        (
            ("--now", "2024-03-20T01:00:00Z"),
            {"BACKFILLCTL_NOW": "2024-03-01T00:00:00Z"},  # the flag wins
            "2024-03-20T01:00:00+00:00",
        ),
    ],
)
def test_now_comes_from_the_flag_else_the_environment(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], now: str
) -> None:
    write_files(tmp_path, {"catalog.yaml": CATALOG})

    result = run("plan", ".", "-o", "json", *args, env=env)

    assert result.exit_code == 0
    assert plan_json(result)["now"] == now


def test_now_decides_which_instances_wait_for_their_time(tmp_path: Path) -> None:
    write_files(tmp_path, SHANGHAI_SPECS)

    def waiting(now: str) -> int:
        result = run("plan", ".", "--as", "ops", "-o", "json", "--now", now)
        summary: dict[str, int] = plan_json(result)["backfills"][0]["summary"]
        return summary["waitingForTime"]

    assert waiting("2024-03-25T00:00:00Z") == 0
    assert waiting(NOW) == 3  # today's business date
    assert waiting("2024-02-01T00:00:00Z") == 15


def test_without_now_the_clock_is_read(tmp_path: Path) -> None:
    write_files(tmp_path, {"catalog.yaml": CATALOG})

    before = datetime.now(UTC)
    result = run("plan", ".", "-o", "json")
    after = datetime.now(UTC)

    assert before <= datetime.fromisoformat(plan_json(result)["now"]) <= after


# -- the actor -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "env", "actor"),
    [
        ("ops", {"BACKFILLCTL_ACTOR": "carol", "GITHUB_ACTOR": "dave"}, "ops"),
        (None, {"BACKFILLCTL_ACTOR": "carol", "GITHUB_ACTOR": "dave"}, "carol"),
        (None, {"GITHUB_ACTOR": "dave"}, "dave"),
        (None, {"BACKFILLCTL_ACTOR": "", "GITHUB_ACTOR": "dave"}, "dave"),  # empty is unset
    ],
)
def test_the_actor_is_the_flag_else_backfillctl_actor_else_github_actor(
    tmp_path: Path, flag: str | None, env: dict[str, str], actor: str
) -> None:
    everyone = ("ops", "carol", "dave")
    write_files(
        tmp_path,
        {
            "catalog.yaml": dump(workspace(operators=everyone), node("a")),
            "b.yaml": dump(backfill()),
        },
    )

    result = run(
        "plan", ".", "--now", NOW, "-o", "json", *(["--as", flag] if flag else []), env=env
    )

    assert (result.exit_code, result.stderr) == (0, "")
    assert plan_json(result)["actor"] == actor


def test_without_an_actor_plan_says_permissions_were_not_checked(tmp_path: Path) -> None:
    write_files(tmp_path, {"catalog.yaml": CATALOG, "b.yaml": dump(backfill())})

    result = run("plan", ".", "--now", NOW, "-o", "json")

    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        "note: no actor given (--as, $BACKFILLCTL_ACTOR, $GITHUB_ACTOR): "
        "permissions were not checked"
    ]
    assert plan_json(result)["actor"] is None


def test_the_actor_is_checked_against_permissions(tmp_path: Path) -> None:
    write_files(tmp_path, {"catalog.yaml": CATALOG, "b.yaml": dump(backfill())})

    assert run("plan", ".", "--now", NOW, "--as", "ops").exit_code == 0
    assert run("plan", ".", "--now", NOW, env={"GITHUB_ACTOR": "bob"}).exit_code == 1


# -- --out ----------------------------------------------------------------------------


def test_out_saves_the_json_plan_next_to_any_output(tmp_path: Path) -> None:
    write_files(tmp_path, SHANGHAI_SPECS)

    table = run("plan", ".", "--now", NOW, "--as", "ops", "--out", "plan.json")
    as_json = run("plan", ".", "--now", NOW, "--as", "ops", "-o", "json")

    assert table.exit_code == 0
    assert table.stdout.startswith("Backfill fix")
    saved = (tmp_path / "plan.json").read_text(encoding="utf-8")
    assert saved == as_json.stdout
    assert json.loads(saved)["digest"].startswith("sha256:")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file


def test_out_replaces_an_existing_file(tmp_path: Path) -> None:
    write_files(tmp_path, {"catalog.yaml": CATALOG, "b.yaml": dump(backfill()), "p.json": "old"})

    result = run("plan", ".", "--now", NOW, "--as", "ops", "-o", "json", "--out", "p.json")

    assert result.exit_code == 0
    assert (tmp_path / "p.json").read_text(encoding="utf-8") == result.stdout


def test_out_into_a_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    write_files(tmp_path, {"catalog.yaml": CATALOG, "b.yaml": dump(backfill())})

    result = run("plan", ".", "--now", NOW, "--as", "ops", "--out", "plans/p.json")

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: --out plans/p.json: directory plans does not exist",
        "  hint: create the directory first",
    ]
    assert result.stdout == ""
    assert not (tmp_path / "plans").exists()


def test_out_refuses_to_save_a_plan_with_errors_and_keeps_the_old_file(tmp_path: Path) -> None:
    write_files(
        tmp_path,
        {**TWO_BACKFILLS, "two.yaml": dump(backfill("two", dates=["2024-02-30"])), "p.json": "old"},
    )

    result = run("plan", ".", "--now", NOW, "--as", "ops", "--out", "p.json")

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == "plan not saved to p.json: fix the errors above first"
    assert (tmp_path / "p.json").read_text(encoding="utf-8") == "old"


def test_when_no_backfill_could_be_planned_the_table_says_so(tmp_path: Path) -> None:
    write_files(tmp_path, {"catalog.yaml": CATALOG, "b.yaml": dump(backfill(dates=["2024-02-30"]))})

    result = run("plan", ".", "--now", NOW, "--as", "ops")

    assert result.exit_code == 1
    assert result.stdout == "No Backfill could be planned (see the errors above).\n"


def _fail(err: int, text: str) -> Any:
    def fail(*args: object, **kwargs: object) -> Any:
        raise OSError(err, text)

    return fail


@pytest.mark.parametrize(
    ("target", "err", "text"),
    [
        ("tempfile.mkstemp", errno.EACCES, "Permission denied"),  # a read-only directory
        ("os.replace", errno.ENOSPC, "No space left on device"),
    ],
)
def test_a_failed_write_leaves_the_existing_file_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, err: int, text: str
) -> None:
    write_files(tmp_path, {"catalog.yaml": CATALOG, "b.yaml": dump(backfill()), "p.json": "old"})
    monkeypatch.setattr(target, _fail(err, text))

    result = run("plan", ".", "--now", NOW, "--as", "ops", "--out", "p.json")

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"error: --out p.json: cannot write: {text}"]
    assert (tmp_path / "p.json").read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.yaml", "catalog.yaml", "p.json"]


# -- which backfills -----------------------------------------------------------------

TWO_BACKFILLS: dict[str, str | bytes] = {
    "catalog.yaml": CATALOG,
    "one.yaml": dump(backfill("one")),
    "two.yaml": dump(backfill("two", select={"method": "descendants", "roots": ["b"]})),
}


@pytest.mark.parametrize(
    ("args", "planned"),
    [
        ((), ["one", "two"]),
        (("-b", "two"), ["two"]),
        (("--backfill", "one", "-b", "two"), ["one", "two"]),
    ],
)
def test_backfill_option_plans_only_the_named_backfills(
    tmp_path: Path, args: tuple[str, ...], planned: list[str]
) -> None:
    write_files(tmp_path, TWO_BACKFILLS)

    result = run("plan", ".", "--now", NOW, "--as", "ops", "-o", "json", *args)

    assert result.exit_code == 0
    assert [bp["name"] for bp in plan_json(result)["backfills"]] == planned


def test_one_broken_backfill_does_not_hide_the_plan_of_another(tmp_path: Path) -> None:
    write_files(
        tmp_path,
        {**TWO_BACKFILLS, "two.yaml": dump(backfill("two", dates=["2024-02-30"]))},
    )

    as_json = run("plan", ".", "--now", NOW, "--as", "ops", "-o", "json")
    table = run("plan", ".", "--now", NOW, "--as", "ops")

    assert as_json.exit_code == table.exit_code == 1
    assert as_json.stderr == table.stderr
    assert table.stderr.splitlines() == [
        "two.yaml:11:5: error: $.spec.dates[0]: '2024-02-30' is not a calendar date",
        "  hint: A calendar date, YYYY-MM-DD (quoted or not), for example '2024-03-01'",
    ]
    assert [bp["name"] for bp in plan_json(as_json)["backfills"]] == ["one"]
    assert table.stdout.startswith("Backfill one  (one.yaml:1)\n")


# -- the example repo ------------------------------------------------------------------


def test_the_plan_of_the_example_repo_is_stable() -> None:
    first = run("plan", str(EXAMPLE_SPECS), "--as", "oncall", "-o", "json", "--now", NOW)
    again = run("plan", str(EXAMPLE_SPECS), "--as", "oncall", "-o", "json", "--now", NOW)
    later = run("plan", str(EXAMPLE_SPECS), "--as", "oncall", "-o", "json", "--now", "2025-01-01")

    assert first.exit_code == 0
    assert first.stdout == again.stdout

    def ids(result: Any) -> list[list[str]]:
        return [[i["id"] for i in bp["instances"]] for bp in plan_json(result)["backfills"]]

    assert ids(first) == ids(later)  # ids hash (backfill, node, time), not now
    fix_orders = plan_json(first)["backfills"][2]
    assert fix_orders["name"] == "fix-orders-2024-03"
    assert fix_orders["summary"] == {
        "instances": 40,
        "dryRun": 8,
        "nodes": 5,
        "dates": 8,
        "groups": 2,
        "waitingForTime": 0,
    }
    assert fix_orders["leftOut"] == ["ads_exec_dashboard"]


def test_bob_may_not_run_every_example_backfill() -> None:
    result = run("plan", str(EXAMPLE_SPECS), "--as", "bob", "--now", NOW)

    assert result.exit_code == 1
    assert "error: $.spec.select: 'bob' may not operate target node" in result.stderr


# -- colour ------------------------------------------------------------------------------


@pytest.mark.parametrize(("no_color", "painted"), [(None, True), ("1", False)])
def test_colour_only_without_no_color(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_color: str | None, painted: bool
) -> None:
    import typer.testing

    # CliRunner's streams are no terminal; pretend they are, as a user's would be.
    monkeypatch.setattr(typer.testing._NamedTextIOWrapper, "isatty", lambda self: True)
    write_files(tmp_path, {"catalog.yaml": CATALOG, "b.yaml": dump(backfill(grups=2))})

    result = run("plan", ".", "--now", NOW, env={"NO_COLOR": no_color} if no_color else {})

    assert result.exit_code == 1
    assert ("\x1b[31merror\x1b[0m:" in result.stderr) is painted
    if not painted:
        assert "\x1b" not in result.stderr + result.stdout


# -- mistakes only plan can find, and bad options -------------------------------------

HOURLY = {
    "catalog.yaml": dump(workspace(), node("h", schedule="0 * * * *")),
    "b.yaml": dump(
        backfill(
            select={"method": "descendants", "roots": ["h"]},
            timeWindow={"from": "00:10", "to": "00:50"},
        )
    ),
}
PLAN_MISTAKES: dict[str, tuple[dict[str, str | bytes], tuple[str, ...], int, list[str]]] = {
    "hourly-node-without-a-tick-in-the-window": (
        HOURLY,
        ("--as", "alice"),
        1,
        [
            "b.yaml:12:3: error: $.spec.timeWindow: hourly node 'h' (0 * * * *) has no "
            "scheduled time between 00:10 and 00:50",
            "  hint: widen timeWindow to include one of its times (00:00, 01:00, 02:00, 03:00 ...)",
        ],
    ),
    "no-permission-on-a-target": (
        {"catalog.yaml": CATALOG, "b.yaml": dump(backfill())},
        ("--as", "bob"),
        1,
        [
            "b.yaml:6:3: error: $.spec.select: 'bob' may not operate target node 'a' "
            "(allowed: alice, ops); the backfill cannot run",
            "  hint: ask one of them to own the backfill, or add 'bob' to the node's owners "
            "or its workspace's operators",
            "b.yaml:6:3: warning: $.spec.select: 'bob' may not operate intermediate node 'b' "
            "(allowed: alice, ops): it is dry-run, and its descendants may read missing data",
            "  hint: ask one of them to run this backfill, or to add 'bob' as an owner",
            "b.yaml:6:3: error: $.spec.select: 'bob' may not operate target node 'c' "
            "(allowed: alice, ops); the backfill cannot run",
            "  hint: ask one of them to own the backfill, or add 'bob' to the node's owners "
            "or its workspace's operators",
        ],
    ),
    "bad-now": (
        {"catalog.yaml": CATALOG},
        ("--now", "yesterday"),
        2,
        [
            "error: --now: 'yesterday' is not an ISO 8601 time",
            "  hint: write it like 2024-03-20T09:00:00+08:00 or 2024-03-20",
        ],
    ),
    "now-past-the-calendar": (
        {"catalog.yaml": CATALOG},
        ("--now", "9999-12-31T23:00:00-05:00"),
        2,
        [
            "error: --now: '9999-12-31T23:00:00-05:00' is out of range",
            "  hint: use a time from 0200-01-01 to 9799-12-31, the range of business dates",
        ],
    ),
    "now-before-the-calendar": (
        {"catalog.yaml": CATALOG},
        ("--now", "0001-01-01"),
        2,
        [
            "error: --now: '0001-01-01' is out of range",
            "  hint: use a time from 0200-01-01 to 9799-12-31, the range of business dates",
        ],
    ),
    "unknown-backfill": (
        TWO_BACKFILLS,
        ("-b", "three"),
        2,
        [
            "error: no Backfill named 'three' in the specs (found: one, two)",
            "  hint: check the name after --backfill",
        ],
    ),
}


@pytest.mark.parametrize(
    ("files", "args", "code", "stderr"), PLAN_MISTAKES.values(), ids=PLAN_MISTAKES.keys()
)
def test_a_plan_mistake_is_reported_exactly(
    tmp_path: Path,
    files: dict[str, str | bytes],
    args: tuple[str, ...],
    code: int,
    stderr: list[str],
) -> None:
    write_files(tmp_path, files)

    result = run("plan", ".", "--now", NOW, *args)

    assert result.exit_code == code
    assert result.stderr.splitlines() == stderr
    if code == 2:
        assert result.stdout == ""


def test_a_bad_backfillctl_now_names_the_variable(tmp_path: Path) -> None:
    write_files(tmp_path, {"catalog.yaml": CATALOG})

    result = run("plan", ".", env={"BACKFILLCTL_NOW": "20.03.2024"})

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: BACKFILLCTL_NOW: '20.03.2024' is not an ISO 8601 time",
        "  hint: write it like 2024-03-20T09:00:00+08:00 or 2024-03-20",
    ]


def test_an_unknown_output_format_is_a_usage_error(tmp_path: Path) -> None:
    write_files(tmp_path, {"catalog.yaml": CATALOG})

    result = run("plan", ".", "-o", "xml")

    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[:2] == [
        "Usage: backfillctl plan [OPTIONS] {PATHS}...",
        "Try 'backfillctl plan -h' for help.",
    ]
    # click's wording (through Typer) is not ours to pin word for word
    assert lines[-1].startswith("Error: Invalid value for '--output' / '-o': ")
    assert lines[-1].endswith("'xml' is not one of 'table', 'json', 'yaml'.")


def test_plan_reads_a_backfill_from_stdin(tmp_path: Path) -> None:
    write_files(tmp_path, {"catalog.yaml": CATALOG})

    result = run("plan", "catalog.yaml", "-", "--now", NOW, "-o", "json", stdin=dump(backfill()))

    assert result.exit_code == 0
    [bp] = plan_json(result)["backfills"]
    assert (bp["file"], bp["summary"]["instances"]) == ("<stdin>", 3)


def test_out_saves_json_whatever_the_output_format(tmp_path: Path) -> None:
    write_files(tmp_path, {"catalog.yaml": CATALOG, "b.yaml": dump(backfill())})

    run("plan", ".", "--now", NOW, "--as", "ops", "-o", "yaml", "--out", "p.json")

    saved = json.loads((tmp_path / "p.json").read_text(encoding="utf-8"))
    assert saved == plan_json(run("plan", ".", "--now", NOW, "--as", "ops", "-o", "json"))


def test_ctrl_c_while_out_is_written_leaves_no_partial_file(tmp_path: Path) -> None:
    """Interrupted while it writes the saved plan (a real process, SIGINT as Ctrl-C sends
    it): exit 130, the file it replaces is as it was, and no partial copy is left."""
    big = backfill(dates=[{"from": "2022-01-01", "to": "2024-12-31"}], checks={"stopOnRisk": False})
    hourly = node("a", "0 * * * *", owners=("ops",))
    write_files(tmp_path, {"all.yaml": dump(workspace(), hourly, big), "p.json": "old"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "backfill_ctl", "plan", ".", "--now", NOW, "--out", "p.json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    try:
        deadline = time.monotonic() + 60
        while not [p for p in tmp_path.iterdir() if p.name.startswith(".p.json.")]:
            assert proc.poll() is None and time.monotonic() < deadline, "no partial file seen"
            time.sleep(0.001)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert stderr.splitlines()[-1] == "interrupted"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.yaml", "p.json"]
    assert (tmp_path / "p.json").read_text(encoding="utf-8") == "old"
