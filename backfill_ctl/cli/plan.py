"""`backfillctl plan PATHS`: the exact instances each Backfill would run."""

from __future__ import annotations

import os
import sys
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from backfill_ctl.cli.console import err, print_diagnostics
from backfill_ctl.cli.options import ActorOpt, NowOpt, PathsArg, resolve_actor, resolve_now
from backfill_ctl.cli.teardown import keep_until_exit
from backfill_ctl.errors import UsageError
from backfill_ctl.reports.formats import PLAN
from backfill_ctl.spec.loader import load_specs
from backfill_ctl.usecases.plan import make_plan

if TYPE_CHECKING:
    from collections.abc import Iterable

    from backfill_ctl.core.planner import Plan


class PlanFormat(StrEnum):  # the names of reports.formats.PLAN
    table = "table"
    json = "json"
    yaml = "yaml"


def plan_command(
    paths: PathsArg,
    output: Annotated[
        PlanFormat, typer.Option("--output", "-o", help="Output format.")
    ] = PlanFormat.table,
    now: NowOpt = None,
    actor: ActorOpt = None,
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Also save the plan (JSON, with the digest of its inputs) to this file.",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    backfill: Annotated[
        list[str] | None,
        typer.Option(
            "--backfill", "-b", help="Plan only this Backfill (repeatable).", show_default=False
        ),
    ] = None,
) -> None:
    """Show the exact instances each Backfill would run, in order.

    Human summary by default; -o json prints every instance, in the format tools rely
    on (see the README). Exit 0 when every Backfill planned, 1 when a spec has errors,
    2 when the input cannot be read.

    \b
    Examples:
      backfillctl plan specs/ --as oncall                 # a summary per backfill
      backfillctl plan specs/ --now 2024-03-20 -o json    # every instance, as of that day
      backfillctl plan specs/ -b fix-orders-2024-03 -o yaml
      backfillctl plan specs/ --as oncall --out plan.json # saved for apply --plan
    """
    specs = load_specs(paths)
    who = resolve_actor(actor)
    plan, diagnostics = make_plan(specs, resolve_now(now), who, backfill or ())
    diagnostics = specs.sources.locate(diagnostics)
    print_diagnostics(diagnostics)
    if who is None and specs.backfills:
        err(
            "note: no actor given (--as, $BACKFILLCTL_ACTOR, $GITHUB_ACTOR): "
            "permissions were not checked"
        )
    failed = any(d.is_error for d in diagnostics)
    if out_file is not None:
        if failed:  # a saved plan is what apply runs: never save half of one
            err(f"plan not saved to {out_file}: fix the errors above first")
        else:
            _save(out_file, _json_chunks(plan))
    _write(sys.stdout, PLAN[output.value](plan, specs))
    keep_until_exit(plan, specs)
    if failed:
        raise typer.Exit(1)


def _json_chunks(plan: Plan) -> Iterable[str]:
    from backfill_ctl.usecases.plan_data import iter_json

    return iter_json(plan)


# Characters gathered before a write: small pieces are joined, big ones (iter_json's
# batches of instance lines) go out one or two at a time, never the whole text at once.
_FLUSH = 1 << 20


def _write(stream: TextIO, chunks: Iterable[str]) -> None:
    write = stream.write
    buffer: list[str] = []
    size = 0
    for chunk in chunks:
        buffer.append(chunk)
        size += len(chunk)
        if size >= _FLUSH:
            write("".join(buffer))
            buffer.clear()
            size = 0
    write("".join(buffer))


def _save(path: Path, chunks: Iterable[str]) -> None:
    """Write atomically: a reader never sees half a plan; a failure, or Ctrl-C, leaves the
    old file and no partial copy."""
    directory = path.parent if str(path.parent) else Path()
    if not directory.is_dir():
        raise UsageError(
            f"--out {path}: directory {directory} does not exist", hint="create the directory first"
        )
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            _write(fh, chunks)
        Path(tmp).replace(path)
    except BaseException as exc:  # (KeyboardInterrupt too: the partial copy goes)
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise UsageError(f"--out {path}: cannot write: {exc.strerror}") from exc
        raise
