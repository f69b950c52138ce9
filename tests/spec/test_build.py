"""Schema-valid data -> model objects (spec.build): what a JSON Schema pattern cannot say."""

from __future__ import annotations

from datetime import date, time, timedelta
from typing import Any

import pytest

from backfill_ctl.spec.build import parse_duration, parse_size
from backfill_ctl.spec.loader import Specs, load_files
from backfill_ctl.spec.model import (
    Config,
    Kubernetes,
    Limits,
    Notifier,
    Origin,
    Period,
    Retention,
    Run,
    Selection,
    TimeWindow,
)
from backfill_ctl.spec.source import SourceFile
from tests.builders import backfill, config, dump, node, resource_group, specs_of, workspace

Problem = tuple[tuple[Any, ...], str, str | None, str]


def problems(specs: Specs) -> list[Problem]:
    return [(d.path, d.message, d.hint, d.code) for d in specs.diagnostics]


def formatted(specs: Specs) -> list[str]:
    return [d.format() for d in specs.sources.locate(specs.diagnostics)]


# -- dates and periods ---------------------------------------------------------------


def test_reversed_dates_range_is_an_error_and_left_out() -> None:
    specs = specs_of(
        backfill(dates=[{"from": "2024-03-07", "to": "2024-03-01"}, "2024-03-15"]),
    )
    assert problems(specs) == [
        (
            ("spec", "dates", 0),
            "reversed range: from 2024-03-07 is after to 2024-03-01",
            "swap from and to",
            "invalid",
        )
    ]
    assert specs.backfills["bf"].dates == (Period(date(2024, 3, 15), date(2024, 3, 15)),)


def test_reversed_range_is_located_at_the_list_item() -> None:
    text = """\
apiVersion: backfillctl.dev/v1alpha1
kind: Backfill
metadata: {name: bf}
spec:
  select: {method: descendants, roots: [a]}
  dates:
    - 2024-03-15
    - {from: 2024-03-07, to: 2024-03-01}
"""
    assert formatted(load_files([SourceFile("fix.yaml", text)])) == [
        "fix.yaml:8:7: error: $.spec.dates[1]: "
        "reversed range: from 2024-03-07 is after to 2024-03-01\n  hint: swap from and to"
    ]


def test_a_one_day_range_is_not_reversed() -> None:
    specs = specs_of(backfill(dates=[{"from": "2024-03-07", "to": "2024-03-07"}]))
    assert specs.diagnostics == []
    assert specs.backfills["bf"].dates == (Period(date(2024, 3, 7), date(2024, 3, 7)),)


def test_reversed_effective_period_of_a_node() -> None:
    specs = specs_of(node("a", effective={"from": "2024-03-07", "to": "2024-03-01"}))
    assert problems(specs) == [
        (
            ("spec", "effective"),
            "reversed range: from 2024-03-07 is after to 2024-03-01",
            "swap from and to",
            "invalid",
        )
    ]


def test_half_open_effective_period() -> None:
    specs = specs_of(node("a", effective={"from": "2024-03-07"}))
    assert specs.nodes["a"].effective == Period(date(2024, 3, 7), None)
    assert specs_of(node("a")).nodes["a"].effective == Period(None, None)


DATE_HINT = "A calendar date, YYYY-MM-DD (quoted or not), for example '2024-03-01'"


@pytest.mark.parametrize(
    ("dates", "path"),
    [
        (["2024-02-30"], ("spec", "dates", 0)),
        ([{"from": "2024-02-30", "to": "2024-03-02"}], ("spec", "dates", 0, "from")),
        ([{"from": "2024-02-01", "to": "2023-02-29"}], ("spec", "dates", 0, "to")),
        (["2024-13-01"], ("spec", "dates", 0)),
    ],
)
def test_a_date_that_does_not_exist(dates: list[Any], path: tuple[Any, ...]) -> None:
    specs = specs_of(backfill(dates=dates))
    text = dates[0] if isinstance(dates[0], str) else dates[0][path[-1]]
    assert problems(specs) == [
        (path, f"{text!r} is not a calendar date", DATE_HINT, "schema")
    ]  # the schema's pattern knows each month's length, as editors then do
    # built on stand-in dates (spec.salvage), so its other fields are checked: never planned
    assert specs.lacks(specs.backfills["bf"].origin, "spec", "dates")


def test_leap_day_is_a_date() -> None:
    specs = specs_of(backfill(dates=["2024-02-29"]))
    assert specs.diagnostics == []
    assert specs.backfills["bf"].dates == (Period(date(2024, 2, 29), date(2024, 2, 29)),)


def test_node_effective_date_that_does_not_exist() -> None:
    specs = specs_of(node("a", effective={"to": "2023-02-29"}))
    assert problems(specs) == [
        (
            ("spec", "effective", "to"),
            "'2023-02-29' is not a calendar date",
            DATE_HINT,
            "schema",
        )
    ]


# -- timezones and cron --------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "hint"),
    [
        ("Asia/Shang hai", "did you mean 'Asia/Shanghai'?"),
        ("Europe/Berln", "did you mean 'Europe/Berlin'?"),
        ("asia/shanghai", "did you mean 'Asia/Shanghai'? (names are case-sensitive)"),
        ("UTC+8", "use a region such as Asia/Shanghai, or Etc/GMT-8"),
        ("GMT-05:00", "use a region such as Asia/Shanghai, or Etc/GMT+5"),
    ],
)
def test_unknown_timezone_suggests_the_nearest(tz: str, hint: str) -> None:
    assert problems(specs_of(workspace(timezone=tz))) == [
        (("spec", "timezone"), f"unknown timezone {tz!r}", hint, "bad-timezone")
    ]


@pytest.mark.parametrize("tz", ["Mars/Olympus_Mons", "", "../../etc/passwd"])
def test_unknown_timezone(tz: str) -> None:
    assert problems(specs_of(workspace(timezone=tz))) == [
        (
            ("spec", "timezone"),
            f"unknown timezone {tz!r}",
            "use an IANA name such as Asia/Shanghai, Europe/Berlin or UTC",
            "bad-timezone",
        )
    ]


@pytest.mark.parametrize("tz", ["UTC", "Asia/Shanghai", "Europe/Berlin", "America/New_York"])
def test_known_timezone(tz: str) -> None:
    specs = specs_of(workspace("w", tz, ("bob",)))
    assert specs.diagnostics == []
    assert (specs.workspaces["w"].timezone, specs.workspaces["w"].operators) == (tz, ("bob",))


def test_workspace_without_spec_is_utc() -> None:
    doc = workspace("w")
    del doc["spec"]
    assert specs_of(doc).workspaces["w"].timezone == "UTC"


CRON_HINT = 'use five fields: minute hour day-of-month month day-of-week, e.g. "0 2 * * *"'


@pytest.mark.parametrize(
    ("schedule", "reason"),
    [
        ("0 2 * *", "it has 4 fields, a cron expression has 5"),
        ("0 2 * * * *", "it has 6 fields, a cron expression has 5"),
        (
            "@reboot",
            "@reboot is not a schedule (use @yearly, @monthly, @weekly, @daily or @hourly)",
        ),
        ("x y z a b", "minute 'x' is not a number"),
        ("61 2 * * *", "minute 61 is out of range 0-59"),
        ("0 25 * * *", "hour 25 is out of range 0-23"),
        ("0 0 32 * *", "day-of-month 32 is out of range 1-31"),
        ("0 0 * 0-13 *", "month 0 is out of range 1-12"),
        ("0 0 * * 8", "day-of-week 8 is out of range 0-7"),
        ("0 0 * * 1-9", "day-of-week 9 is out of range 0-7"),
        ("*/0 * * * *", "minute '*/0' has a step of 0"),
        (
            "0 0 * foo *",
            "month 'foo' is not a number or a name "
            "(jan, feb, mar, apr, may, jun, jul, aug, sep, oct, nov, dec)",
        ),
        ("0 0 31 2 *", "it never fires (no day matches its day-of-month, month and day-of-week)"),
        ("0 0 30 2 *", "it never fires (no day matches its day-of-month, month and day-of-week)"),
    ],
)
def test_bad_cron(schedule: str, reason: str) -> None:
    assert problems(specs_of(node("a", schedule))) == [
        (
            ("spec", "schedule"),
            f"invalid cron expression {schedule!r}: {reason}",
            CRON_HINT,
            "bad-cron",
        )
    ]


@pytest.mark.parametrize(
    "schedule", ["0 2 * * *", "*/30 * * * *", "0 3 1 * *", "0 0 29 2 *", "@daily", "@hourly"]
)
def test_good_cron(schedule: str) -> None:
    specs = specs_of(node("a", schedule))
    assert specs.diagnostics == []
    assert specs.nodes["a"].schedule == schedule


# -- selection -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("select", "key", "users"),
    [
        (
            {"method": "link", "start": "a", "ends": ["b"], "roots": ["a"]},
            "roots",
            "manual or descendants or workspace",
        ),
        ({"method": "descendants", "roots": ["a"], "descendants": ["b"]}, "descendants", "manual"),
        ({"method": "manual", "roots": ["a"], "includeRoot": False}, "includeRoot", "workspace"),
        (
            {"method": "workspace", "roots": ["a"], "workspaces": ["w"], "start": "a"},
            "start",
            "link",
        ),
        ({"method": "descendants", "roots": ["a"], "ends": ["z"]}, "ends", "link"),
        ({"method": "manual", "roots": ["a"], "allow": ["b"]}, "allow", "workspace"),
    ],
)
def test_selection_field_of_another_method(select: dict[str, Any], key: str, users: str) -> None:
    assert problems(specs_of(backfill(select=select))) == [
        (
            ("spec", "select", key),
            f"{key!r} has no meaning with method {select['method']!r}",
            f"remove it, or use method {users}",
            "select",
        )
    ]


def test_every_misplaced_selection_field_is_reported() -> None:
    select = {"method": "link", "start": "a", "ends": ["b"], "roots": ["a"], "workspaces": ["w"]}
    assert [p[0] for p in problems(specs_of(backfill(select=select)))] == [
        ("spec", "select", "roots"),
        ("spec", "select", "workspaces"),
    ]


@pytest.mark.parametrize("method", ["manual", "descendants", "workspace", "link"])
def test_block_belongs_to_every_method(method: str) -> None:
    select: dict[str, Any] = {
        "manual": {"roots": ["a"]},
        "descendants": {"roots": ["a"]},
        "workspace": {"roots": ["a"], "workspaces": ["w"]},
        "link": {"start": "a", "ends": ["b"]},
    }[method] | {"method": method, "block": ["x"]}
    specs = specs_of(backfill(select=select))
    assert specs.diagnostics == []
    assert specs.backfills["bf"].select.block == ("x",)


@pytest.mark.parametrize(
    ("descendants", "built"), [(["b", "c"], ("b", "c")), ({"depth": 2}, 2), (None, None)]
)
def test_manual_descendants_as_names_or_depth(descendants: Any, built: Any) -> None:
    select: dict[str, Any] = {"method": "manual", "roots": ["a"]}
    if descendants is not None:
        select["descendants"] = descendants
    assert specs_of(backfill(select=select)).backfills["bf"].select.descendants == built


# -- a whole Backfill and Node -------------------------------------------------------


def test_backfill_defaults() -> None:
    bf = specs_of(backfill()).backfills["bf"]
    assert bf.select == Selection("descendants", roots=("a",))
    assert bf.dates == (Period(date(2024, 3, 1), date(2024, 3, 1)),)
    assert (bf.time_window, bf.execution_window) == (TimeWindow(time(0, 0), time(23, 59)), None)
    assert (bf.run_immediately, bf.order, bf.groups, bf.resource_group) == (
        False,
        "ascending",
        1,
        "follow-node",
    )
    assert (bf.alert_when, bf.notify, bf.stop_on_risk, bf.suspend) == ("failure", (), True, False)
    assert bf.origin == Origin("specs.yaml", 0, 1)


def test_backfill_with_every_field() -> None:
    doc = backfill(
        "full",
        {"method": "workspace", "roots": ["a"], "workspaces": ["w"], "includeRoot": False},
        [{"from": "2024-03-01", "to": "2024-03-03"}, "2024-03-15"],
        timeWindow={"from": "22:00"},
        runImmediately=True,
        order="descending",
        groups=3,
        resourceGroup="big",
        executionWindow={"from": "22:00", "to": "06:00"},
        alerts={
            "when": "always",
            "notify": [
                {"webhook": "https://h.example.com/x"},
                {"command": ["notify.sh", "-v"]},
                {"command": "notify.sh"},
                {"email": "a@example.com"},
            ],
        },
        checks={"stopOnRisk": False},
        suspend=True,
        parameters={"full_refresh": "true"},
    )
    doc["metadata"]["labels"] = {"ticket": "DATA-1"}
    specs = specs_of(doc)
    assert specs.diagnostics == []
    bf = specs.backfills["full"]
    assert bf.select == Selection("workspace", roots=("a",), workspaces=("w",), include_root=False)
    assert bf.dates == (
        Period(date(2024, 3, 1), date(2024, 3, 3)),
        Period(date(2024, 3, 15), date(2024, 3, 15)),
    )
    # a window with only `from` keeps the default end of the day
    assert bf.time_window == TimeWindow(time(22, 0), time(23, 59))
    assert bf.execution_window == TimeWindow(time(22, 0), time(6, 0))
    assert (bf.run_immediately, bf.order, bf.groups, bf.resource_group) == (
        True,
        "descending",
        3,
        "big",
    )
    assert bf.alert_when == "always"
    assert bf.notify == (
        Notifier(webhook="https://h.example.com/x"),
        Notifier(command=("notify.sh", "-v")),
        Notifier(command="notify.sh"),
        Notifier(email="a@example.com"),
    )
    assert (bf.stop_on_risk, bf.suspend) == (False, True)
    assert bf.parameters == (("full_refresh", "true"),)
    assert bf.labels == (("ticket", "DATA-1"),)


def test_node_with_every_field() -> None:
    doc = node(
        "dwd_orders",
        "0 2 * * *",
        ["ods_orders"],
        selfDependent=True,
        priority=5,
        resourceGroup="etl",
        parameters={"pt": "${yyyymmdd}"},
        run={
            "command": ["python", "x.py"],
            "image": "img:1",
            "env": {"TABLE": "t"},
            "timeout": "1h30m",
            "retries": 2,
            "resources": {"cpu": "500m", "memory": "1Gi"},
        },
    )
    n = specs_of(doc).nodes["dwd_orders"]
    assert (n.workspace, n.owners, n.upstream) == ("ws", ("alice",), ("ods_orders",))
    assert (n.self_dependent, n.priority, n.resource_group) == (True, 5, "etl")
    assert n.parameters == (("pt", "${yyyymmdd}"),)
    assert n.run == Run(
        ("python", "x.py"),
        image="img:1",
        env=(("TABLE", "t"),),
        timeout=timedelta(hours=1, minutes=30),
        retries=2,
        cpu="500m",
        memory="1Gi",
    )


def test_node_defaults_and_a_string_command() -> None:
    n = specs_of(node("a", command="echo hi")).nodes["a"]
    assert n.run == Run("echo hi")
    assert (n.priority, n.self_dependent, n.resource_group, n.upstream) == (1, False, None, ())


def test_resource_group() -> None:
    specs = specs_of(resource_group("big", 8, "exclusive"), resource_group("small", 1))
    assert [(g.name, g.concurrency, g.type) for g in specs.resource_groups.values()] == [
        ("big", 8, "exclusive"),
        ("small", 1, "shared"),
    ]


@pytest.mark.parametrize(
    ("doc", "get", "expected"),
    [
        (backfill(groups=2.0), lambda s: s.backfills["bf"].groups, 2),
        (node("a", priority=5.0), lambda s: s.nodes["a"].priority, 5),
        (node("a", run={"command": ["x"], "retries": 1.0}), lambda s: s.nodes["a"].run.retries, 1),
        (resource_group(concurrency=3.0), lambda s: s.resource_groups["rg"].concurrency, 3),
        (config(limits={"maxRoots": 7.0}), lambda s: s.config.limits.max_roots, 7),
        (config(limits={"maxNodes": 9.0}), lambda s: s.config.limits.max_nodes, 9),
    ],
)
def test_integers_written_as_floats_are_ints(doc: dict[str, Any], get: Any, expected: int) -> None:
    # JSON Schema's integer includes 2.0; the planner counts with these (range(groups))
    specs = specs_of(doc)
    assert specs.diagnostics == []
    value = get(specs)
    assert (value, type(value)) == (expected, int)


# -- durations and sizes -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("90s", timedelta(seconds=90)),
        ("2h", timedelta(hours=2)),
        ("30d", timedelta(days=30)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("0s", timedelta(0)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "1m1h", "h", "1.5h", "1H", "2 h", "-1h", "1w"])
def test_parse_duration_errors(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration like 90s, 2h or 1h30m") as exc:
        parse_duration(text)
    assert str(exc.value).startswith(repr(text))


@pytest.mark.parametrize(
    "text", ["36601d", "36600d1s", "9999999999d", "878401h", "9" * 5000 + "s", "1" + "0" * 30 + "m"]
)
def test_a_duration_longer_than_100_years_is_an_error_not_an_overflow(text: str) -> None:
    with pytest.raises(ValueError, match=r"is longer than the limit of 36600d \(100 years\)$"):
        parse_duration(text)
    assert parse_duration("36600d") == parse_duration("878400h") == timedelta(days=36600)


def test_a_duration_too_long_in_a_spec_is_located_and_the_rest_is_built() -> None:
    specs = specs_of(
        workspace(),
        node("a", run={"command": ["x"], "timeout": "1h", "retryDelay": "40000d"}),
        config(
            retention={"instances": "99999999999d"},
            policies=[{"name": "p", "command": ["x"], "timeout": "36601d"}],
        ),
    )
    assert [(d.path, d.message, d.hint) for d in specs.diagnostics] == [
        (
            ("spec", "run", "retryDelay"),
            "'40000d' is longer than the limit of 36600d (100 years)",
            "write a shorter duration, such as 2h or 30d",
        ),
        (
            ("spec", "retention", "instances"),
            "'99999999999d' is longer than the limit of 36600d (100 years)",
            "write a shorter duration, such as 2h or 30d",
        ),
        (
            ("spec", "policies", 0, "timeout"),
            "'36601d' is longer than the limit of 36600d (100 years)",
            "write a shorter duration, such as 2h or 30d",
        ),
    ]
    assert specs.nodes["a"].run.timeout == timedelta(hours=1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3MiB", 3 * 1024 * 1024),
        ("500KB", 500_000),
        ("1GiB", 2**30),
        ("2KiB", 2048),
        ("1GB", 10**9),
        ("7MB", 7_000_000),
        ("10B", 10),
        ("10", 10),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "3mib", "3 MiB", "1.5MiB", "1TB", "MiB", "-1B"])
def test_parse_size_errors(text: str) -> None:
    with pytest.raises(ValueError, match="is not a size like 3MiB") as exc:
        parse_size(text)
    assert str(exc.value).startswith(repr(text))


# -- Config --------------------------------------------------------------------------


def test_config_defaults_without_a_config_document() -> None:
    specs = specs_of(workspace())
    assert specs.config == Config()
    assert specs.config.origin is None


def test_config_defaults_of_an_empty_config() -> None:
    specs = specs_of(config())
    assert specs.diagnostics == []
    c = specs.config
    assert (c.state, c.backend) == ("sqlite:///.backfillctl/state.db", "local")
    assert c.kubernetes == Kubernetes(namespace="default", ttl_after_finished=86_400)
    assert c.limits == Limits(500, 2000)
    assert c.retention == Retention(
        instances=timedelta(days=30),
        logs=(
            ("shared", timedelta(days=7)),
            ("exclusive", timedelta(days=30)),
            ("serverless", timedelta(days=30)),
        ),
        max_log_size=3 * 2**20,
    )
    assert c.origin == Origin("specs.yaml", 0, 1)


def test_config_with_every_field() -> None:
    specs = specs_of(
        config(
            state="sqlite:///state.db",
            backend="kubernetes",
            kubernetes={
                "namespace": "backfill",
                "serviceAccount": "runner",
                "kubeconfig": "kube/config",
                "context": "batch",
                "inCluster": False,
                "image": "etl:1",
                "workingDir": "/app/specs",
                "ttlSecondsAfterFinished": 600,
                "podTemplate": {
                    "metadata": {"labels": {"team": "dw"}},
                    "spec": {"nodeSelector": {"pool": "batch"}},
                },
            },
            limits={"maxRoots": 10, "maxNodes": 20},
            retention={"instances": "12h", "logs": {"exclusive": "90s"}, "maxLogSize": "500KB"},
        )
    )
    assert specs.diagnostics == []
    c = specs.config
    assert (c.state, c.backend) == ("sqlite:///state.db", "kubernetes")
    assert c.kubernetes == Kubernetes(
        namespace="backfill",
        service_account="runner",
        kubeconfig="kube/config",
        context="batch",
        in_cluster=False,
        image="etl:1",
        working_dir="/app/specs",
        ttl_after_finished=600,
        pod_metadata={"labels": {"team": "dw"}},
        pod_spec={"nodeSelector": {"pool": "batch"}},
    )
    assert c.limits == Limits(10, 20)
    # a log age not given keeps its default
    assert c.retention == Retention(
        instances=timedelta(hours=12),
        logs=(
            ("shared", timedelta(days=7)),
            ("exclusive", timedelta(seconds=90)),
            ("serverless", timedelta(days=30)),
        ),
        max_log_size=500_000,
    )


def test_a_second_config_is_an_error_and_the_first_wins() -> None:
    specs = specs_of(config(backend="local"), config(backend="kubernetes"))
    assert problems(specs) == [
        (
            ("kind",),
            "a second Config (the first is at specs.yaml:1)",
            "keep one Config per repository",
            "duplicate",
        )
    ]
    assert specs.config.backend == "local"
    # 4 lines of the first Config, ---, apiVersion: then the second one's kind: on line 7
    assert dump(config(backend="local")).count("\n") == 4
    assert formatted(specs)[0].startswith("specs.yaml:7:1: error: $.kind: a second Config")


def test_the_dashboard_url_of_the_config() -> None:
    from tests.builders import config

    assert specs_of(config(dashboard="https://d.example.com/")).config.dashboard == (
        "https://d.example.com"
    )
    assert specs_of(config()).config.dashboard is None
    assert problems(specs_of(config(dashboard="ftp://d"))) == [
        (
            ("spec", "dashboard"),
            "'ftp://d' is not valid here",
            "write a URL that starts with http:// or https://, for example "
            "'https://backfills.example.com'",
            "schema",
        )
    ]
