"""How `get` prints: its output options (`-o`, `--sort-by`, `--no-headers`, `-l`, `-w`)
and the listing loop (the listing, then under `-w` what changes, poll after poll).

`-o` is a format name (reports.listing.GET), or `jsonpath=TEMPLATE` /
`custom-columns=SPEC` with their argument after `=`, as kubectl writes them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from backfill_ctl.cli.console import Terminal
from backfill_ctl.errors import UsageError, did_you_mean
from backfill_ctl.reports import jsonpath
from backfill_ctl.reports.listing import GET, Columns, Item

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

WATCH_INTERVAL = 1.0  # seconds between two polls of the store under -w


class Format(StrEnum):  # reports.listing.GET's names; no -o is its "table"
    wide = "wide"
    json = "json"
    yaml = "yaml"
    name = "name"
    jsonpath = "jsonpath"
    custom_columns = "custom-columns"


_TAKES_ARGUMENT = (Format.jsonpath, Format.custom_columns)

OutputOpt = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        metavar="FORMAT",
        help="wide: more columns; json, yaml: a List of objects; name: KIND/NAME lines; "
        "jsonpath=TEMPLATE; custom-columns=HEADER:PATH,...",
        show_default=False,
    ),
]
LabelOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--selector",
        "-l",
        metavar="SELECTOR",
        help="Only backfills (or the instances of backfills) whose labels match: key=value, "
        "key!=value, 'key in (a,b)', 'key notin (a,b)', key, !key; comma-separated or "
        "repeated, all must hold.",
        show_default=False,
    ),
]
SortByOpt = Annotated[
    str | None,
    typer.Option(
        "--sort-by",
        metavar="JSONPATH",
        help="Sort the listing by this field of each object, e.g. .status.finishedAt.",
        show_default=False,
    ),
]
NoHeadersOpt = Annotated[
    bool, typer.Option("--no-headers", help="Tables and custom columns: no header line.")
]
WatchOpt = Annotated[
    bool,
    typer.Option(
        "--watch", "-w", help="After the listing, print what changes (polled every second)."
    ),
]
WatchLimitOpt = Annotated[int | None, typer.Option("--watch-limit", hidden=True)]


@dataclass(frozen=True)
class Output:
    """What -o, --sort-by and --no-headers asked for."""

    format: str = "table"  # a name of reports.listing.GET
    template: str = ""
    sort_by: str | None = None
    no_headers: bool = False


def parse_output(text: str | None, sort_by: str | None, no_headers: bool) -> Output:
    """`-o NAME` or `-o NAME=ARG`; a UsageError (exit 2) for an unknown name or template."""
    if sort_by is not None:
        jsonpath.relaxed(sort_by)  # a malformed path fails before anything is read
    if text is None:
        return Output(sort_by=sort_by, no_headers=no_headers)
    name, sep, template = text.partition("=")
    known = [f.value for f in Format]
    if name not in known:
        raise UsageError(
            f"-o {text!r}: unknown output format",
            hint=did_you_mean(name, known) or f"use one of {', '.join(known)}",
        )
    if (name in _TAKES_ARGUMENT) != bool(sep):
        example = "jsonpath='{.items[*].metadata.name}'" if sep == "" else name
        raise UsageError(
            f"-o {text!r}: {name} {'takes no argument' if sep else 'needs an argument'}",
            hint=f"write -o {example}",
        )
    return Output(name, template, sort_by, no_headers)


def _sort_key(value: list[Any]) -> tuple[int, float, str]:
    if not value or value[0] is None:
        return (0, 0.0, "")
    first = value[0]
    if isinstance(first, int | float) and not isinstance(first, bool):
        return (1, float(first), "")
    return (2, 0.0, jsonpath.text_of(first))


def sort(items: Sequence[Item], by: str | None) -> list[Item]:
    """`items` in the order of the value at `by` (missing first, numbers, then text)."""
    if by is None:
        return list(items)
    path = jsonpath.relaxed(by)
    return sorted(items, key=lambda i: _sort_key(jsonpath.values(path, i.data)))


@dataclass(frozen=True)
class Listing:
    """One `get` listing: its kind, its columns (plain and wide) and how to fetch its items."""

    kind: str  # "backfills" | "instances", for the empty message
    header: tuple[str, ...]
    wide: tuple[str, ...]
    fetch: Callable[[], list[Item]]


def show(
    listing: Listing,
    output: Output,
    watch: bool,
    limit: int | None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Print the listing; with `watch`, then what changes, poll after poll."""
    columns = Columns(
        listing.kind,
        listing.header,
        listing.wide,
        as_list=True,
        no_headers=output.no_headers,
        template=output.template,
    )
    report = GET[output.format](columns, Terminal(flush=True))
    items = listing.fetch()
    report.listing(sort(items, output.sort_by))
    if not watch:
        return
    seen = {i.name: i.data for i in items}
    polls = 0
    while limit is None or polls < limit:
        sleep(WATCH_INTERVAL)
        polls += 1
        items = listing.fetch()
        changed = [i for i in items if seen.get(i.name) != i.data]
        seen = {i.name: i.data for i in items}
        if changed:
            report.changes(changed)
