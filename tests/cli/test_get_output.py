"""`get`'s kubectl output options through the real app (cli.get_output): -o jsonpath,
-o custom-columns, --sort-by, --no-headers, set-based -l; `describe -o json|yaml`; and
what issue 11 item 11 asked of get and describe (cancelled, finished, changed groups).

The store is tests/usecases/test_progress.make_store, as in test_get_describe.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from backfill_ctl.state import open_store
from tests.cli.helpers import run
from tests.cli.test_get_describe import Cli, cli, lines, ok, pinned_clock, usage_error
from tests.usecases.test_progress import T0, backfill, instance, save

__all__ = ["cli", "pinned_clock"]  # the fixtures of test_get_describe


def test_jsonpath_reads_the_list(cli: Cli) -> None:
    names = ok(cli("get", "backfills", "-o", "jsonpath={.items[*].metadata.name}"))
    assert names == "clicks fix-orders"  # as kubectl: no newline added
    template = '{range .items[*]}{.metadata.name}{"\\t"}{.status.state}{"\\n"}{end}'
    assert ok(
        cli("get", "instances", "-b", "fix-orders", "--node", "a", "-o", "jsonpath=" + template)
    ) == (lines("a1\tsucceeded", "a2\tpending", "a3\trunning"))
    assert ok(cli("get", "instances", "b1", "-o", "jsonpath={.items[0].status.attempts}")) == "1"


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("jsonpath={.items[", "error: jsonpath '{.items[': the brace at 0 is not closed"),
        (
            "jsonpath={..name}",
            "error: jsonpath '{..name}': recursive descent (..) is not supported",
        ),
        ("jsonpath", "error: -o 'jsonpath': jsonpath needs an argument"),
        ("custom-columns=NAME", "error: -o custom-columns: 'NAME' is not HEADER:PATH"),
        ("jsonpth={.a}", "error: -o 'jsonpth={.a}': unknown output format"),
        ("wide=x", "error: -o 'wide=x': wide takes no argument"),
    ],
)
def test_a_bad_output_is_a_usage_error(cli: Cli, output: str, message: str) -> None:
    assert usage_error(cli("get", "instances", "-o", output))[0] == message


def test_a_bad_sort_key_is_a_usage_error(cli: Cli) -> None:
    assert usage_error(cli("get", "instances", "--sort-by", "{.status[}")) == [
        "error: jsonpath '{.status[}': cannot read '['",
        "  hint: write a template like {.items[*].metadata.name} or "
        '{range .items[*]}{.metadata.name}{"\\n"}{end}',
    ]


def test_custom_columns_and_no_headers(cli: Cli) -> None:
    columns = "NAME:.metadata.name,TEAM:.metadata.labels.team,FINISHED:.status.finishedAt"
    assert ok(cli("get", "backfills", "-o", "custom-columns=" + columns)) == lines(
        "NAME        TEAM    FINISHED",
        "clicks      web     <none>",
        "fix-orders  retail  <none>",
    )
    assert ok(cli("get", "backfills", "-o", "custom-columns=" + columns, "--no-headers")) == (
        lines("clicks      web     <none>", "fix-orders  retail  <none>")
    )
    table = ok(cli("get", "instances", "-b", "fix-orders", "--no-headers"))
    assert table.splitlines()[0].split()[:2] == ["a1", "fix-orders"]


def test_sort_by_a_field_of_each_object(cli: Cli) -> None:
    by_state = ok(
        cli("get", "instances", "-b", "fix-orders", "--sort-by", ".status.state", "-o", "name")
    )
    assert by_state == lines(
        "instance/b1", "instance/a2", "instance/b2", "instance/b3", "instance/a3", "instance/a1"
    )
    by_count = ok(cli("get", "backfills", "-A", "--sort-by", "{.status.instances}", "-o", "name"))
    assert by_count.splitlines()[-1] == "backfill/fix-orders"
    data = json.loads(ok(cli("get", "backfills", "--sort-by", "status.phase", "-o", "json")))
    assert [i["status"]["phase"] for i in data["items"]] == ["Running", "Waiting"]


@pytest.mark.parametrize(
    ("selector", "names"),
    [
        ("team in (retail,web)", ["clicks", "fix-orders"]),
        ("team notin (retail)", ["clicks"]),
        ("ticket", ["fix-orders"]),
        ("!ticket", ["clicks"]),
        ("team in (retail, web),!ticket", ["clicks"]),
        ("team!=nobody", ["clicks", "fix-orders"]),
    ],
)
def test_set_based_selectors(cli: Cli, selector: str, names: list[str]) -> None:
    shown = ok(cli("get", "backfills", "-l", selector, "-o", "name"))
    assert shown == lines(*(f"backfill/{n}" for n in names))


def test_set_based_selectors_of_instances(cli: Cli) -> None:
    shown = ok(cli("get", "instances", "-l", "team notin (retail)", "-o", "name"))
    assert shown == "instance/c1\n"


def test_describe_as_data_is_the_object_get_lists(cli: Cli) -> None:
    listed = json.loads(ok(cli("get", "backfills", "fix-orders", "-o", "json")))["items"][0]
    described = json.loads(ok(cli("describe", "backfill/fix-orders", "-o", "json")))
    groups = described["status"].pop("dateGroups")
    assert described == listed
    assert groups[0] == {
        "group": 0,
        "dates": 2,
        "instances": 4,
        "done": 1,
        "currentDate": "2024-03-01",
        "position": 1,
        "atCurrentDate": {"succeeded": 1, "failed": 1},
    }
    as_yaml = yaml.safe_load(ok(cli("describe", "backfill/fix-orders", "-o", "yaml")))
    assert as_yaml["status"].pop("dateGroups") == groups
    assert as_yaml == listed


def test_describe_several_as_data_is_a_list(cli: Cli) -> None:
    data = json.loads(ok(cli("describe", "b2", "instance/a1", "-o", "json")))
    assert data["kind"] == "List"
    b2, a1 = data["items"]
    assert (b2["kind"], b2["metadata"]["name"], a1["metadata"]["name"]) == ("Instance", "b2", "a1")
    assert b2["status"]["waitingFor"] == "1 dependency not succeeded: a2 is pending"
    assert a1["status"]["waitingFor"] is None


# -- issue 11, item 11 ----------------------------------------------------------------------


def test_get_backfills_counts_the_cancelled_instances(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    save(
        store,
        backfill("bf"),
        instance("x1", bf="bf", state="succeeded"),
        instance("x2", bf="bf", day=2, seq=1, state="cancelled"),
        instance("x3", bf="bf", day=3, seq=2, state="pending"),
    )
    rows = ok(run("get", "backfills", "--state-file", str(tmp_path / "s.db"))).splitlines()
    cells = dict(zip(rows[0].split(), rows[1].split(), strict=True))
    assert (cells["INSTANCES"], cells["SUCCEEDED"], cells["CANCELLED"]) == ("3", "1", "1")
    assert cells["WAITING"] == "1"


def test_a_finished_backfill_shows_when_it_finished(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s.db")
    save(
        store,
        backfill("done", outcome="succeeded", finished_at=T0 - 600),
        instance("d1", bf="done", state="succeeded"),
    )
    state = ("--state-file", str(tmp_path / "s.db"))
    rows = ok(run("get", "backfills", *state)).splitlines()
    cells = dict(zip(rows[0].split(), rows[1].split(), strict=True))
    assert (cells["STATUS"], cells["FINISHED"], cells["AGE"]) == ("Succeeded", "10m", "2h")
    wide = ok(run("get", "backfills", "-o", "wide", *state))
    assert wide.splitlines()[1].endswith("2024-03-20T00:50:00Z")
    described = ok(run("describe", "backfill/done", *state))
    assert "\nFinished:           2024-03-20T00:50:00Z: succeeded\n" in described
    status = json.loads(ok(run("get", "backfills", "-o", "json", *state)))["items"][0]["status"]
    assert status["finishedAt"] == "2024-03-20T00:50:00Z"


def test_describe_after_the_groups_changed(tmp_path: Path) -> None:
    """groups: 2 -> 3 over 6 days of a -> b, after 03-01, 03-02, 03-04 and a of 03-05 ran:
    the instances that ended keep their group and sequence, the others were renumbered,
    so sequence 0 of group 1 holds 03-03 (renumbered, pending) and 03-04 (succeeded)."""
    store = open_store(tmp_path / "s.db")
    placed = [  # (day, group, sequence, state of a, state of b)
        (1, 0, 0, "succeeded", "succeeded"),
        (2, 0, 1, "succeeded", "running"),
        (3, 1, 0, "pending", "pending"),
        (4, 1, 0, "succeeded", "succeeded"),
        (5, 1, 1, "succeeded", "running"),
        (6, 2, 1, "pending", "pending"),
    ]
    save(
        store,
        backfill("bf", body={"groups": 3}),
        *(
            instance(f"{node}{day}", node=node, bf="bf", day=day, group=g, seq=q, state=st)
            for day, g, q, a, b in placed
            for node, st in (("a", a), ("b", b))
        ),
    )
    text = ok(run("describe", "backfill/bf", "--state-file", str(tmp_path / "s.db")))
    assert (
        lines(
            "  GROUP  CURRENT DATE  PROGRESS     INSTANCES DONE  AT THE CURRENT DATE",
            "  0      2024-03-02    date 2 of 2  3 of 4          1 running, 1 succeeded",
            "  1      2024-03-03    date 1 of 3  3 of 6          2 pending",
            "  2      2024-03-06    date 1 of 1  0 of 2          2 pending",
        )
        in text
    )


# -- TYPE/NAME, as kubectl get pod/NAME ----------------------------------------------------


def test_what_get_o_name_prints_is_what_get_takes(cli: Cli) -> None:
    """`get instance/ID` and `get backfill/NAME` (any of kubectl's spellings: backfills/,
    bf/, instances/, inst/) list those, as `get instances ID` and `get backfills NAME`."""
    names = ok(cli("get", "instances", "-o", "name")).split()
    for name in names[:2]:
        assert ok(cli("get", name, "-o", "name")) == name + "\n"
    assert ok(cli("get", *names, "-o", "name")).split() == names
    ident = names[0].removeprefix("instance/")
    assert ok(cli("get", f"inst/{ident}")) == ok(cli("get", "instances", ident))
    (backfill_name,) = ok(cli("get", "backfills", "-o", "name")).split()[:1]
    name = backfill_name.removeprefix("backfill/")
    for spelling in ("backfill", "backfills", "bf"):
        assert ok(cli("get", f"{spelling}/{name}", "-o", "wide")) == ok(
            cli("get", "backfills", name, "-o", "wide")
        )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("backfill/a", "instance/b"), "error: backfills and instances cannot be listed together"),
        (("pod/x",), "error: 'pod/x': not a backfill/NAME or an instance/ID"),
        (("backfill/",), "error: 'backfill/': not a backfill/NAME or an instance/ID"),
    ],
)
def test_a_type_name_get_cannot_list_is_a_usage_error(
    cli: Cli, args: tuple[str, ...], message: str
) -> None:
    assert usage_error(cli("get", *args))[0] == message
