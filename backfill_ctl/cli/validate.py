"""`backfillctl validate PATHS`: schema, references and selection of every document."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer

from backfill_ctl.cli.console import out, print_diagnostics
from backfill_ctl.cli.options import ActorOpt, PathsArg, resolve_actor
from backfill_ctl.core.semantics import validate
from backfill_ctl.reports.text import count
from backfill_ctl.spec.loader import load_specs


class ValidateFormat(StrEnum):
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
    """
    specs = load_specs(paths)
    _, checks = validate(specs, resolve_actor(actor))
    diagnostics = specs.sources.locate(specs.diagnostics + checks)
    errors = sum(1 for d in diagnostics if d.is_error)
    warnings = len(diagnostics) - errors
    if output is ValidateFormat.json:
        out(
            json.dumps(
                {
                    "valid": errors == 0,
                    "errors": errors,
                    "warnings": warnings,
                    "diagnostics": [d.to_dict() for d in diagnostics],
                },
                indent=2,
            )
        )
    else:
        print_diagnostics(diagnostics)
        kinds = [
            count(len(specs.workspaces), "workspace"),
            count(len(specs.resource_groups), "resource group"),
            count(len(specs.nodes), "node"),
            count(len(specs.backfills), "backfill"),
        ]
        verdict = (
            f"{count(errors, 'error')}, {count(warnings, 'warning')}" if diagnostics else "valid"
        )
        out(
            f"{count(specs.files, 'file')}, {count(len(specs.documents), 'document')} "
            f"({', '.join(kinds)}): {verdict}"
        )
    if errors:
        raise typer.Exit(1)
