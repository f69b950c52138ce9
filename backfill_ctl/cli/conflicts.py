"""Options that contradict each other are refused (exit 2) with a message naming both.

`refuse` says so for two options given together (`apply --dry-run --wait`);
`once` is the callback of an option that may be given only once (`-o`): Click keeps
the last of repeated options silently, so the callback counts the option's occurrences
in the command line of the current Click context.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from backfill_ctl.errors import UsageError

if TYPE_CHECKING:
    import click

T = TypeVar("T")


def refuse(first: str, second: str, why: str, hint: str) -> UsageError:
    """The error for two options that cannot be given together."""
    return UsageError(f"{first} and {second} contradict each other: {why}", hint=hint)


def once(ctx: click.Context, param: click.Parameter, value: T) -> T:
    """An option's callback: refuse the option given more than once (`-o json -o yaml`)."""
    names = set(getattr(param, "opts", ())) | set(getattr(param, "secondary_opts", ()))
    seen = [arg for arg in _args(ctx) if _names_option(arg, names)]
    if len(seen) > 1:
        raise UsageError(
            f"{' and '.join(seen)}: {'/'.join(sorted(names, key=len))} is given more than once",
            hint="give it once: Click would silently keep only the last",
        )
    return value


def _args(ctx: click.Context) -> list[str]:
    """The raw arguments of this command, as the parser saw them (up to a `--`)."""
    raw: list[str] = list(getattr(ctx, "_backfillctl_args", None) or ())
    return raw[: raw.index("--")] if "--" in raw else raw


def _names_option(arg: str, names: set[str]) -> bool:
    if arg in names:
        return True
    long = next((n for n in names if n.startswith("--") and arg.startswith(n + "=")), None)
    short = next((n for n in names if len(n) == 2 and arg.startswith(n) and len(arg) > 2), None)
    return long is not None or short is not None
