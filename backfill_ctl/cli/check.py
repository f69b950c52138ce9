"""`backfillctl check PATHS`: the risk checks a pull request shows (DESIGN §5.3)."""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from backfill_ctl.cli.console import err, out, print_diagnostics
from backfill_ctl.cli.options import ActorOpt, NowOpt, PathsArg, resolve_actor, resolve_now
from backfill_ctl.errors import UsageError
from backfill_ctl.spec.loader import load_files, load_specs
from backfill_ctl.usecases.check import Base, run_check
from backfill_ctl.usecases.policies import with_policies


class CheckFormat(StrEnum):
    text = "text"
    json = "json"
    markdown = "markdown"
    github = "github"


def check_command(
    paths: PathsArg,
    actor: ActorOpt = None,
    now: NowOpt = None,
    output: Annotated[
        CheckFormat,
        typer.Option(
            "--output",
            "-o",
            help="text; json; markdown (the pull-request comment); github (annotations, "
            "and the markdown appended to $GITHUB_STEP_SUMMARY when it is set).",
        ),
    ] = CheckFormat.text,
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            help="Compare with the specs at this git ref (a branch, tag or commit) and "
            "report what merging adds, changes and removes.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check specs for risks before they are merged: loops, permissions, isolated nodes
    and instances, dry-run intermediates, waiting for time, self-dependency in parallel
    groups, overlapping backfills, too many instances, T-1 collisions.

    Exit 0 when no finding is an error, 1 when one is (a risk a Backfill accepts with
    checks.stopOnRisk: false is a warning), 2 when the input cannot be used.
    """
    specs = load_specs(paths)
    based = None
    if base is not None:
        from backfill_ctl.spec.gitref import sources_at

        based = Base(base, load_files(sources_at(base, paths)))
    who = resolve_actor(actor)
    result = with_policies(specs, run_check(specs, resolve_now(now), who, based))
    if who is None and specs.backfills:
        err(
            "note: no actor given (--as, $BACKFILLCTL_ACTOR, $GITHUB_ACTOR): "
            "permissions were not checked"
        )
    if output is CheckFormat.json:
        from backfill_ctl.reports.check_text import check_data

        out(json.dumps(check_data(result), indent=2))
    elif output is CheckFormat.markdown:
        from backfill_ctl.reports.markdown import render_markdown

        sys.stdout.write(render_markdown(result))
    elif output is CheckFormat.github:
        from backfill_ctl.reports.github import render_annotations
        from backfill_ctl.reports.markdown import render_markdown

        for line in render_annotations(result.findings):
            out(line)
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            _append(Path(summary), render_markdown(result))
    else:
        from backfill_ctl.reports.check_text import render_text, summary_line

        table = render_text(result)
        for line in table:
            out(line)
        if table and result.findings:  # no blank first line when nothing was planned
            out()
        print_diagnostics(result.findings, code=True, stream=sys.stdout)
        out(summary_line(result))
    if result.failed:
        raise typer.Exit(1)


def _append(path: Path, text: str) -> None:
    try:
        with path.open("a", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise UsageError(f"$GITHUB_STEP_SUMMARY {path}: cannot write: {exc.strerror}") from exc
