"""stop, rerun, set-success, freeze, unfreeze, delete through the real app: targets and
filters, refusals with their reasons and exit codes, and the events they write."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import Result

from backfill_ctl.backends.fake import FakeBackend
from backfill_ctl.runtime.lease import this_host
from backfill_ctl.state import StateStore
from backfill_ctl.usecases import reconcile
from tests.builders import backfill, node, specs_of
from tests.cli.helpers import run
from tests.running import applied, controller, drain, states

CHAIN = (
    node("a", resourceGroup="rg"),
    node("b", upstream=["a"], resourceGroup="rg"),
    node("c", upstream=["b"], resourceGroup="rg"),
)
TWO_DAYS = [{"from": "2024-03-01", "to": "2024-03-02"}]


class Ops:
    """A store where a succeeded and b failed on 03-01 (c and 03-02 wait behind it)."""

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "state.db"
        self.store: StateStore = applied(
            tmp_path, *CHAIN, backfill(dates=TWO_DAYS), operators=("ops",)
        )
        c = controller(self.store, FakeBackend(lambda spec: 1 if spec.node == "b" else 0))
        drain(c)
        c.release()
        assert states(self.store) == {
            "a@01": "succeeded",
            "b@01": "failed",
            "c@01": "pending",
            "a@02": "pending",
            "b@02": "pending",
            "c@02": "pending",
        }

    def __call__(self, *args: str) -> Result:
        return run(*args, "--state-file", str(self.path), env={"BACKFILLCTL_ACTOR": "ops"})

    def id(self, node: str, day: str = "2024-03-01") -> str:
        return self.store.instances(node=node, bizdate=day)[0].id


@pytest.fixture
def ops(tmp_path: Path) -> Ops:
    return Ops(tmp_path)


def test_rerun_by_filter_reports_each_instance_and_records_the_actor(ops: Ops) -> None:
    result = ops("rerun", "--backfill", "bf", "--state", "failed")

    assert (result.exit_code, result.stdout, result.stderr) == (
        0,
        f"instance/{ops.id('b')} rerun\n",
        "",
    )
    event = ops.store.events(instance=ops.id("b"))[-1]
    assert (event.actor, event.kind, event.to_state) == ("ops", "rerun", "pending")


def test_node_and_bizdate_filters_narrow_the_targets(ops: Ops) -> None:
    result = ops("freeze", "--backfill", "bf", "--node", "c", "--bizdate", "2024-03-02")
    assert result.stdout == f"instance/{ops.id('c', '2024-03-02')} frozen\n"
    assert states(ops.store)["c@02"] == "frozen"
    assert states(ops.store)["c@01"] == "pending"


def test_ids_may_carry_the_instance_prefix(ops: Ops) -> None:
    result = ops("set-success", f"instance/{ops.id('b')}")
    assert result.exit_code == 0
    assert states(ops.store)["b@01"] == "succeeded"


def test_refused_instances_are_named_with_the_reason_and_exit_1(ops: Ops) -> None:
    result = ops("rerun", "--backfill", "bf", "--bizdate", "2024-03-01")

    assert result.exit_code == 1
    assert result.stdout == f"instance/{ops.id('a')} rerun\ninstance/{ops.id('b')} rerun\n"
    assert result.stderr == (
        f"instance/{ops.id('c')}: cannot rerun: it is pending "
        "(rerun applies to failed or succeeded instances)\n"
    )
    assert states(ops.store)["c@01"] == "pending"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("rerun",), "error: no instances named\n  hint: pass instance ids, or --backfill NAME"),
        (
            ("rerun", "nope"),
            "error: no instance nope in {path}\n  hint: backfillctl get instances lists them",
        ),
        (
            ("rerun", "--backfill", "nope"),
            "error: no backfill 'nope' in {path}\n  hint: backfillctl get backfills lists them",
        ),
        (
            ("rerun", "--backfill", "bf", "--state", "runing"),
            "error: unknown state 'runing'\n  hint: use one of pending, waiting-for-time, "
            "waiting-for-resources, running, succeeded, failed, frozen, cancelled",
        ),
        (
            ("rerun", "--backfill", "bf", "--node", "zz"),
            "error: no instance matches\n  hint: loosen the filters",
        ),
        (
            ("freeze", "--backfill", "bf", "--bizdate", "2024-13-01"),
            "error: --bizdate '2024-13-01' is not a date\n  hint: write it like 2024-03-01",
        ),
        (
            ("delete", "instance/x"),
            "error: delete takes backfill/NAME, not 'instance/x'\n"
            "  hint: instances cannot be deleted; freeze them instead",
        ),
    ],
)
def test_unusable_targets_exit_2_and_change_nothing(
    ops: Ops, args: tuple[str, ...], message: str
) -> None:
    before = ops.store.last_event_id()
    result = ops(*args)
    assert result.exit_code == 2
    assert result.stderr.rstrip("\n") == message.format(path=ops.path)
    assert ops.store.last_event_id() == before


def test_a_missing_store_is_an_error_not_a_new_file(tmp_path: Path) -> None:
    result = run("rerun", "x", "--state-file", str(tmp_path / "none.db"))
    assert result.exit_code == 2
    assert "no state store at" in result.stderr
    assert not (tmp_path / "none.db").exists()


def test_stop_backfill_halts_it_and_a_rerun_resumes_it(ops: Ops) -> None:
    a2 = ops.id("a", "2024-03-02")
    ops.store.transition([a2], "running", allowed=["pending"], at=0, actor="t", origin="t")

    stopped = ops("stop", "backfill/bf")

    assert (stopped.exit_code, stopped.stdout) == (
        0,
        "backfill/bf stopped (1 running instance(s) stopping)\n",
    )
    record = ops.store.backfill("bf")
    assert record is not None and record.status == "stopped"
    assert ops.store.instances(ids=[a2])[0].stop_requested
    assert ops("rerun", ops.id("b")).exit_code == 0
    record = ops.store.backfill("bf")
    assert record is not None and record.status == "active"
    assert [e.message for e in ops.store.events(backfill="bf") if e.instance is None][-1] == (
        "resumed: rerun by ops"
    )


def test_delete_is_refused_while_an_instance_runs(ops: Ops) -> None:
    a2 = ops.id("a", "2024-03-02")
    ops.store.transition([a2], "running", allowed=["pending"], at=0, actor="t", origin="t")

    before = ops.store.last_event_id()

    result = ops("delete", "backfill/bf")

    assert (result.exit_code, result.stdout, result.stderr) == (
        1,
        "",
        "backfill/bf: cannot delete: it has 1 running instance(s) "
        "(stop it first: backfillctl stop backfill/bf)\n",
    )
    record = ops.store.backfill("bf")
    assert record is not None and record.status == "active"
    assert ops.store.last_event_id() == before


def test_delete_cancels_what_has_not_started_and_keeps_the_history(ops: Ops) -> None:
    result = ops("delete", "backfill/bf")

    assert (result.exit_code, result.stdout) == (
        0,
        "backfill/bf deleted (4 instance(s) cancelled)\n",
    )
    assert states(ops.store) == {
        "a@01": "succeeded",
        "b@01": "failed",
        "c@01": "cancelled",
        "a@02": "cancelled",
        "b@02": "cancelled",
        "c@02": "cancelled",
    }
    record = ops.store.backfill("bf")
    assert record is not None and record.status == "deleted"
    listed = ops("get", "backfills")
    assert "bf" not in listed.stdout
    assert "Deleted" in ops("get", "backfills", "--all").stdout


def test_a_backfill_stopped_before_anything_ran_is_resumed_and_then_runs(tmp_path: Path) -> None:
    store = applied(tmp_path, *CHAIN, backfill(dates=TWO_DAYS), operators=("ops",))

    def app(*args: str) -> Result:
        return run(*args, "--state-file", str(store.path), env={"BACKFILLCTL_ACTOR": "ops"})

    assert app("stop", "backfill/bf").exit_code == 0
    stuck = app("rerun", "--backfill", "bf")  # nothing finished: nothing to rerun
    applied(tmp_path, *CHAIN, backfill(dates=TWO_DAYS), operators=("ops",))  # apply again
    assert (
        "Stopped: nothing new starts until it is resumed" in app("describe", "backfill/bf").stdout
    )
    c = controller(store)
    drain(c)
    c.release()
    assert set(states(store).values()) == {"pending"}
    assert stuck.exit_code != 0

    resumed = app("resume", "backfill/bf")

    assert (resumed.exit_code, resumed.stdout, resumed.stderr) == (0, "backfill/bf resumed\n", "")
    record = store.backfill("bf")
    assert record is not None and record.status == "active"
    assert [e.message for e in store.events(backfill="bf") if e.instance is None][-1] == (
        "resumed by ops"
    )
    c = controller(store)
    drain(c)
    assert set(states(store).values()) == {"succeeded"}


def test_resume_is_refused_when_not_stopped_or_not_a_backfill(ops: Ops) -> None:
    before = ops.store.last_event_id()

    active = ops("resume", "backfill/bf")
    instance = ops("resume", ops.id("a"))
    unknown = ops("resume", "backfill/nope")

    assert (active.exit_code, active.stderr) == (  # refused as it stands: not unusable input
        1,
        "backfill/bf: cannot resume: it is active (only a stopped backfill is resumed)\n",
    )
    assert instance.exit_code == 2
    assert f"resume takes backfill/NAME, not '{ops.id('a')}'" in instance.stderr
    assert unknown.exit_code == 2
    assert "no backfill 'nope'" in unknown.stderr
    assert ops.store.last_event_id() == before


def test_resume_needs_every_node_as_stop_backfill_does(ops: Ops) -> None:
    assert ops("stop", "backfill/bf").exit_code == 0

    refused = run("resume", "backfill/bf", "--as", "mallory", "--state-file", str(ops.path))

    assert refused.exit_code == 1
    assert refused.stderr.startswith("backfill/bf: cannot resume: mallory may not operate")
    record = ops.store.backfill("bf")
    assert record is not None and record.status == "stopped"


# Exit 1 is an operation that refused what it was asked, because of what the objects are
# now (their state) or who asks (their permission), each named with the reason; exit 2 is
# input that cannot be used at all (test_unusable_targets_exit_2_and_change_nothing).


@pytest.mark.parametrize(
    ("operation", "node", "state"),
    [
        ("stop", "a", "succeeded"),
        ("rerun", "c", "pending"),
        ("set-success", "a", "succeeded"),
        ("freeze", "a", "succeeded"),
        ("unfreeze", "b", "failed"),
    ],
)
def test_an_instance_in_another_state_is_refused_with_exit_1(
    ops: Ops, operation: str, node: str, state: str
) -> None:
    before = ops.store.last_event_id()
    result = ops(operation, ops.id(node))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"instance/{ops.id(node)}: cannot {operation}: it is {state} (")
    assert ops.store.last_event_id() == before


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        ("deleted", "apply its spec again to bring it back"),
        ("collected", "gc removed its instances: change its spec and apply it to run it again"),
    ],
)
@pytest.mark.parametrize("operation", ["stop", "resume"])
def test_a_deleted_or_collected_backfill_is_neither_stopped_nor_resumed(
    ops: Ops, operation: str, status: str, hint: str
) -> None:
    """Stopping one made it a stopped backfill again (listed, and resumable into a run)."""
    ops.store.update_backfill("bf", at=0, actor="t", origin="t", status=status)
    before = ops.store.last_event_id()

    result = ops(operation, "backfill/bf")

    assert (result.exit_code, result.stdout, result.stderr) == (
        1,
        "",
        f"backfill/bf: cannot {operation}: it is {status} ({hint})\n",
    )
    record = ops.store.backfill("bf")
    assert record is not None and record.status == status
    assert ops.store.last_event_id() == before


def test_resume_of_several_refuses_one_not_stopped_and_resumes_none(tmp_path: Path) -> None:
    """Each backfill named is checked before any changes, as for permission."""
    store = applied(tmp_path, *CHAIN, backfill("one"), backfill("two"), operators=("ops",))
    env = {"BACKFILLCTL_ACTOR": "ops"}
    assert run("stop", "backfill/one", "--state-file", store.path, env=env).exit_code == 0

    result = run("resume", "backfill/one", "backfill/two", "--state-file", store.path, env=env)

    assert (result.exit_code, result.stdout, result.stderr) == (
        1,
        "",
        "backfill/two: cannot resume: it is active (only a stopped backfill is resumed)\n",
    )
    record = store.backfill("one")
    assert record is not None and record.status == "stopped"


@pytest.mark.parametrize(
    "args",
    [
        ("stop", "{a}"),
        ("rerun", "{a}"),
        ("set-success", "{c}"),
        ("freeze", "{c}"),
        ("unfreeze", "{c}"),
        ("stop", "backfill/bf"),
        ("resume", "backfill/bf"),
        ("delete", "backfill/bf"),
    ],
)
def test_every_operation_refused_for_permission_exits_1(ops: Ops, args: tuple[str, str]) -> None:
    operation, target = args[0], args[1].format(a=ops.id("a"), c=ops.id("c"))
    before = ops.store.last_event_id()

    result = run(operation, target, "--as", "mallory", "--state-file", str(ops.path))

    shown = target if target.startswith("backfill/") else f"instance/{target}"
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{shown}: cannot {operation}: mallory may not operate")
    assert ops.store.last_event_id() == before


def test_delete_of_a_deleted_backfill_is_refused_and_changes_nothing(ops: Ops) -> None:
    """Deleting it again wrote another "deleted" event and said it was deleted."""
    assert ops("delete", "backfill/bf").exit_code == 0
    before = ops.store.last_event_id()

    again = ops("delete", "backfill/bf")

    assert (again.exit_code, again.stdout, again.stderr) == (
        1,
        "",
        "backfill/bf: cannot delete: it is deleted already\n",
    )
    record = ops.store.backfill("bf")
    assert record is not None and record.status == "deleted"
    assert ops.store.last_event_id() == before


def test_a_collected_backfill_may_be_deleted(ops: Ops) -> None:
    """gc kept it (its spec is still applied) as collected; deleting it lets gc drop it."""
    ops.store.update_backfill("bf", at=0, actor="t", origin="t", status="collected")

    result = ops("delete", "backfill/bf")

    assert result.exit_code == 0, result.stderr
    record = ops.store.backfill("bf")
    assert record is not None and record.status == "deleted"


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        ("deleted", "apply its spec again to bring it back"),
        ("collected", "gc removed its instances: change its spec and apply it to run it again"),
    ],
)
@pytest.mark.parametrize(
    ("operation", "node", "day"),
    [
        ("rerun", "a", "2024-03-01"),  # succeeded: it went back to pending, and never ran
        ("rerun", "b", "2024-03-01"),
        ("set-success", "b", "2024-03-01"),
        ("freeze", "b", "2024-03-01"),
        ("unfreeze", "c", "2024-03-02"),
    ],
)
def test_instance_operations_on_a_deleted_or_collected_backfill_are_refused(
    ops: Ops, operation: str, node: str, day: str, status: str, hint: str
) -> None:
    """The controller runs no instance of such a backfill: a change would be a lie in
    `get` (a rerun shown pending that never runs)."""
    target = ops.id(node, day)
    assert ops("freeze", ops.id("c", "2024-03-02")).exit_code == 0
    ops.store.update_backfill("bf", at=0, actor="t", origin="t", status=status)
    was = ops.store.instances(ids=[target])[0].state
    before = ops.store.last_event_id()

    result = ops(operation, target)

    assert (result.exit_code, result.stdout, result.stderr) == (
        1,
        "",
        f"instance/{target}: cannot {operation}: its backfill is {status} ({hint})\n",
    )
    assert ops.store.instances(ids=[target])[0].state == was
    assert ops.store.last_event_id() == before


def test_a_filter_over_a_deleted_backfill_refuses_each_instance_it_names(ops: Ops) -> None:
    assert ops("delete", "backfill/bf").exit_code == 0
    before = ops.store.last_event_id()

    result = ops("rerun", "--backfill", "bf", "--bizdate", "2024-03-01")

    assert result.exit_code == 1
    assert result.stdout == ""
    why = "cannot rerun: its backfill is deleted (apply its spec again to bring it back)"
    assert sorted(result.stderr.splitlines()) == sorted(
        f"instance/{ops.id(n)}: {why}" for n in ("a", "b", "c")
    )
    assert states(ops.store)["a@01"] == "succeeded"
    assert ops.store.last_event_id() == before


def test_an_instance_prune_kept_running_may_still_be_stopped(tmp_path: Path) -> None:
    """Its backfill is deleted, but the controller watches the attempt until it ends: a
    stop is carried out (the one operation on a gone backfill's instances that is)."""
    store = applied(tmp_path, node("a", resourceGroup="rg"), backfill(), operators=("ops",))
    c = controller(store, FakeBackend(lambda spec: None))  # runs until stopped
    for _ in range(3):
        c.tick()
    (running,) = store.instances(states=["running"])
    pruned = reconcile.diff([], store, prune=True)
    reconcile.apply(store, pruned, specs_of(), at=0, actor="t", origin="apply")
    record = store.backfill("bf")
    assert record is not None and record.status == "deleted"

    result = run(
        "stop", running.id, "--state-file", str(store.path), env={"BACKFILLCTL_ACTOR": "ops"}
    )
    for _ in range(3):
        c.tick()

    assert (result.exit_code, result.stdout) == (0, f"instance/{running.id} stop requested\n")
    assert store.instances(ids=[running.id])[0].state == "failed"
    assert store.events(instance=running.id)[-1].message == "stopped by ops"


# -- stop --force (usecases/force_stop.py; real processes: tests/test_pid_namespaces.py) --


def test_stop_force_is_refused_where_the_controller_follows_the_attempt(tmp_path: Path) -> None:
    """The controller that holds the lease never recorded the attempt out of its reach: a
    stop ends it, and `stop --force` says so (exit 1), changing nothing. Nor does it apply
    to an instance that does not run, nor to backfill/NAME (exit 2)."""
    store = applied(tmp_path, node("a", resourceGroup="rg"), backfill(), operators=("ops",))
    c = controller(store, FakeBackend(lambda spec: None))  # runs until stopped
    c.tick()
    (running,) = store.instances(states=["running"])
    before = store.last_event_id()

    def force(*args: str) -> Result:
        return run("stop", *args, "--force", "--state-file", str(store.path), "--as", "ops")

    refused = force(running.id)
    assert (refused.exit_code, refused.stdout) == (1, "")
    assert refused.stderr == (
        f"instance/{running.id}: cannot stop --force: the controller that drives the store "
        f"(pid {os.getpid()} on {this_host()}) follows its processes (it has not found them "
        "out of its reach): stop it without --force\n"
    )
    assert store.last_event_id() == before
    assert store.instances(ids=[running.id])[0].stop_requested is False
    c.release()
    assert force("--backfill", "bf").exit_code == 1  # (the lease is kept as it was)
    whole = force("backfill/bf")
    assert whole.exit_code == 2
    assert "stop --force takes instances, not backfill/bf" in whole.stderr


def test_stop_force_of_an_attempt_out_of_reach_records_who_asked(
    tmp_path: Path,
) -> None:
    """The controller recorded the attempt out of its reach (as after a takeover from
    another pid namespace): `stop --force` is allowed to an operator of its node and
    stored with who asked. A controller that can follow it after all (here: the fake
    backend, which follows its attempts from anywhere) stops it instead: failed, not
    retried. (Recorded lost where it cannot: tests/test_pid_namespaces.py.)"""
    store = applied(
        tmp_path,
        node("a", resourceGroup="rg", run={"command": ["x"], "retries": 2}),
        backfill(),
        operators=("ops",),
    )
    c = controller(store, FakeBackend(lambda spec: None))
    c.tick()
    (running,) = store.instances(states=["running"])
    store.transition(  # what a controller records of an attempt it cannot reach
        [running.id],
        "running",
        allowed=["running"],
        at=0,
        actor="controller",
        origin=c.origin,
        reason="attempt 1 runs on host web-2",
        kind="out-of-reach",
    )
    denied = run("stop", running.id, "--force", "--state-file", str(store.path), "--as", "eve")
    assert denied.exit_code == 1
    assert "cannot stop --force: eve may not operate node a" in denied.stderr

    done = run("stop", running.id, "--force", "--state-file", str(store.path), "--as", "ops")
    assert (done.exit_code, done.stdout) == (0, f"instance/{running.id} stop requested (--force)\n")
    event = store.events(instance=running.id)[-1]
    assert (event.kind, event.actor, event.message) == ("force-stop", "ops", "stop --force by ops")
    for _ in range(3):
        c.tick()
    assert store.instances(ids=[running.id])[0].state == "failed"  # stopped, not retried
    (attempt,) = store.attempts(running.id)
    assert (attempt.state, attempt.message) == ("failed", "stopped by ops")
