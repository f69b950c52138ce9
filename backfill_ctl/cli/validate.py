"""`backfillctl validate PATHS`: schema, references and selection of every document."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from backfill_ctl.cli.console import Terminal
from backfill_ctl.cli.options import ActorOpt, PathsArg, resolve_actor
from backfill_ctl.core.semantics import validate
from backfill_ctl.reports.formats import VALIDATE, Validation
from backfill_ctl.spec.loader import load_specs


class ValidateFormat(StrEnum):  # the names of reports.formats.VALIDATE
    text = "text"
    json = "json"


def validate_command(
    paths: PathsArg,
    actor: ActorOpt = None,
    output: Annotated[
        ValidateFormat, typer.Option("--output", "-o", help="Output format.")
    ] = ValidateFormat.text,
) -> None:
    """Check spec files: JSON Schema, references, loops, parameters and selections.

    Every error of every file is reported, as file:line:col, JSON path, message and
    hint. Exit 0 when valid, 1 when not, 2 when the input cannot be read.

    \b
    Examples:
      backfillctl validate specs/                 # every error of every file
      backfillctl validate specs/ --as oncall     # also: may oncall operate the targets?
      backfillctl validate specs/ -o json         # the diagnostics as data, for tools
    """
    specs = load_specs(paths)
    _, checks = validate(specs, resolve_actor(actor))
    diagnostics = specs.sources.locate(specs.diagnostics + checks)
    found = Validation(specs, diagnostics)
    VALIDATE[output.value](found, Terminal())
    if found.errors:
        raise typer.Exit(1)
