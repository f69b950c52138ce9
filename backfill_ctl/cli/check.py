"""`backfillctl check PATHS`: the risk checks a pull request shows (DESIGN §5.3)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from backfill_ctl.cli.console import Terminal, err
from backfill_ctl.cli.options import ActorOpt, NowOpt, PathsArg, resolve_actor, resolve_now
from backfill_ctl.cli.teardown import keep_until_exit
from backfill_ctl.reports.formats import CHECK
from backfill_ctl.spec.loader import load_files, load_specs
from backfill_ctl.usecases.check import Base, run_check
from backfill_ctl.usecases.policies import with_policies


class CheckFormat(StrEnum):  # the names of reports.formats.CHECK
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

    \b
    Examples:
      backfillctl check specs/ --as oncall         # the risks a pull request shows
      backfillctl check specs/ --base origin/main  # what merging adds, changes, removes
      backfillctl check specs/ -o markdown         # a pull request comment
      backfillctl check specs/ -o github           # annotations in a GitHub Actions job
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
    CHECK[output.value](result, Terminal())
    keep_until_exit(result.plan, result, specs, based)
    if result.failed:
        raise typer.Exit(1)
