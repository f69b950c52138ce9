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

            for name in self.list_commands(None):  # completion walks every verb
                self.get_command(None, name)

            sys.exit(complete(self, ctx_args, instruction))

    def list_commands(self, ctx: Any) -> list[str]:
        return [*VERBS, *(n for n in super().list_commands(ctx) if n not in VERBS)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in VERBS:
            if cmd_name not in self.commands:
                self.commands[cmd_name] = load_verb(cmd_name)
        elif cmd_name not in self.commands:  # a typo: "did you mean" looks at them all
            for name in VERBS:
                if name not in self.commands:
                    self.commands[name] = load_verb(name)
        command = super().get_command(ctx, cmd_name)
        if command is not None:  # values without pydantic (cli.coercion)
            from backfill_ctl.cli.coercion import context, install

            install(command, None if ctx is None else context(command, ctx))
        return command

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        from backfill_ctl.cli.coercion import install  # values without pydantic

        install(self, ctx)
        rest: list[str] = super().parse_args(ctx, args)
        return rest

    def invoke(self, ctx: Any) -> Any:
        try:
            from backfill_ctl.cli.conflicts import refuse_repeats  # -o json -o yaml: exit 2

            refuse_repeats(ctx, self, [*ctx._protected_args, *ctx.args])
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


_SETTINGS: dict[str, Any] = {
    "add_completion": False,  # `backfillctl completion SHELL` instead: no shell detection
    "pretty_exceptions_enable": False,
    "rich_markup_mode": None,
    "context_settings": {"help_option_names": ["-h", "--help"]},
}
app = typer.Typer(
    cls=_Group,
    name="backfillctl",
    help="Declarative, reviewed backfills for DAGs of scheduled tasks.",
    no_args_is_help=True,
    **_SETTINGS,
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
    no_color: Annotated[
        bool, typer.Option("--no-color", help="No colour, as NO_COLOR=1 (for any command).")
    ] = False,
) -> None:
    """Declarative, reviewed backfills for DAGs of scheduled tasks."""
    from backfill_ctl.cli.console import set_no_color

    set_no_color(no_color)


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


# Each verb: the module under backfill_ctl.cli and the command (or Typer group) in it,
# imported when that verb runs or help lists it, so that a start running one verb does
# not import the others (`--version` and `validate` stay fast). In help's order.
VERBS: dict[str, tuple[str, str]] = {
    "validate": ("validate", "validate_command"),
    "plan": ("plan", "plan_command"),
    "check": ("check", "check_command"),
    "apply": ("apply", "apply_command"),
    "diff": ("apply", "diff_command"),
    "controller": ("controller", "controller_command"),
    "stop": ("ops", "stop_command"),
    "resume": ("ops", "resume_command"),
    "rerun": ("ops", "rerun_command"),
    "set-success": ("ops", "set_success_command"),
    "freeze": ("ops", "freeze_command"),
    "unfreeze": ("ops", "unfreeze_command"),
    "delete": ("ops", "delete_command"),
    "gc": ("gc", "gc_command"),
    "get": ("get", "get_app"),
    "backend": ("backend", "backend_app"),
    "describe": ("describe", "describe_command"),
    "logs": ("logs", "logs_command"),
    "events": ("events", "events_command"),
    "wait": ("wait", "wait_command"),
    "schema": ("schema", "schema_command"),
    "explain": ("schema", "explain_command"),
    "ui": ("ui", "ui_command"),
    "state": ("migrate", "state_app"),
}


def load_verb(name: str) -> Any:
    """The Click command of verb `name`, built as Typer builds a registered one."""
    import importlib

    module, attribute = VERBS[name]
    target = getattr(importlib.import_module(f"backfill_ctl.cli.{module}"), attribute)
    if isinstance(target, typer.Typer):  # a group of subcommands (get, backend, state)
        target.rich_markup_mode = None
        command = typer.main.get_group(target)
    else:
        single = typer.Typer(**_SETTINGS)
        single.command(name)(target)
        command = typer.main.get_command(single)  # type: ignore[assignment]
    command.name = name
    placeholders(command)
    return command


# What an option's value is, in a word, for help (`--now TIME`, not `--now <str>`).
WORDS = {
    "--as": "USER",
    "--actor": "USER",
    "--now": "TIME",
    "--timeout": "DURATION",
    "--since": "DURATION",
    "--state-file": "FILE",
    "--plan": "FILE",
    "--out": "FILE",
    "--backfill": "NAME",
    "--node": "NODE",
    "--bizdate": "DATE",
    "--interval": "SECONDS",
    "--lease-duration": "SECONDS",
    "--base": "REF",
    "--selector": "SELECTOR",
    "--sort-by": "JSONPATH",
    "--tail": "LINES",
    "--for": "CONDITION",
}


def placeholders(command: Any) -> None:
    """Help shows words, not Python types: an option without a metavar gets one (from
    WORDS, else its flag's name), an argument its name.
    Choices keep their list (`<table|json|yaml>`)."""
    for param in getattr(command, "params", ()):
        if getattr(param, "is_flag", False) or getattr(param, "count", False):
            continue
        if param.param_type_name == "argument":
            param.metavar = param.metavar or (param.name or "").upper()
            param.display_type_rich = lambda ctx: None
        elif param.metavar is None and not param.type_descriptor.is_choice:
            flags = [o for o in param.opts if o.startswith("--")] or param.opts
            flag = "--state-file" if "--state-file" in param.opts else flags[0]
            param.metavar = WORDS.get(flag, flag.lstrip("-").upper())
    for sub in getattr(command, "commands", {}).values():
        placeholders(sub)


app.command("completion")(completion_command)


def console() -> None:
    """The console script (and `python -m backfill_ctl`): `main`, then the process ends
    at once, without the interpreter's teardown (cli/teardown.py)."""
    try:
        main()
    except SystemExit as exc:  # (how every command ends)
        from backfill_ctl.cli.teardown import end_now

        end_now(exc.code)
        raise


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
