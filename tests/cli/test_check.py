"""`backfillctl check`: findings, exit codes and the four outputs; `--base` on real git repos."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from backfill_ctl.reports.markdown import MARKER
from tests.builders import backfill, dump, node, workspace
from tests.cli.helpers import CATALOG, NOW, GitRepo, isolate_git, line_of, run, write_files

APPLY_HINT = (
    "applying it creates the new instances, updates and cancels planned ones that have not "
    "started, and keeps those that started"
)
PRUNE_HINT = "apply --prune cancels its instances that have not started"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # file names in messages are the paths as given


def check(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    """`backfillctl check ARGS`; never with the step summary of a CI run of these tests."""
    return run("check", *args, stdin=stdin, env={"GITHUB_STEP_SUMMARY": "", **(env or {})})


def exact_line(text: str, line: str) -> int:
    """1-based number of the line of `text` that is exactly `line`."""
    return text.splitlines().index(line) + 1


# -- findings in text, and the exit code ---------------------------------------------

ONE_BACKFILL: dict[str, str | bytes] = {"catalog.yaml": CATALOG, "b.yaml": dump(backfill())}


def test_clean_specs_exit_0_with_the_table_and_a_summary() -> None:
    write_files(Path(), ONE_BACKFILL)

    result = check(".", "--now", NOW, "--as", "ops")

    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        "BACKFILL  FILE      NODES  DATES  GROUPS  INSTANCES  DRY-RUN  WAITING",
        "bf        b.yaml:1  3      1      1       3          0        0",
        "check: no findings; 3 instances in 1 backfill",
    ]


# b blocked (an intermediate: dry-run, a warning); 20 March is today at NOW (a notice).
WARNINGS_ONLY = dump(
    backfill(
        "fix",
        select={"method": "descendants", "roots": ["a"], "block": ["b"]},
        dates=["2024-03-01", "2024-03-20"],
    )
)


def test_warnings_and_notices_are_listed_with_their_code_and_exit_0() -> None:
    write_files(Path(), {"catalog.yaml": CATALOG, "fix.yaml": WARNINGS_ONLY})

    result = check(".", "--now", NOW, "--as", "ops")

    assert (result.exit_code, result.stderr) == (0, "")
    block = exact_line(WARNINGS_ONLY, "    - b")
    dates = exact_line(WARNINGS_ONLY, "  dates:")
    assert result.stdout.splitlines() == [
        "BACKFILL  FILE        NODES  DATES  GROUPS  INSTANCES  DRY-RUN  WAITING",
        "fix       fix.yaml:1  3      2      1       6          2        3",
        "",
        f"fix.yaml:{block}:7: warning [dry-run-intermediate]: $.spec.select.block[0]: blocked "
        "node 'b' is an intermediate node: it is dry-run, and its descendants may read "
        "missing data",
        "  hint: unblock it, or also leave out its descendants",
        f"fix.yaml:{dates}:3: notice [waiting-for-time]: $.spec.dates: 3 instance(s) are "
        "scheduled after now (2024-03-20T01:00+00:00) and wait for their time; the first at "
        "2024-03-21 02:00 +0000 (a, business date 2024-03-20)",
        "  hint: set runImmediately: true to run them now",
        "check: 1 warning, 1 notice; 6 instances in 1 backfill",
    ]


# The nodes run at 02:00: a window that ends at 01:00 leaves them no instance (issue 8, item 9).
NO_INSTANCE = dump(backfill("early", timeWindow={"from": "00:00", "to": "01:00"}))


def test_a_backfill_that_plans_no_instance_fails_check_and_apply() -> None:
    write_files(Path(), {"catalog.yaml": CATALOG, "early.yaml": NO_INSTANCE})
    window = exact_line(NO_INSTANCE, "  timeWindow:")

    result = check(".", "--now", NOW, "--as", "ops")
    applied = run("apply", ".", "--now", NOW, "--as", "ops")

    assert result.exit_code == 1
    assert result.stdout.splitlines()[-3:] == [
        f"early.yaml:{window}:3: error [target-without-instances]: $.spec.timeWindow: the "
        "Backfill plans no instance at all: 2 target node(s) have no instance, their scheduled "
        "times are outside timeWindow 00:00-01:00: a (02:00), c (02:00)",
        "  hint: widen timeWindow to include 02:00, or select other targets",
        "check: 1 error; 0 instances in 1 backfill",
    ]
    assert applied.exit_code == 1
    assert applied.stderr.splitlines()[-1].startswith("apply refused: 1 error finding(s)")
    assert not Path(".backfillctl").exists()


# b <-> c: a loop through b's second upstream entry.
LOOP = dump(
    workspace("ws", operators=("ops",)),
    node("a"),
    node("b", upstream=["a", "c"]),
    node("c", upstream=["b"]),
)


def test_a_dependency_loop_fails_at_the_upstream_entry() -> None:
    write_files(Path(), {"catalog.yaml": LOOP, "b.yaml": dump(backfill())})
    entry = exact_line(LOOP, "  - c")  # b's upstream entry (c's command lists `    - c`)

    text = check(".", "--now", NOW, "--as", "ops")
    github = check(".", "--now", NOW, "--as", "ops", "-o", "github")

    assert text.exit_code == github.exit_code == 1
    assert text.stdout.splitlines() == [  # nothing was planned: no table, no blank line
        f"catalog.yaml:{entry}:5: error [dependency-loop]: $.spec.upstream[1]: dependency "
        "loop: b -> c -> b",
        "  hint: remove one of these upstream entries to break the loop",
        "check: 1 error; 0 instances in 0 backfills (1 not planned)",
    ]
    assert github.stdout.splitlines() == [
        f"::error file=catalog.yaml,line={entry},col=5,title=backfillctl dependency-loop::"
        "dependency loop: b -> c -> b%0Ahint: remove one of these upstream entries to break "
        "the loop"
    ]


def test_no_permission_on_a_target_fails_at_the_select_errors_first() -> None:
    write_files(Path(), ONE_BACKFILL)
    select = line_of(dump(backfill()), "select:")

    result = check(".", "--now", NOW, "--as", "bob", "-o", "github")

    assert result.exit_code == 1
    target_hint = (
        "%0Ahint: ask one of them to own the backfill, or add 'bob' to the node's owners or "
        "its workspace's operators"
    )
    where = f"file=b.yaml,line={select},col=3"
    assert result.stdout.splitlines() == [
        f"::error {where},title=backfillctl no-permission-target::'bob' may not operate target "
        f"node 'a' (allowed: alice, ops); the backfill cannot run{target_hint}",
        f"::error {where},title=backfillctl no-permission-target::'bob' may not operate target "
        f"node 'c' (allowed: alice, ops); the backfill cannot run{target_hint}",
        f"::warning {where},title=backfillctl no-permission-intermediate::'bob' may not operate "
        "intermediate node 'b' (allowed: alice, ops): it is dry-run, and its descendants may "
        "read missing data%0Ahint: ask one of them to run this backfill, or to add 'bob' as an "
        "owner",
    ]


RISKY = dump(workspace("ws", operators=("ops",)), node("a", selfDependent=True))


@pytest.mark.parametrize(
    ("checks", "code", "severity", "suffix"),
    [
        (
            {"checks": {"stopOnRisk": False}},
            0,
            "warning",
            " (accepted: checks.stopOnRisk is false)",
        ),
        ({"checks": {"stopOnRisk": True}}, 1, "error", ""),
        ({}, 1, "error", ""),  # stopOnRisk is true by default
    ],
    ids=["accepted", "stop", "default"],
)
def test_a_risk_the_backfill_accepts_is_a_warning_and_exit_0(
    checks: dict[str, Any], code: int, severity: str, suffix: str
) -> None:
    spec = dump(backfill(dates=["2024-03-01", "2024-03-02"], groups=2, **checks))
    write_files(Path(), {"catalog.yaml": RISKY, "b.yaml": spec})

    result = check(".", "--now", NOW, "--as", "ops")

    assert result.exit_code == code
    lines = result.stdout.splitlines()
    assert lines[3:6] == [
        f"b.yaml:{line_of(spec, 'groups:')}:3: {severity} [self-dependent-parallel]: "
        "$.spec.groups: self-dependent node(s) a would run their 2 dates in 2 parallel groups: "
        f"a date may start before the previous date of the same node finished{suffix}",
        "  hint: set groups: 1, or backfill the self-dependent nodes in a Backfill of their own "
        "with groups: 1",
        f"check: 1 {severity}; 2 instances in 1 backfill",
    ]


# -- unusable input: exit 2 ----------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "args", "stderr"),
    [
        (
            ONE_BACKFILL,
            ("missing.yaml",),
            ["error: missing.yaml: no such file or directory"],
        ),
        (
            {**ONE_BACKFILL, "latin1.yaml": "name: caf\xe9\n".encode("latin-1")},
            (".",),
            ["error: latin1.yaml:1:10: not UTF-8 text (invalid continuation byte)"],
        ),
        (
            {"notes.txt": "no specs here\n"},
            (".",),
            ["error: .: no .yaml or .yml files in this directory"],
        ),
        (
            ONE_BACKFILL,
            (".", "--now", "yesterday"),
            ["error: --now: 'yesterday' is not an ISO 8601 time"],
        ),
    ],
    ids=["missing-path", "not-utf8", "no-specs", "bad-now"],
)
def test_unusable_input_exits_2_with_a_message_and_no_output(
    files: dict[str, str | bytes], args: tuple[str, ...], stderr: list[str]
) -> None:
    write_files(Path(), files)

    result = check(*args, "--as", "ops")

    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.splitlines()[: len(stderr)] == stderr
    assert result.stderr.splitlines()[len(stderr)].startswith("  hint: ")


def test_an_unreadable_file_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    write_files(Path(), ONE_BACKFILL)

    def refuse(self: Path, *args: object, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", refuse)  # chmod 000 does not stop root

    result = check("b.yaml", "--now", NOW)

    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        "error: b.yaml: cannot read: Permission denied",
        "  hint: check the file's permissions",
    ]


def test_an_unknown_output_format_is_a_usage_error() -> None:
    write_files(Path(), ONE_BACKFILL)

    result = check(".", "-o", "html")

    assert (result.exit_code, result.stdout) == (2, "")
    assert "'html' is not one of 'text', 'json', 'markdown', 'github'." in result.stderr


# -- the actor ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "note"),
    [
        ((), {}, True),
        (("--as", "ops"), {}, False),
        ((), {"GITHUB_ACTOR": "ops"}, False),
    ],
)
def test_without_an_actor_permissions_are_not_checked_and_check_says_so(
    args: tuple[str, ...], env: dict[str, str], note: bool
) -> None:
    write_files(Path(), ONE_BACKFILL)

    result = check(".", "--now", NOW, "-o", "json", *args, env=env)

    assert result.exit_code == 0
    expected = [
        "note: no actor given (--as, $BACKFILLCTL_ACTOR, $GITHUB_ACTOR): permissions were "
        "not checked"
    ]
    assert result.stderr.splitlines() == (expected if note else [])
    assert json.loads(result.stdout)["actor"] == (None if note else "ops")


# -- -o json ---------------------------------------------------------------------------


def test_json_reports_counts_backfills_and_located_findings() -> None:
    write_files(Path(), {"catalog.yaml": CATALOG, "fix.yaml": WARNINGS_ONLY})

    result = check(".", "--now", NOW, "--as", "ops", "-o", "json")

    assert (result.exit_code, result.stderr) == (0, "")
    data = json.loads(result.stdout)
    assert list(data) == [
        "ok",
        "errors",
        "warnings",
        "notices",
        "digest",
        "now",
        "actor",
        "base",
        "backfills",
        "changes",
        "findings",
    ]
    assert (data["ok"], data["errors"], data["warnings"], data["notices"]) == (True, 0, 1, 1)
    assert data["digest"].startswith("sha256:")
    assert (data["now"], data["actor"], data["base"], data["changes"]) == (
        "2024-03-20T01:00:00+00:00",
        "ops",
        None,
        [],
    )
    assert data["backfills"] == [
        {
            "name": "fix",
            "file": "fix.yaml",
            "line": 1,
            "summary": {
                "instances": 6,
                "dryRun": 2,
                "nodes": 3,
                "dates": 2,
                "groups": 1,
                "waitingForTime": 3,
            },
            "change": None,
        }
    ]
    dry_run, waiting = data["findings"]
    assert dry_run == {
        "severity": "warning",
        "code": "dry-run-intermediate",
        "file": "fix.yaml",
        "line": exact_line(WARNINGS_ONLY, "    - b"),
        "column": 7,
        "path": "$.spec.select.block[0]",
        "message": "blocked node 'b' is an intermediate node: it is dry-run, and its "
        "descendants may read missing data",
        "hint": "unblock it, or also leave out its descendants",
        "backfill": "fix",
        "nodes": ["b"],
        "instances": [],
    }
    assert (waiting["code"], waiting["backfill"], waiting["nodes"]) == (
        "waiting-for-time",
        "fix",
        ["a", "b", "c"],
    )
    plan = json.loads(run("plan", ".", "--now", NOW, "--as", "ops", "-o", "json").stdout)
    today = [i["id"] for i in plan["backfills"][0]["instances"] if i["bizdate"] == "2024-03-20"]
    assert waiting["instances"] == today
    assert data["digest"] == plan["digest"]


def test_json_says_not_ok_on_an_error() -> None:
    write_files(Path(), ONE_BACKFILL)

    result = check(".", "--now", NOW, "--as", "bob", "-o", "json")

    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert (data["ok"], data["errors"], data["warnings"], data["backfills"]) == (False, 2, 1, [])
    assert [(f["code"], f["nodes"]) for f in data["findings"]] == [
        ("no-permission-target", ["a"]),
        ("no-permission-intermediate", ["b"]),
        ("no-permission-target", ["c"]),
    ]


# -- -o markdown and -o github -----------------------------------------------------------


@pytest.mark.parametrize(("actor", "code", "icon"), [("ops", 0, "⚠️"), ("bob", 1, "❌")])
def test_markdown_is_the_comment_whatever_the_exit_code(actor: str, code: int, icon: str) -> None:
    write_files(Path(), {"catalog.yaml": CATALOG, "fix.yaml": WARNINGS_ONLY})

    result = check(".", "--now", NOW, "--as", actor, "-o", "markdown")

    assert (result.exit_code, result.stderr) == (code, "")
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{icon} **backfillctl check: ")
    assert lines[-1] == MARKER
    assert result.stdout.endswith(f"{MARKER}\n")


def test_github_appends_the_comment_to_the_step_summary(tmp_path: Path) -> None:
    write_files(Path(), {"catalog.yaml": CATALOG, "fix.yaml": WARNINGS_ONLY})
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    env = {"GITHUB_STEP_SUMMARY": str(summary)}
    markdown = check(".", "--now", NOW, "--as", "ops", "-o", "markdown").stdout

    first = check(".", "--now", NOW, "--as", "ops", "-o", "github", env=env)
    second = check(".", "--now", NOW, "--as", "ops", "-o", "github", env=env)

    assert first.exit_code == second.exit_code == 0
    assert first.stdout == second.stdout
    assert [line.split(" ")[0] for line in first.stdout.splitlines()] == ["::warning", "::notice"]
    assert summary.read_text(encoding="utf-8") == "earlier step\n" + markdown + markdown


def test_github_without_a_step_summary_writes_no_file(tmp_path: Path) -> None:
    write_files(Path(), ONE_BACKFILL)
    before = sorted(tmp_path.iterdir())

    result = check(".", "--now", NOW, "--as", "ops", "-o", "github")

    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    assert sorted(tmp_path.iterdir()) == before


@pytest.mark.parametrize(
    ("target", "reason"),
    [("missing/summary.md", "No such file or directory"), (".", "Is a directory")],
)
def test_an_unwritable_step_summary_exits_2(tmp_path: Path, target: str, reason: str) -> None:
    write_files(Path(), ONE_BACKFILL)
    path = tmp_path / target

    result = check(
        ".", "--now", NOW, "--as", "ops", "-o", "github", env={"GITHUB_STEP_SUMMARY": str(path)}
    )

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: $GITHUB_STEP_SUMMARY {path}: cannot write: {reason}"
    ]


# -- --base: what merging changes, on real git repositories -------------------------------


def keep(**spec: Any) -> str:
    return dump(backfill("keep", dates=[{"from": "2024-02-01", "to": "2024-02-03"}], **spec))


# On main: keep (a, b, c on 1-3 Feb: 9), edit (b, c on 1-3 March: 6), old (c on 15 March: 1).
BASE_FILES: dict[str, str | bytes] = {
    "specs/catalog.yaml": CATALOG,
    "specs/keep.yaml": keep(),
    "specs/edit.yaml": dump(
        backfill(
            "edit",
            select={"method": "descendants", "roots": ["b"]},
            dates=[{"from": "2024-03-01", "to": "2024-03-03"}],
        )
    ),
    "specs/old.yaml": dump(
        backfill("old", select={"method": "descendants", "roots": ["c"]}, dates=["2024-03-15"])
    ),
}
# The change: edit moves to 2-5 March (+4 for 4-5 March, -2 for 1 March), new is added
# (c on 10 March: +1), old is removed (-1), keep stays.
CHANGE: dict[str, str | bytes] = {
    "specs/edit.yaml": dump(
        backfill(
            "edit",
            select={"method": "descendants", "roots": ["b"]},
            dates=[{"from": "2024-03-02", "to": "2024-03-05"}],
        )
    ),
    "specs/new.yaml": dump(
        backfill("new", select={"method": "descendants", "roots": ["c"]}, dates=["2024-03-10"])
    ),
}


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GitRepo:
    """A specs repository with BASE_FILES committed on main; the current directory."""
    isolate_git(monkeypatch, tmp_path)
    repo = GitRepo(tmp_path / "repo")
    repo.write(BASE_FILES)
    repo.commit("base")
    monkeypatch.chdir(repo.root)
    return repo


def branch_with_the_change(repo: GitRepo) -> None:
    repo.git("switch", "--quiet", "--create", "feature")
    repo.write(CHANGE)
    repo.remove("specs/old.yaml")
    repo.commit("the change")


def test_base_reports_added_changed_removed_and_unchanged_backfills(repo: GitRepo) -> None:
    branch_with_the_change(repo)

    result = check("specs", "--now", NOW, "--as", "ops", "--base", "main")

    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        "BACKFILL  FILE               NODES  DATES  GROUPS  INSTANCES  DRY-RUN  WAITING  CHANGE",
        "edit      specs/edit.yaml:1  2      4      1       8          0        0        "
        "changed +4 / -2 / ~4",
        "keep      specs/keep.yaml:1  3      3      1       9          0        0        unchanged",
        "new       specs/new.yaml:1   1      1      1       1          0        0        "
        "added +1 / -0",
        "",
        "specs/edit.yaml:1:1: warning [backfill-changed]: edits Backfill edit, which exists on "
        "main: +4 / -2 / ~4 instances",
        f"  hint: {APPLY_HINT}",
        "specs/new.yaml:1:1: notice [backfill-added]: adds Backfill new: +1 / -0 instances",
        # the file is gone at HEAD: the finding is located in the base's file
        "specs/old.yaml:1:1: notice [backfill-removed]: removes Backfill old (1 planned instance)",
        f"  hint: {PRUNE_HINT}",
        "check: 1 warning, 2 notices; 18 instances in 3 backfills; against main: 1 added, "
        "1 changed, 1 removed; instances +5 / -3 / ~4",
    ]


def test_base_in_json_github_and_markdown(repo: GitRepo) -> None:
    branch_with_the_change(repo)
    args = ("specs", "--now", NOW, "--as", "ops", "--base", "main")

    data = json.loads(check(*args, "-o", "json").stdout)
    github = check(*args, "-o", "github").stdout.splitlines()
    markdown = check(*args, "-o", "markdown").stdout.splitlines()

    assert data["base"] == "main"
    assert data["changes"] == [
        {"name": "edit", "status": "changed", "added": 4, "removed": 2, "updated": 4, "moves": []},
        {
            "name": "keep",
            "status": "unchanged",
            "added": 0,
            "removed": 0,
            "updated": 0,
            "moves": [],
        },
        {"name": "new", "status": "added", "added": 1, "removed": 0, "updated": 0, "moves": []},
        {"name": "old", "status": "removed", "added": 0, "removed": 1, "updated": 0, "moves": []},
    ]
    assert [(b["name"], b["change"]) for b in data["backfills"]] == [
        (c["name"], {k: v for k, v in c.items() if k != "name"}) for c in data["changes"][:3]
    ]
    assert [(f["code"], f["severity"], f["backfill"]) for f in data["findings"]] == [
        ("backfill-changed", "warning", "edit"),
        ("backfill-added", "notice", "new"),
        ("backfill-removed", "notice", "old"),
    ]
    assert github == [
        "::warning file=specs/edit.yaml,line=1,col=1,title=backfillctl backfill-changed::edits "
        f"Backfill edit, which exists on main: +4 / -2 / ~4 instances%0Ahint: {APPLY_HINT}",
        "::notice file=specs/new.yaml,line=1,col=1,title=backfillctl backfill-added::adds "
        "Backfill new: +1 / -0 instances",
        "::notice file=specs/old.yaml,line=1,col=1,title=backfillctl backfill-removed::removes "
        f"Backfill old (1 planned instance)%0Ahint: {PRUNE_HINT}",
    ]
    assert markdown[2] == (
        "Merging into `main`: 1 added, 1 changed, 1 removed; instances +5 / -3 / ~4."
    )
    assert "| `new` (specs/new.yaml:1) | added +1 / -0 | 1 | 1 | 1 | 1 | 0 | 0 |" in markdown


def test_base_compares_with_the_working_tree(repo: GitRepo) -> None:
    # 2-4 Feb instead of 1-3 Feb, not committed: +3 (4 Feb) / -3 (1 Feb), and 2-3 Feb
    # are the first and second dates now: ~6.
    repo.write(
        {
            "specs/keep.yaml": dump(
                backfill("keep", dates=[{"from": "2024-02-02", "to": "2024-02-04"}])
            )
        }
    )

    result = check("specs", "--now", NOW, "--as", "ops", "--base", "HEAD", "-o", "json")

    assert result.exit_code == 0
    [finding] = json.loads(result.stdout)["findings"]
    assert (finding["code"], finding["severity"], finding["message"]) == (
        "backfill-changed",
        "warning",
        "edits Backfill keep, which exists on HEAD: +3 / -3 / ~6 instances",
    )


def test_a_catalog_change_alone_replans_a_backfill(repo: GitRepo) -> None:
    # A new node below c joins every Backfill whose scope holds c: keep (3 dates), edit
    # (3 dates) and old (1 date).
    repo.write({"specs/catalog.yaml": CATALOG + "---\n" + dump(node("d", upstream=["c"]))})
    repo.commit("d")

    result = check("specs", "--now", NOW, "--as", "ops", "--base", "main~1")

    assert result.exit_code == 0
    findings = [line for line in result.stdout.splitlines() if "[backfill-changed]" in line]
    assert findings == [
        f"specs/{name}.yaml:1:1: warning [backfill-changed]: the catalog change re-plans "
        f"Backfill {name}: +{added} / -0 instances"
        for name, added in (("edit", 3), ("keep", 3), ("old", 1))
    ]
    rows = result.stdout.splitlines()[1:4]
    assert rows[1].startswith("keep      specs/keep.yaml:1  4      3")  # d is in scope
    assert [row.rsplit("  ", 1)[1] for row in rows] == [
        "replanned +3 / -0",
        "replanned +3 / -0",
        "replanned +1 / -0",
    ]


def test_a_moved_cron_time_is_reported_per_backfill_as_moves(repo: GitRepo) -> None:
    # c runs at 02:45 instead of 02:00: the same instances, at another time.
    moved = dump(
        workspace("ws", operators=("ops",)),
        node("a"),
        node("b", upstream=["a"]),
        node("c", "45 2 * * *", upstream=["b"]),
    )
    repo.write({"specs/catalog.yaml": moved})

    result = check("specs", "--now", NOW, "--as", "ops", "--base", "HEAD")

    assert result.exit_code == 0
    findings = [line for line in result.stdout.splitlines() if "[backfill-changed]" in line]
    assert findings == [
        f"specs/{name}.yaml:1:1: warning [backfill-changed]: the catalog change re-plans "
        f"Backfill {name}: +0 / -0 / ~{n} instances, {n} of c move 02:00->02:45"
        for name, n in (("edit", 3), ("keep", 3), ("old", 1))
    ]
    assert (
        "  hint: applying it updates the instances that have not started, keeps those that "
        "started, and leaves a backfill that has finished as it ran (rerun its instances, or "
        "edit the Backfill, to run it again)"
    ) in result.stdout.splitlines()


def test_an_unchanged_repository_has_no_finding(repo: GitRepo) -> None:
    result = check("specs", "--now", NOW, "--as", "ops", "--base", "main")

    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.splitlines()[-1] == (
        "check: no findings; 16 instances in 3 backfills; against main: no Backfill changes; "
        "instances +0 / -0"
    )
    assert all(line.endswith("unchanged") for line in result.stdout.splitlines()[1:4])


def test_from_a_subdirectory_names_are_relative_to_it(
    repo: GitRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    branch_with_the_change(repo)
    monkeypatch.chdir(repo.root / "specs")

    result = check(".", "--now", NOW, "--as", "ops", "--base", "main")

    assert result.exit_code == 0
    assert "old.yaml:1:1: notice [backfill-removed]: removes Backfill old (1 planned " in (
        result.stdout
    )
    assert "edit.yaml:1:1: warning [backfill-changed]: " in result.stdout


def test_every_backfill_of_a_directory_new_since_the_base_is_added(repo: GitRepo) -> None:
    repo.write(
        {
            "team/one.yaml": dump(backfill("one", dates=["2024-01-01"])),
            "team/more/two.yaml": dump(backfill("two", dates=["2024-01-02"])),
        }
    )

    result = check("specs", "team", "--now", NOW, "--as", "ops", "--base", "main", "-o", "json")

    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert [(c["name"], c["status"], c["added"]) for c in data["changes"] if c["added"]] == [
        ("one", "added", 3),
        ("two", "added", 3),
    ]
    assert [(f["file"], f["message"]) for f in data["findings"]] == [
        ("team/more/two.yaml", "adds Backfill two: +3 / -0 instances"),
        ("team/one.yaml", "adds Backfill one: +3 / -0 instances"),
    ]


def test_hidden_directories_and_other_files_at_the_base_are_ignored(repo: GitRepo) -> None:
    # Backfills the base would hold if they were read; all gone at HEAD.
    repo.write(
        {
            "specs/.drafts/draft.yaml": dump(backfill("draft")),
            "specs/keep.yaml.bak": dump(backfill("bak")),
            "specs/README.md": "# specs\n",
        }
    )
    repo.commit("not specs")
    repo.remove("specs/.drafts/draft.yaml", "specs/keep.yaml.bak")

    result = check("specs", "--now", NOW, "--as", "ops", "--base", "main", "-o", "json")

    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert [c["name"] for c in data["changes"]] == ["edit", "keep", "old"]
    assert data["findings"] == []


@pytest.mark.parametrize(
    ("args", "stderr"),
    [
        (
            ("specs", "--base", "nope"),
            [
                "error: --base nope: no such commit, branch or tag",
                "  hint: fetch it first (git fetch origin <branch>); in GitHub Actions check out "
                "with fetch-depth: 0",
            ],
        ),
        (
            ("specs", "-", "--base", "main"),
            [
                "error: --base cannot compare specs read from stdin",
                "  hint: pass the spec files or directories instead of -",
            ],
        ),
        (
            ("specs", "../outside", "--base", "main"),
            [
                "error: --base main: ../outside is outside the repository {root}",
                "  hint: run check from inside the repository that holds the specs",
            ],
        ),
    ],
    ids=["missing-ref", "stdin", "outside-the-repository"],
)
def test_a_base_that_cannot_be_read_exits_2(
    repo: GitRepo, tmp_path: Path, args: tuple[str, ...], stderr: list[str]
) -> None:
    write_files(tmp_path, {"outside/b.yaml": dump(backfill("elsewhere"))})

    result = check(*args, "--now", NOW, "--as", "ops", stdin=dump(backfill("piped")))

    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [line.format(root=repo.root) for line in stderr]


def test_base_outside_any_git_repository_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_git(monkeypatch, tmp_path)  # tmp_path's parents are not searched
    write_files(tmp_path, ONE_BACKFILL)

    result = check(".", "--now", NOW, "--as", "ops", "--base", "main")

    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        f"error: --base main: {tmp_path} is not inside a git repository",
        "  hint: run check in a clone of the specs repository, or drop --base (git: fatal: "
        "not a git repository (or any of the parent directories): .git)",
    ]


def test_a_file_that_is_not_utf8_at_the_base_exits_2(repo: GitRepo) -> None:
    repo.write({"specs/notes.yaml": "name: caf\xe9\n".encode("latin-1")})
    repo.commit("latin-1")
    repo.write({"specs/notes.yaml": "name: café\n"})  # fixed in the working tree only

    result = check("specs", "--now", NOW, "--as", "ops", "--base", "main")

    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        "error: specs/notes.yaml at the base ref: not UTF-8 text",
        "  hint: save the file as UTF-8",
    ]
