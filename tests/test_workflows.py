"""The GitHub workflows and pre-commit hooks: valid, and built the safe way."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from backfill_ctl.cli.main import VERBS
from backfill_ctl.reports.markdown import MARKER

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"


def load(name: str) -> dict[str, Any]:
    # BaseLoader keeps `on:` a string key (YAML 1.1 would read it as True).
    data: dict[str, Any] = yaml.load((WORKFLOWS / name).read_text(), Loader=yaml.BaseLoader)
    return data


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def runs(workflow: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in steps(workflow))


@pytest.mark.parametrize(
    "schema", ["vendor.github-workflows", "custom.github-workflows-require-timeout"]
)
def test_workflows_are_valid_github_workflows(schema: str) -> None:
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert len(files) == 4
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *files],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_pr_check_runs_untrusted_code_without_write_access_or_secrets() -> None:
    wf = load("backfill-pr.yml")
    assert set(wf["on"]) == {"pull_request"}  # never pull_request_target
    assert "specs/**" in wf["on"]["pull_request"]["paths"]
    assert wf["permissions"] == {}
    assert wf["jobs"]["check"]["permissions"] == {"contents": "read"}
    assert "secrets." not in (WORKFLOWS / "backfill-pr.yml").read_text()
    checkout = next(s for s in steps(wf) if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"] == {"fetch-depth": "0", "persist-credentials": "false"}


def test_the_pr_is_judged_by_the_base_branch_s_backfillctl() -> None:
    """Issue 9, item 5: a PR that edits the checker cannot pass its own check."""
    wf = load("backfill-pr.yml")
    base = next(s for s in steps(wf) if s.get("with", {}).get("path") == ".backfillctl-base")
    assert base["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"
    installs = [s["run"] for s in steps(wf) if "pip install" in s.get("run", "")]
    assert installs == ["python -m pip install ./.backfillctl-base"]


def test_the_pr_check_validates_checks_against_the_base_and_uploads_the_comment() -> None:
    wf = load("backfill-pr.yml")
    commands = runs(wf)
    assert "backfillctl validate specs/" in commands
    assert 'backfillctl check specs/ --base "$BASE_REF" -o github' in commands
    assert "-o markdown > report/comment.md" in commands
    assert wf["jobs"]["check"]["env"]["BASE_REF"] == "origin/${{ github.base_ref }}"
    upload = next(s for s in steps(wf) if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["with"]["name"] == "backfill-report"
    # Error findings fail the job: the check step is a plain run, not continue-on-error.
    check = next(s for s in steps(wf) if "-o github" in s.get("run", ""))
    assert "continue-on-error" not in check


def test_the_comment_is_posted_by_a_privileged_workflow_that_never_checks_out_pr_code() -> None:
    wf = load("backfill-pr-comment.yml")
    assert wf["on"] == {"workflow_run": {"workflows": ["backfill-pr"], "types": ["completed"]}}
    assert wf["permissions"] == {}
    job = wf["jobs"]["comment"]
    assert job["permissions"] == {"actions": "read", "pull-requests": "write"}
    # Only a check that ran to its end is reported (not a cancelled or skipped one).
    assert "workflow_run.conclusion == 'success'" in job["if"]
    assert "workflow_run.conclusion == 'failure'" in job["if"]
    assert not [s for s in steps(wf) if s.get("uses", "").startswith("actions/checkout")]
    text = (WORKFLOWS / "backfill-pr-comment.yml").read_text()
    assert f'MARKER: "{MARKER}"' in text  # the marker the markdown report ends with
    commands = runs(wf)
    assert "*[!0-9]*" in commands  # the PR number from the artifact is checked...
    assert ".head.sha" in commands and "HEAD_SHA" in commands  # ...against the run
    assert "--method PATCH" in commands and "--method POST" in commands  # one sticky comment
    assert "github-actions[bot]" in commands  # only our own comment is updated


def test_applies_are_serialised_and_apply_exactly_the_checked_plan() -> None:
    wf = load("backfill-apply.yml")
    assert wf["on"]["push"]["branches"] == ["main"]
    assert wf["concurrency"] == {"group": "backfill-apply", "cancel-in-progress": "false"}
    commands = runs(wf)
    assert "backfillctl check specs/" in commands
    assert "backfillctl plan specs/ --out plan.json" in commands
    assert "backfillctl apply specs/ --plan plan.json" in commands


def test_the_apply_job_waits_for_its_environment_on_a_hosted_runner_with_a_shared_store() -> None:
    job = load("backfill-apply.yml")["jobs"]["apply"]
    assert job["environment"] == "backfill-production"  # reviewers can be required there
    # a hosted runner on the team's PostgreSQL store, its URL a secret (issue 14)
    assert job["runs-on"] == "ubuntu-latest"
    assert job["env"]["BACKFILLCTL_STATE"] == (
        "${{ secrets.BACKFILLCTL_STATE || vars.BACKFILLCTL_STATE }}"
    )
    refuse = job["steps"][0]["run"]
    assert 'if [ -z "$BACKFILLCTL_STATE" ]' in refuse
    assert "postgresql://* | postgres://*) ;;" in refuse
    assert '"$RUNNER_ENVIRONMENT" = github-hosted' in refuse
    installs = [s["run"] for s in job["steps"] if "pip install" in s.get("run", "")]
    assert installs == ["python -m pip install '.[postgresql]'"]


@pytest.mark.parametrize(
    ("state", "hosted", "refused"),
    [
        ("", "self-hosted", True),
        ("postgresql://backfill@db/backfill", "github-hosted", False),
        ("postgres://db/backfill", "github-hosted", False),
        ("/srv/state.db", "github-hosted", True),
        ("/srv/state.db", "self-hosted", False),
    ],
)
def test_the_apply_job_refuses_a_store_a_hosted_runner_would_throw_away(
    state: str, hosted: str, refused: bool
) -> None:
    script = load("backfill-apply.yml")["jobs"]["apply"]["steps"][0]["run"]
    done = subprocess.run(
        ["bash", "-e", "-c", script],
        env={"BACKFILLCTL_STATE": state, "RUNNER_ENVIRONMENT": hosted, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == (1 if refused else 0), done.stderr
    assert ("::error::" in done.stderr) is refused


def test_every_action_is_pinned_by_commit_and_no_checkout_keeps_credentials() -> None:
    for path in sorted(WORKFLOWS.glob("*.yml")):
        wf = load(path.name)
        assert wf["permissions"] == {}, path.name  # each job says what it needs
        for step in steps(wf):
            uses = step.get("uses")
            if uses is None:
                continue
            ref = uses.split("@", 1)[1]
            assert len(ref) == 40 and all(c in "0123456789abcdef" for c in ref), uses
            if uses.startswith("actions/checkout"):
                assert step["with"]["persist-credentials"] == "false", path.name
        for line in path.read_text().splitlines():
            if "uses:" in line:
                assert " # v" in line, line  # the version beside the commit


def test_ci_runs_the_same_script_as_local_ci() -> None:
    wf = load("ci.yml")
    assert ".ci/run" in runs(wf)


def test_pre_commit_hooks_call_existing_commands() -> None:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    commands = set(VERBS)
    assert [h["id"] for h in hooks] == ["backfillctl-validate", "backfillctl-check"]
    for hook in hooks:
        program, verb = hook["entry"].split()
        assert program == "backfillctl" and verb in commands
        assert hook["language"] == "python"
        assert hook["pass_filenames"] is False  # references cross files: check the whole repo
        assert set(hook) <= {
            "id",
            "name",
            "description",
            "entry",
            "language",
            "files",
            "pass_filenames",
            "args",
        }


def test_every_spec_file_names_its_schema_for_editors() -> None:
    for path in (ROOT / "specs").rglob("*.yaml"):
        first = path.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), path
        schema = (path.parent / first.split("=", 1)[1]).resolve()
        assert schema.is_file(), (path, schema)


def test_the_readme_lists_every_check() -> None:
    from backfill_ctl.risks import CHECKS

    readme = (ROOT / "README.md").read_text()
    for code, check in CHECKS.items():
        assert f"| `{code}` | {check.severity}" in readme, code
