"""The plan as data (DESIGN §4): `plan_data` for YAML, streamed `iter_json` for JSON.

`iter_json` hand-writes each instance line for speed; it must always mean exactly
what `json.dumps(plan_data(plan))` means.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from backfill_ctl.core.planner import Plan
from backfill_ctl.usecases.plan import make_plan
from backfill_ctl.usecases.plan_data import instance_data, iter_json, plan_data, seal_of
from tests.builders import NOW, backfill, node, specs_of, workspace

ZOE = "zoë"


def plan_of(*docs: dict[str, Any], actor: str | None = None, file: str = "specs.yaml") -> Plan:
    plan, diagnostics = make_plan(specs_of(*docs, file=file), NOW, actor)
    assert [d.format() for d in diagnostics if d.is_error] == []
    return plan


def streamed(plan: Plan) -> Any:
    return json.loads("".join(iter_json(plan)))


def no_backfill() -> Plan:
    return plan_of(workspace(), node("a"))


def no_instances() -> Plan:
    # The node's effective period starts after every scheduled date: nothing to run.
    return plan_of(workspace(), node("a", effective={"from": "2030-01-01"}), backfill())


def string_command() -> Plan:
    command = 'echo "it\'s ${yyyy-mm-dd}" \\ café ☕\t$jobid'
    return plan_of(workspace(), node("a", command=command), backfill())


def argv_command() -> Plan:
    argv = [
        "python",
        'say "hi"',
        "naïve ☕",
        "back\\slash",
        "tab\there",
        "new\nline",
        "${yyyymmdd}",
    ]
    return plan_of(workspace(), node("a", command=argv), backfill())


def dry_run_reasons() -> Plan:
    """a -> b (blocked) -> c (zoë may not) -> d; a -> m (monthly); u (ends early) -> v."""
    return plan_of(
        workspace(),
        node("a", owners=(ZOE,)),
        node("b", upstream=["a"]),
        node("c", upstream=["b"]),
        node("d", upstream=["c"], owners=(ZOE,)),
        node("m", schedule="0 5 1 * *", upstream=["a"], owners=(ZOE,)),
        node("u", owners=(ZOE,), effective={"to": "2024-02-29"}),
        node("v", upstream=["u"], owners=(ZOE,)),
        backfill(
            select={"method": "descendants", "roots": ["a", "u"], "block": ["b"]},
            dates=[{"from": "2024-02-28", "to": "2024-03-01"}],
        ),
        actor=ZOE,
        file='spé "c".yaml',
    )


def two_backfills() -> Plan:
    return plan_of(
        workspace("ws", "Asia/Shanghai"),
        node("a"),
        node("h", schedule="30 * * * *", upstream=["a"], selfDependent=True),
        backfill("one", timeWindow={"from": "02:00", "to": "04:00"}),
        backfill("two", select={"method": "descendants", "roots": ["h"]}, order="descending"),
    )


def mixed_timezones() -> Plan:
    """Two nodes whose scheduled times are the same instant in different timezones."""
    return plan_of(
        workspace("utc", "UTC"),
        workspace("sh", "Asia/Shanghai"),
        node("a", workspace="utc"),  # 02:00 UTC
        node("b", schedule="0 10 * * *", upstream=["a"], workspace="sh"),  # 10:00+08 = 02:00 UTC
        backfill(),
    )


PLANS: dict[str, Callable[[], Plan]] = {
    "no-backfill": no_backfill,
    "no-instances": no_instances,
    "string-command": string_command,
    "argv-command": argv_command,
    "dry-run-reasons": dry_run_reasons,
    "two-backfills": two_backfills,
    "mixed-timezones": mixed_timezones,
}


@pytest.mark.parametrize("make", PLANS.values(), ids=PLANS.keys())
def test_streamed_json_means_the_same_as_dumping_plan_data(make: Callable[[], Plan]) -> None:
    plan = make()

    assert streamed(plan) == json.loads(json.dumps(plan_data(plan)))


@pytest.mark.parametrize("make", PLANS.values(), ids=PLANS.keys())
def test_each_instance_is_one_line_of_the_stream(make: Callable[[], Plan]) -> None:
    plan = make()

    text = "".join(iter_json(plan))

    lines = [line.strip().rstrip(",") for line in text.splitlines()]
    rows = [json.loads(line) for line in lines if line.startswith('{"id": ')]
    assert rows == [instance_data(i) for bp in plan.backfills for i in bp.instances]
    assert text.endswith("}\n")


def with_list_commands(plan: Plan) -> Plan:
    """The plan with each argv command as a list, as a hand-built Instance may hold it."""
    backfills = tuple(
        replace(
            bp,
            instances=tuple(
                i if isinstance(i.command, str) else i._replace(command=list(i.command))
                for i in bp.instances
            ),
        )
        for bp in plan.backfills
    )
    return replace(plan, backfills=backfills)


@pytest.mark.parametrize(
    "make",
    [*PLANS.values(), lambda: with_list_commands(argv_command())],
    ids=[*PLANS.keys(), "list-command"],
)
def test_each_instance_line_is_the_reference_encoding_byte_for_byte(
    make: Callable[[], Plan],
) -> None:
    """The contract is the bytes: each line is what `json.dumps` writes for the instance
    (ensure_ascii off), not only something that parses to the same data."""
    plan = make()

    text = "".join(iter_json(plan))

    lines = [line.strip().removesuffix(",") for line in text.splitlines()]
    found = [line for line in lines if line.startswith('{"id": ')]
    expected = [
        json.dumps(instance_data(i), ensure_ascii=False)
        for bp in plan.backfills
        for i in bp.instances
    ]
    assert found == expected
    assert json.loads(text)["seal"] == plan_data(plan)["seal"]


@pytest.mark.parametrize("make", PLANS.values(), ids=PLANS.keys())
def test_the_seal_read_back_is_the_seal_written(make: Callable[[], Plan]) -> None:
    """apply --plan recomputes the seal from the parsed file: unicode, escapes, nested
    headers and empty lists must give back the very pieces the stream hashed."""
    plan = make()

    data = streamed(plan)

    assert list(data)[-1] == "seal"
    assert data["seal"].startswith("sha256:")
    assert seal_of(data) == data["seal"] == plan_data(plan)["seal"]
    assert seal_of(json.loads(json.dumps(data, ensure_ascii=True, indent=7))) == data["seal"]


def test_the_seal_changes_with_any_field() -> None:
    data = streamed(dry_run_reasons())
    edits: list[Callable[[dict[str, Any]], object]] = [
        lambda d: d.update(actor="mallory"),
        lambda d: d.update(now="2024-03-20T01:00:01+00:00"),
        lambda d: d.update(extra=None),
        lambda d: d["backfills"][0].update(leftOut=["x"]),
        lambda d: d["backfills"][0]["instances"][0].update(priority=8),
        lambda d: d["backfills"][0]["instances"].pop(),
        lambda d: d["backfills"][0]["instances"].reverse(),
        lambda d: d["backfills"].append({"instances": []}),
    ]
    for edit in edits:
        copy = json.loads(json.dumps(data))
        edit(copy)
        assert seal_of(copy) != data["seal"]


def test_the_scenarios_cover_what_they_claim() -> None:
    assert plan_data(no_backfill())["backfills"] == []
    [empty] = plan_data(no_instances())["backfills"]
    assert (empty["instances"], empty["summary"]["instances"], empty["summary"]["nodes"]) == (
        [],
        0,
        1,
    )
    [bp] = plan_data(dry_run_reasons())["backfills"]
    reasons = {i["dryRunReason"] for i in bp["instances"] if i["dryRun"]}
    assert reasons == {"blocklisted", "no-permission", "not-scheduled-day"}
    assert bp["isolated"] == [
        {"node": "v", "bizdate": "2024-02-29", "upstream": "u"},
        {"node": "v", "bizdate": "2024-03-01", "upstream": "u"},
    ]


def test_commands_come_out_as_written_after_resolution() -> None:
    [string] = plan_data(string_command())["backfills"][0]["instances"]
    [argv] = plan_data(argv_command())["backfills"][0]["instances"]

    assert string["command"] == 'echo "it\'s 2024-03-01" \\ café ☕\tbf'
    assert argv["command"] == [
        "python",
        'say "hi"',
        "naïve ☕",
        "back\\slash",
        "tab\there",
        "new\nline",
        "20240301",
    ]
    assert "naïve ☕" in "".join(iter_json(argv_command()))  # UTF-8, not \\u escapes


def test_the_header_names_the_inputs_of_the_plan() -> None:
    plan = dry_run_reasons()

    data = streamed(plan)

    assert {k: data[k] for k in ("formatVersion", "now", "actor")} == {
        "formatVersion": 1,
        "now": "2024-03-20T01:00:00+00:00",
        "actor": ZOE,
    }
    assert data["digest"] == plan.digest
    assert (data["backfills"][0]["file"], data["backfills"][0]["line"]) == ('spé "c".yaml', 128)


def test_instance_fields_are_the_contract_in_order() -> None:
    instance = plan_data(two_backfills())["backfills"][0]["instances"][0]

    assert list(instance) == [
        "id",
        "node",
        "bizdate",
        "cyctime",
        "dryRun",
        "dryRunReason",
        "group",
        "sequence",
        "priority",
        "waitForTime",
        "dependsOn",
        "command",
    ]


def test_cyctime_keeps_the_timezone_of_each_node() -> None:
    plan = mixed_timezones()

    for data in (plan_data(plan), streamed(plan)):
        cyctimes = {i["node"]: i["cyctime"] for i in data["backfills"][0]["instances"]}
        assert cyctimes == {"a": "2024-03-02T02:00:00+00:00", "b": "2024-03-02T10:00:00+08:00"}


@pytest.mark.parametrize("make", PLANS.values(), ids=PLANS.keys())
def test_instances_in_many_pieces_are_the_same_text(
    make: Callable[[], Plan], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`iter_json` writes and seals its instance lines in batches: the text and its seal
    do not depend on the batch's size (a batch of 2 splits every scenario)."""
    plan = make()
    whole = "".join(iter_json(plan))

    monkeypatch.setattr("backfill_ctl.usecases.plan_data._BATCH", 2)
    pieces = list(iter_json(plan))

    assert "".join(pieces) == whole
    assert json.loads(whole)["seal"] == plan_data(plan)["seal"]
