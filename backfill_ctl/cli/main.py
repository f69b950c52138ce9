"""The `backfillctl` application: verbs registered here, errors handled here.

One handler maps the errors a user can cause (`BackfillError`) to a message on
stderr and the error's exit code, without a traceback. Exit codes:
0 success, 1 invalid specs / findings / changes, 2 unusable input or usage,
3 a bug in backfillctl (set BACKFILLCTL_DEBUG=1 for the traceback), 130 interrupted.
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from backfill_ctl import __version__
from backfill_ctl.errors import BackfillError


class _Group(TyperGroup):
    def _main_shell_completion(
        self, ctx_args: Any, prog_name: str, complete_var: str | None = None
    ) -> None:
        """A shell asking for completions (backfill_ctl.cli.completion, imported only
        then): Click's `bash_complete`... protocol, whatever name the program runs as."""
        instruction = os.environ.get("_BACKFILLCTL_COMPLETE")
        if instruction:
            from backfill_ctl.cli.completion import complete

            sys.exit(complete(self, ctx_args, instruction))

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except BackfillError as exc:
            from backfill_ctl.cli.console import err, paint, print_diagnostics
            from backfill_ctl.errors import SpecError

            if isinstance(exc, SpecError):
                print_diagnostics(exc.diagnostics)
            err(paint("error:", "red", sys.stderr) + " " + exc.message)
            if exc.hint:
                err(f"  hint: {exc.hint}")
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:  # else "Aborted!" and exit 1, or a silent 130, by Typer version
            sys.stderr.write("interrupted\n")
            ctx.exit(130)
        except BrokenPipeError:  # the reader went away (| head): stop quietly, no traceback
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush is silent
            ctx.exit(0)


app = typer.Typer(
    cls=_Group,
    name="backfillctl",
    help="Declarative, reviewed backfills for DAGs of scheduled tasks.",
    no_args_is_help=True,
    add_completion=False,  # `backfillctl completion SHELL` instead: no shell detection
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"backfillctl {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Declarative, reviewed backfills for DAGs of scheduled tasks."""


class Shell(StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def completion_command(
    shell: Annotated[
        Shell, typer.Argument(metavar="SHELL", help="bash, zsh or fish.", show_default=False)
    ],
) -> None:
    """Print the shell completion script: verbs, flags, backfill names, instance ids,
    node names and explain paths complete on TAB.

    \b
    Examples:
      source <(backfillctl completion bash)                  # ~/.bashrc
      backfillctl completion zsh > "${fpath[1]}/_backfillctl"
      backfillctl completion fish > ~/.config/fish/completions/backfillctl.fish
    """
    from backfill_ctl.cli.completion import script

    sys.stdout.write(script(shell.value).strip("\n") + "\n")


def _register() -> None:
    from backfill_ctl.cli.apply import apply_command, diff_command
    from backfill_ctl.cli.backend import backend_app
    from backfill_ctl.cli.check import check_command
    from backfill_ctl.cli.controller import controller_command
    from backfill_ctl.cli.describe import describe_command
    from backfill_ctl.cli.events import events_command
    from backfill_ctl.cli.gc import gc_command
    from backfill_ctl.cli.get import get_app
    from backfill_ctl.cli.logs import logs_command
    from backfill_ctl.cli.ops import (
        delete_command,
        freeze_command,
        rerun_command,
        set_success_command,
        stop_command,
        unfreeze_command,
    )
    from backfill_ctl.cli.plan import plan_command
    from backfill_ctl.cli.schema import explain_command, schema_command
    from backfill_ctl.cli.validate import validate_command
    from backfill_ctl.cli.wait import wait_command

    app.command("validate")(validate_command)
    app.command("plan")(plan_command)
    app.command("check")(check_command)
    app.command("apply")(apply_command)
    app.command("diff")(diff_command)
    app.command("controller")(controller_command)
    app.command("stop")(stop_command)
    app.command("rerun")(rerun_command)
    app.command("set-success")(set_success_command)
    app.command("freeze")(freeze_command)
    app.command("unfreeze")(unfreeze_command)
    app.command("delete")(delete_command)
    app.command("gc")(gc_command)
    app.add_typer(get_app, name="get")
    app.add_typer(backend_app, name="backend")
    app.command("describe")(describe_command)
    app.command("logs")(logs_command)
    app.command("events")(events_command)
    app.command("wait")(wait_command)
    app.command("schema")(schema_command)
    app.command("explain")(explain_command)
    app.command("completion")(completion_command)


_register()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except Exception as exc:  # a bug: say so plainly, keep the traceback for a report
        if os.environ.get("BACKFILLCTL_DEBUG"):
            raise
        sys.stderr.write(
            f"internal error: {type(exc).__name__}: {exc}\n"
            "  this is a bug in backfillctl; rerun with BACKFILLCTL_DEBUG=1 and "
            "report the traceback\n"
        )
        sys.exit(3)
