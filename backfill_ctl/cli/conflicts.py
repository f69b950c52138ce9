"""Options that contradict each other are refused (exit 2) with a message naming both.

`refuse` says so for two options given together (`apply --dry-run --wait`). An
instance id named with another backfill's `--backfill` is refused by the operations
(`usecases.operations.mismatch`).

`refuse_repeats` refuses `-o/--output` given twice (`-o json -o yaml`), naming it and
both values, for every command that has it: Click would silently keep the last, and a
script reading json would get yaml. Only the options named in `ONCE` (the output's
format) are checked: kubectl, like Click, keeps the last value of its other flags, and
wrappers rely on that (`backfillctl plan --now "$NOW" "$@"` lets a caller pass its own
`--now`; the tests' helpers do the same), so refusing `--now`, `--as` or `--state-file`
twice would break them. Adding a name to `ONCE` refuses that option twice too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backfill_ctl.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Sequence

ONCE = frozenset({"output"})  # the options (by parameter name) that may be given once


def refuse(first: str, second: str, why: str, hint: str) -> UsageError:
    """The error for two options that cannot be given together."""
    return UsageError(f"{first} and {second} contradict each other: {why}", hint=hint)


def refuse_repeats(ctx: Any, command: Any, args: Sequence[str]) -> None:
    """Refuse (exit 2) an option of `ONCE` given twice in `args` to `command` (or to the
    subcommand `args` name in it). Parsing errors are left to Click's own parse, which
    reports them. (Typer vendors its own Click: its commands are duck-typed here.)"""
    while True:
        sub_ctx = command.context_class(
            command, info_name=command.name, parent=ctx, resilient_parsing=True
        )
        parser = command.make_parser(sub_ctx)
        for option in {*parser._long_opt.values(), *parser._short_opt.values()}:
            if option.action == "store":  # a single value: collect each one given
                option.action = "append"
        values, rest, _ = parser.parse_args(list(args))
        for param in command.params:
            given: Any = values.get(param.name or "")
            if param.name in ONCE and not param.multiple and _twice(given):
                names = sorted(param.opts, key=len)  # -o/--output
                shown = ", ".join(str(v) for v in given)
                raise UsageError(
                    f"{'/'.join(names)} given twice ({shown}): give it once",
                    hint=f"keep the {names[0]} you mean (Click would take the last)",
                )
        sub = (
            command.get_command(sub_ctx, rest[0])
            if hasattr(command, "get_command") and rest
            else None
        )
        if sub is None:
            return
        ctx, command, args = sub_ctx, sub, rest[1:]


def _twice(given: object) -> bool:
    return isinstance(given, list) and len(given) > 1
