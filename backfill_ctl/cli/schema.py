"""`backfillctl schema KIND` and `backfillctl explain Kind.field.path`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from backfill_ctl.cli.console import out
from backfill_ctl.spec.explain import explain, find_kind
from backfill_ctl.spec.schema import kind_schema


def schema_command(
    kind: Annotated[
        str,
        typer.Argument(
            help="Workspace, ResourceGroup, Node, Backfill or Config (any case).",
            show_default=False,
        ),
    ],
) -> None:
    """Print the JSON Schema (draft 2020-12) of a kind, self-contained.

    \b
    Examples:
      backfillctl schema Backfill                 # for an editor or check-jsonschema
      backfillctl schema config > config.schema.json
    """
    out(json.dumps(kind_schema(find_kind(kind)), indent=2))


def explain_command(
    path: Annotated[
        str,
        typer.Argument(
            help="Kind and field path, such as Backfill.spec.groups.", show_default=False
        ),
    ],
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="Show every field below, as a tree.")
    ] = False,
) -> None:
    """Document a field of the spec format, read from the JSON Schemas.

    \b
    Examples:
      backfillctl explain Backfill.spec.select    # the format, from the schemas
      backfillctl explain Backfill.spec -r        # every field below, as a tree
      backfillctl explain Node.spec.run.retries
    """
    out(explain(path, recursive))
