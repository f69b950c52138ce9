"""apply, diff and controller through the real app, on the local backend with real processes."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from backfill_ctl.runtime.lease import this_host
from backfill_ctl.state import open_store
from tests.builders import API, backfill, dump, node, resource_group, workspace
from tests.cli.helpers import NOW, REPO, interruptible, run, write_files
from tests.test_reliability import controller, wait_until

CONFIG = {"apiVersion": API, "kind": "Config", "spec": {"backend": "local"}}


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def specs(root: Path, *docs: dict[str, Any]) -> str:
    write_files(
        root / "specs",
        {
            "backfillctl.yaml": dump(CONFIG),
            "catalog.yaml": dump(workspace(operators=("ops",)), resource_group("rg", 4), *docs),
        },
    )
    return str(root / "specs")


WRITE = 'echo "$BACKFILL_NODE $BACKFILL_BIZDATE" >> done.txt'
CHAIN = (
    node("a", resourceGroup="rg", command=WRITE),
    node("b", upstream=["a"], resourceGroup="rg", command=WRITE),
)
TWO_DAYS = [{"from": "2024-03-01", "to": "2024-03-02"}]
YEAR = [{"from": "2023-03-01", "to": "2024-02-29"}]


def test_apply_wait_runs_the_backfill_and_a_second_apply_changes_nothing(repo: Path) -> None:
    path = specs(repo, *CHAIN, backfill(dates=TWO_DAYS))

    first = run("apply", path, "--as", "ops", "--now", NOW, "--wait")

    assert first.exit_code == 0, first.stderr
    assert first.stdout.splitlines()[0] == "+ backfill/bf: +4 ~0 -0"
    assert first.stdout.splitlines()[1].startswith(
        "Apply complete: 4 created, 0 updated, 0 cancelled; 0 kept as they ran. Plan digest sha256:"
    )
    assert first.stderr.splitlines()[-1] == "backfill/bf: succeeded"
    # Commands ran in the specs' root, in order, one business date at a time.
    assert (repo / "specs" / "done.txt").read_text().splitlines() == [
        "a 20240301",
        "b 20240301",
        "a 20240302",
        "b 20240302",
    ]
    assert (repo / ".backfillctl" / "state.db").exists()  # the default store
    # Off a terminal: a plain progress line per change, no control codes.
    progress = [line for line in first.stderr.splitlines() if line.startswith("progress: ")]
    assert progress, first.stderr
    assert len(set(progress)) == len(progress) and "\x1b" not in first.stderr
    assert progress[-1].startswith("progress: 4/4 finished: 4 succeeded (elapsed ")
    assert "/min, ETA 0:00)" in progress[-1]
    again = run("apply", path, "--as", "ops", "--now", NOW)
    assert again.exit_code == 0
    assert again.stdout.splitlines() == [
        "  backfill/bf: +0 ~0 -0",
        "No changes: the state store matches the specs. Plan digest "
        + again.stdout.split("Plan digest ")[1].rstrip("\n"),
    ]


# Modules `apply --wait` has no use for when the backfill succeeds: comparing with a
# base ref, the refusal report, why instances wait (a timeout's), the validators that
# write schema errors, live progress on a terminal, cron beyond a plain daily schedule;
# hashlib loads OpenSSL's libcrypto (backfill_ctl.hashes has Python's own sha256);
# getpass (and termios) tells the local user, the actor when none is given; socket (and
# selectors): the host's name is os.uname()'s; pickle: a fork's results, when a large
# catalog is read by two processes; the operations' rules, which `stop --force` reads of
# an adopted attempt (4 ms).
NOT_IMPORTED = (
    "backfill_ctl.usecases.operations",
    "backfill_ctl.usecases.force_stop",
    "hashlib",
    "pickle",
    "getpass",
    "socket",
    "backfill_ctl.risks.compare",
    "backfill_ctl.reports.check_text",
    "backfill_ctl.usecases.progress",
    "jsonschema",
    "fastjsonschema",
    "rich",
    "croniter",
    "pydantic",
)


def test_apply_wait_in_a_fresh_process_imports_only_what_it_runs(repo: Path) -> None:
    """Every import is paid before the first instance starts (issue 15): the console
    script's path, in a fresh interpreter, loads none of the modules it does not use."""
    path = specs(repo, *CHAIN, backfill(dates=TWO_DAYS))
    probe = (
        "import sys\n"
        "from backfill_ctl.cli.main import main\n"
        "sys.argv = ['backfillctl', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
        "sys.stdout.flush()\n"
        "print(code, *sorted(sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, "apply", path, "--as", "ops", "--now", NOW, "--wait"],
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(REPO), "TERM": "dumb"},
        capture_output=True,
        text=True,
        check=True,
    )
    code, *loaded = done.stderr.splitlines()[-1].split()
    assert code in ("0", "None"), done.stderr
    assert "backfill_ctl.runtime.controller" in loaded  # it did run the backfill
    assert [m for m in loaded if m.split(".")[0] in NOT_IMPORTED or m in NOT_IMPORTED] == []


def test_diff_exits_1_with_changes_and_0_without(repo: Path) -> None:
    path = specs(repo, *CHAIN, backfill())
    before = run("diff", path, "--now", NOW)
    assert (before.exit_code, before.stdout.splitlines()[-1]) == (
        1,
        "Plan: 2 to create, 0 to update, 0 to cancel; 0 kept as they ran.",
    )
    assert not (repo / ".backfillctl").exists()  # diff writes nothing
    assert run("apply", path, "--now", NOW).exit_code == 0
    assert run("diff", path, "--now", NOW).exit_code == 0


def test_apply_dry_run_changes_nothing(repo: Path) -> None:
    path = specs(repo, *CHAIN, backfill())
    assert run("apply", path, "--now", NOW).exit_code == 0
    write_files(repo / "specs", {"more.yaml": dump(backfill("more"))})
    dry = run("apply", path, "--now", NOW, "--dry-run")
    assert dry.exit_code == 0
    assert "+ backfill/more: +2 ~0 -0" in dry.stdout.splitlines()
    assert open_store(repo / ".backfillctl" / "state.db").backfill("more") is None


def test_error_findings_refuse_the_apply(repo: Path) -> None:
    path = specs(repo, node("a", selfDependent=True), backfill(dates=TWO_DAYS, groups=2))
    result = run("apply", path, "--now", NOW)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "apply refused: 1 error finding(s) (a Backfill may accept its risks with "
        "checks.stopOnRisk: false)"
    )
    assert not (repo / ".backfillctl").exists()


def test_a_saved_plan_is_applied_exactly_and_a_stale_one_refused(repo: Path) -> None:
    path = specs(repo, *CHAIN, backfill())
    assert run("plan", path, "--now", NOW, "--as", "ops", "--out", "plan.json").exit_code == 0
    saved = json.loads((repo / "plan.json").read_text())
    applied = run("apply", path, "--plan", "plan.json", "--as", "ops")
    assert applied.exit_code == 0, applied.stderr
    ids = sorted(i.id for i in open_store(repo / ".backfillctl" / "state.db").instances())
    assert ids == sorted(i["id"] for i in saved["backfills"][0]["instances"])
    write_files(repo / "specs", {"more.yaml": dump(backfill("more"))})
    stale = run("apply", path, "--plan", "plan.json", "--as", "ops")
    assert stale.exit_code == 2
    assert stale.stderr.splitlines() == [
        "error: --plan plan.json is stale: the specs changed since it was saved",
        "  hint: plan again, review, and apply the new plan",
    ]


def test_apply_prune_cancels_a_removed_backfill(repo: Path) -> None:
    path = specs(repo, *CHAIN, backfill("old"), backfill("keep"))
    assert run("apply", path, "--now", NOW).exit_code == 0
    write_files(
        repo / "specs",
        {
            "catalog.yaml": dump(
                workspace(operators=("ops",)), resource_group("rg", 4), *CHAIN, backfill("keep")
            )
        },
    )
    kept = run("apply", path, "--now", NOW)
    assert (
        "! backfill/old: no longer in the specs; --prune cancels its 2 instance(s) that "
        "have not started" in kept.stdout.splitlines()
    )
    pruned = run("apply", path, "--now", NOW, "--prune")
    assert "- backfill/old: +0 ~0 -2" in pruned.stdout.splitlines()


def test_prune_records_each_cancellation_with_the_state_it_left_and_none_for_a_started_one(
    repo: Path,
) -> None:
    """An event is a transition that happened: the running instance is kept (and gets
    no cancel event); each cancelled one's event says the state it left."""
    path = specs(repo, *CHAIN, backfill(dates=TWO_DAYS))
    assert run("apply", path, "--as", "ops", "--now", NOW).exit_code == 0
    store = open_store(repo / ".backfillctl" / "state.db")
    ids = {f"{i.node}@{i.bizdate[-2:]}": i.id for i in store.instances()}
    store.transition([ids["a@01"]], "running", allowed=["pending"], at=0, actor="t", origin="t")
    assert run("freeze", ids["a@02"], "--as", "ops").exit_code == 0
    specs(repo, *CHAIN)

    pruned = run("apply", path, "--as", "ops", "--now", NOW, "--prune")

    assert pruned.exit_code == 0, pruned.stderr
    assert "- backfill/bf: +0 ~0 -3, 1 kept as they ran" in pruned.stdout.splitlines()
    trail = json.loads(run("events", "backfill/bf", "-o", "json").stdout)
    cancels = {
        (e["instance"], e["from"], e["actor"], e["message"])
        for e in trail
        if e["to"] == "cancelled"
    }
    gone = ("ops", "no longer in the specs")
    assert cancels == {
        (ids["b@01"], "pending", *gone),
        (ids["a@02"], "frozen", *gone),
        (ids["b@02"], "pending", *gone),
    }
    assert store.instances(ids=[ids["a@01"]])[0].state == "running"


@pytest.mark.parametrize("removal", ["delete", "prune"])
def test_applying_again_brings_cancelled_instances_back_as_a_transition(
    repo: Path, removal: str
) -> None:
    """Deleted (or pruned with its spec gone), then applied again: pending afresh, with
    no reason left from the cancellation, and `cancelled -> pending` by the apply's actor."""
    path = specs(repo, *CHAIN, backfill())
    assert run("apply", path, "--as", "ops", "--now", NOW).exit_code == 0
    if removal == "delete":
        assert run("delete", "backfill/bf", "--as", "ops").exit_code == 0
    else:
        specs(repo, *CHAIN)
        assert run("apply", path, "--as", "ops", "--now", NOW, "--prune").exit_code == 0
        specs(repo, *CHAIN, backfill())

    again = run("apply", path, "--as", "alice", "--now", NOW)

    assert again.exit_code == 0, again.stderr
    cancelled_by = "delete" if removal == "delete" else "transition"
    shown = json.loads(run("get", "instances", "-o", "json").stdout)["items"]
    assert [
        (i["status"]["state"], i["status"]["reason"], i["status"]["finishedAt"]) for i in shown
    ] == [("pending", None, None)] * 2
    for item in shown:
        ident = item["metadata"]["name"]
        trail = json.loads(run("events", f"instance/{ident}", "-o", "json").stdout)
        assert [(e["kind"], e["to"], e["actor"]) for e in trail[-2:]] == [
            (cancelled_by, "cancelled", "ops"),
            ("transition", "pending", "alice"),
        ]
        assert (trail[-1]["from"], trail[-1]["message"]) == ("cancelled", "brought back by apply")


def test_controller_once_runs_what_is_due_and_exits(repo: Path) -> None:
    path = specs(repo, *CHAIN, backfill())
    assert run("apply", path, "--now", NOW).exit_code == 0
    result = run("controller", path, "--once")
    assert result.exit_code == 0
    assert "drives" in result.stderr
    counts = open_store(repo / ".backfillctl" / "state.db").counts()
    assert counts == {("bf", "running"): 1, ("bf", "pending"): 1}  # a started, b waits


def test_controller_once_names_the_controller_that_holds_the_lease(repo: Path) -> None:
    """As a waiting controller says who it waits for: another process driving the store."""
    path = specs(repo, *CHAIN, backfill())
    assert run("apply", path, "--as", "ops", "--now", NOW).exit_code == 0
    log = repo / "holder.log"
    holder = controller(Path(path), repo / ".backfillctl" / "state.db", log)
    try:
        wait_until(lambda: "drives" in log.read_text(), 60, "the holder to drive", log.read_text)

        result = run("controller", path, "--once")

        assert result.exit_code == 1
        said = result.stderr.splitlines()[-1]
        pattern = (
            rf"another controller \(pid {holder.pid} on {re.escape(this_host())}\) holds the "
            r"lease for \d+ s more unless it renews it: nothing to do"
        )
        assert re.fullmatch(pattern, said), said
    finally:
        holder.terminate()
        holder.wait(30)


def test_apply_wait_says_which_instances_failed_and_why(repo: Path) -> None:
    """`backfill/bf: failed` alone sends the user hunting: each failed instance is named,
    with how it ended and where its log is."""
    failing = node("a", resourceGroup="rg", command="echo no input >&2; exit 3")
    then = node("b", upstream=["a"], resourceGroup="rg", command="true")
    path = specs(repo, failing, then, backfill(dates=["2024-03-01"]))

    result = run("apply", path, "--as", "ops", "--now", NOW, "--wait")

    assert result.exit_code == 1
    (failed,) = open_store(repo / ".backfillctl" / "state.db").instances(states=["failed"])
    assert result.stderr.splitlines()[-2:] == [
        "backfill/bf: failed",
        f"  instance/{failed.id} (a 2024-03-01): exit code 3; its log: backfillctl logs "
        f"{failed.id}",
    ]


def test_apply_wait_names_five_failures_and_says_how_to_list_the_rest(repo: Path) -> None:
    failing = node("a", resourceGroup="rg", command="exit 1")
    week = [{"from": "2024-03-01", "to": "2024-03-07"}]
    path = specs(repo, failing, backfill(dates=week, groups=7))

    result = run("apply", path, "--as", "ops", "--now", NOW, "--wait")

    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[-7] == "backfill/bf: failed"
    assert [line.split(": ", 1)[1].split(";")[0] for line in lines[-6:-1]] == ["exit code 1"] * 5
    assert lines[-1] == "  and 2 more: backfillctl get instances -b bf --state failed"


def test_two_applies_of_the_same_specs_at_once_both_succeed_and_store_each_instance_once(
    repo: Path,
) -> None:
    """A pipeline's apply and the controller's re-apply race (a year of dates: the race is
    wide): the one that writes second found its instances stored meanwhile and read the
    store again (it crashed with a unique-key error)."""
    path = specs(repo, node("a", resourceGroup="rg", command="true"), backfill(dates=YEAR))
    apply = [sys.executable, "-m", "backfill_ctl", "apply", path, "--as", "ops", "--now", NOW]
    for round in range(3):
        shutil.rmtree(repo / ".backfillctl", ignore_errors=True)
        procs = [
            subprocess.Popen(apply, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        said = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], (round, said)
        store = open_store(repo / ".backfillctl" / "state.db")
        assert len(store.instances()) == 366
        assert [e.kind for e in store.events()].count("created") == 366
        summaries = sorted(out.splitlines()[-1].split(":")[0] for out, _ in said)
        assert summaries in (["Apply complete", "No changes"], ["Apply complete"] * 2)


def test_apply_wait_gives_up_after_the_timeout(repo: Path) -> None:
    # The controller runs on the real clock: a date years ahead waits for its time.
    path = specs(repo, *CHAIN, backfill(dates=["2099-03-25"]))
    started = time.monotonic()

    result = run("apply", path, "--wait", "--timeout", "1s")

    assert result.exit_code == 1
    assert time.monotonic() - started < 15
    assert result.stderr.splitlines()[-2:] == [
        "timed out: stopped waiting; running attempts go on, and a controller (or apply "
        "--wait) takes them over",
        "backfill/bf: not finished",
    ]
    assert "waiting-for-time" in result.stderr


@pytest.mark.parametrize("plant", ["symlink", "foreign"])
def test_apply_wait_refuses_a_runs_directory_that_is_a_symlink_or_another_user_s(
    repo: Path, plant: str
) -> None:
    """Nothing is applied, nothing runs, nothing is written where the link points: the
    error names the directory and what to do (exit 2, as for any backend not ready)."""
    path = specs(repo, *CHAIN, backfill())
    elsewhere = repo / "elsewhere"
    elsewhere.mkdir()
    runs = repo / ".backfillctl" / "runs"
    runs.parent.mkdir()
    if plant == "symlink":
        runs.symlink_to(elsewhere)
        why = (
            f"{runs} is a symlink, not a directory: refusing to use it; remove it "
            "(backfillctl makes it again, private to this user)"
        )
    else:
        runs.mkdir()
        os.chown(runs, 65534, 65534)
        why = (
            f"{runs} belongs to uid 65534, not to this user: refusing to use it; move it "
            "away (backfillctl makes it again, private to this user)"
        )

    result = run("apply", path, "--as", "ops", "--now", NOW, "--wait")

    assert result.exit_code == 2
    assert result.stderr.splitlines()[:2] == [
        f"error: the local backend is not ready: write logs: {why}",
        "  hint: backfillctl backend check shows every check",
    ]
    assert list(runs.iterdir()) == []
    assert not (repo / "specs" / "done.txt").exists()
    assert run("get", "backfills", "-o", "name").stdout == ""  # nothing was applied


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--timeout", "5m"), "error: --timeout is only for --wait"),
        (("--wait", "--timeout", "soon"), "error: --timeout: 'soon' is not a duration like 90s"),
    ],
)
def test_a_timeout_without_wait_or_unreadable_is_refused(
    repo: Path, args: tuple[str, ...], message: str
) -> None:
    path = specs(repo, *CHAIN, backfill())
    result = run("apply", path, "--now", NOW, *args)
    assert result.exit_code == 2
    assert result.stderr.startswith(message)
    assert not (repo / ".backfillctl").exists()


def test_a_link_swapped_to_an_identical_checkout_changes_nothing(repo: Path) -> None:
    """git-sync points a link at a new checkout on every commit: same specs, no changes."""
    first = Path(specs(repo / "one", *CHAIN, backfill())).parent
    second = repo / "two"
    shutil.copytree(first, second)
    link = repo / "repo"
    link.symlink_to(first)
    assert run("apply", str(link / "specs"), "--now", NOW).exit_code == 0
    link.unlink()
    link.symlink_to(second)

    again = run("diff", str(link / "specs"), "--now", NOW)

    assert (again.exit_code, again.stdout.splitlines()[-1]) == (
        0,
        "No changes: the state store matches the specs.",
    )


# -- issue 8, item 8: a catalog edit does not re-run finished work -------------------

EDITABLE = (
    node("a", "30 2 * * *", resourceGroup="rg", command=WRITE),
    node("b", upstream=["a"], resourceGroup="rg", command=WRITE),
)
FOUR_DAYS = [{"from": "2024-03-01", "to": "2024-03-04"}]


def test_moving_a_cron_time_does_not_run_a_succeeded_backfill_again(repo: Path) -> None:
    path = specs(repo, *EDITABLE, backfill(dates=FOUR_DAYS))
    first = run("apply", path, "--as", "ops", "--now", NOW, "--wait")
    assert first.exit_code == 0, first.stderr
    done = repo / "specs" / "done.txt"
    ran = done.read_text()
    assert len(ran.splitlines()) == 8
    moved = node("a", "45 2 * * *", resourceGroup="rg", command=WRITE)

    specs(repo, moved, EDITABLE[1], backfill(dates=FOUR_DAYS))
    diff = run("diff", path, "--as", "ops", "--now", NOW)
    again = run("apply", path, "--as", "ops", "--now", NOW, "--wait")

    assert again.exit_code == 0, again.stderr
    assert run("controller", path, "--once").exit_code == 0  # starts what is due: nothing
    time.sleep(0.5)
    assert done.read_text() == ran  # nothing ran again
    store = open_store(repo / ".backfillctl" / "state.db")
    planned = json.loads(run("plan", path, "--as", "ops", "--now", NOW, "-o", "json").stdout)
    assert len(store.instances()) == planned["backfills"][0]["summary"]["instances"] == 8
    assert {i.state for i in store.instances()} == {"succeeded"}
    said = (
        "  backfill/bf: finished (succeeded), left as it ran: 4 of a ran at 02:30 (planned now "
        "at 02:45); rerun its instances, or edit the Backfill, to run it again"
    )
    assert (diff.exit_code, diff.stdout.splitlines()) == (
        0,
        [said, "No changes: finished backfills are left as they ran."],
    )
    assert again.stdout.splitlines()[0] == said


def test_diff_says_a_moved_cron_time_moves_the_instances_of_an_active_backfill(
    repo: Path,
) -> None:
    path = specs(repo, *EDITABLE, backfill(dates=FOUR_DAYS))
    assert run("apply", path, "--as", "ops", "--now", NOW).exit_code == 0
    ids = sorted(i.id for i in open_store(repo / ".backfillctl" / "state.db").instances())
    moved = node("a", "45 2 * * *", resourceGroup="rg", command=WRITE)
    specs(repo, moved, EDITABLE[1], backfill(dates=FOUR_DAYS))

    diff = run("diff", path, "--as", "ops", "--now", NOW)
    applied = run("apply", path, "--as", "ops", "--now", NOW)

    lines = diff.stdout.splitlines()
    assert (diff.exit_code, lines[0], lines[-1], len(lines)) == (
        1,
        "~ backfill/bf: +0 ~4 -0, 4 of a move 02:30->02:45",
        "Plan: 0 to create, 4 to update, 0 to cancel; 0 kept as they ran.",
        6,
    )
    assert lines[1].endswith(
        ' (a, 2024-03-01): cyctime: "2024-03-02T02:30:00+00:00" -> "2024-03-02T02:45:00+00:00"; '
        'run.env.BACKFILL_CYCTIME: "20240302023000" -> "20240302024500"'
    )
    assert applied.stdout.splitlines()[0] == "~ backfill/bf: +0 ~4 -0, 4 of a move 02:30->02:45"
    store = open_store(repo / ".backfillctl" / "state.db")
    assert sorted(i.id for i in store.instances()) == ids
    assert {i.cyctime[11:16] for i in store.instances(node="a")} == {"02:45"}
    assert run("diff", path, "--as", "ops", "--now", NOW).exit_code == 0


def test_gmtdate_is_the_run_date_on_the_clock_now_gives(repo: Path) -> None:
    # `--now T`: execution runs on a clock that starts at T (DESIGN §7), so `$gmtdate`,
    # "today at run time", is T's date in the node's timezone, not the machine's date.
    path = specs(
        repo,
        node("a", resourceGroup="rg", command=["sh", "-c", 'echo "$0" >> gmt.txt', "$gmtdate"]),
        node("b", resourceGroup="rg", command="echo $gmtdate >> gmt.txt"),
    )
    write_files(
        repo / "specs",
        {"bf.yaml": dump(backfill(select={"method": "manual", "roots": ["a", "b"]}))},
    )

    result = run("apply", path, "--now", "2024-03-20T23:30:00-02:00", "--wait")

    assert result.exit_code == 0, result.stderr
    # 2024-03-21 01:30 UTC: the nodes' workspace is UTC
    assert (repo / "specs" / "gmt.txt").read_text().split() == ["20240321", "20240321"]


def test_ctrl_c_after_the_commit_says_what_was_applied(repo: Path) -> None:
    """SIGINT (as Ctrl-C sends it) while apply prints what it applied to a slow reader (a
    real process, its stdout a pipe of one page nobody reads yet): exit 130, and stderr
    says that the specs were applied, what, and how to follow them, not only
    "interrupted"."""
    from datetime import date, timedelta

    first = date(2023, 1, 1)
    many = [
        backfill(
            f"bf-{n:03d}", dates=[str(first + timedelta(days=n))], checks={"stopOnRisk": False}
        )
        for n in range(300)
    ]
    path = specs(repo, *CHAIN, *many)
    db = repo / "state.db"
    read, write = os.pipe()
    fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, 4096)
    proc = subprocess.Popen(
        [sys.executable, "-m", "backfill_ctl", "apply", path, "--as", "ops", "--state", str(db)],
        stdout=write,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        preexec_fn=interruptible,
    )
    os.close(write)
    try:
        wait_until(lambda: _stored(db) == 300, 60, "the commit")
        wchan = Path(f"/proc/{proc.pid}/wchan")  # (anon_pipe_write, or pipe_write)
        wait_until(lambda: "pipe_write" in wchan.read_text(), 30, "a write to the full pipe")
        proc.send_signal(signal.SIGINT)
        with os.fdopen(read, "rb") as stdout:
            printed = stdout.read()
        stderr = proc.communicate(timeout=60)[1].decode()
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted after apply committed" in stderr, stderr
    assert b"+ backfill/bf-000" in printed
    assert stderr.splitlines()[-2:] == [
        "interrupted after apply committed: Apply complete: 600 created, 0 updated, "
        "0 cancelled; 0 kept as they ran.",
        "  hint: the specs were applied (plan digest "
        + stderr.split("plan digest ")[1][:19]
        + "): the backfills go on whenever a controller runs (backfillctl controller, or "
        "apply --wait again, which applies nothing more); backfillctl wait "
        + " ".join(f"backfill/bf-{n:03d}" for n in range(300))
        + " --for=condition=Succeeded follows them",
    ]


def _stored(db: Path) -> int:
    """How many backfills the store at `db` holds (0 while it is not there)."""
    if not db.exists():
        return 0
    store = open_store(db, create=False)
    try:
        return len(store.backfills())
    finally:
        store.close()
