"""`backfillctl gc [PATHS]`: forget old instances and logs, as `retention` says."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from backfill_ctl.backends.files import RunFiles
from backfill_ctl.cli.console import err, out, print_diagnostics
from backfill_ctl.cli.options import resolve_actor, resolve_now
from backfill_ctl.cli.state import StateOpt, open_state, who
from backfill_ctl.spec.loader import load_specs
from backfill_ctl.spec.model import Retention
from backfill_ctl.usecases import retention

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import timedelta

    from backfill_ctl.spec.loader import Specs
    from backfill_ctl.state import StateStore

_Item = TypeVar("_Item", retention.DropInstance, retention.DropLog, retention.CutLog)


PathsOpt = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="PATHS",
        help="Spec files or directories to read the Config's retention from "
        "(default: instances 30d; logs shared 7d, exclusive 30d, serverless 30d; "
        "maxLogSize 3MiB).",
        show_default=False,
    ),
]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Show what would be collected; change nothing.")
]
AgesFromOpt = Annotated[
    str | None,
    typer.Option(
        "--now",
        help="Measure ages from this time, ISO 8601 (default: $BACKFILLCTL_NOW, else "
        "the clock). Without an offset it is UTC.",
        show_default=False,
    ),
]


def gc_command(
    paths: PathsOpt = None,
    dry_run: DryRunOpt = False,
    now: AgesFromOpt = None,
    state: StateOpt = None,
) -> None:
    """Forget backfills that finished (or were deleted) longer than retention.instances
    ago: their instances, attempts, events and logs go; one still applied stays listed
    as Collected so that applying its unchanged spec does not run it again. Remove logs
    older than their resource group type's retention, and cut logs of finished
    instances larger than maxLogSize to their last maxLogSize bytes. Nothing of a
    backfill that is still under way is deleted.

    Only files in the store's runs directory are removed or cut (a copy of a checkout
    collects its own): one the store names elsewhere is left, and said.

    Exit 0 when collected, 1 when the specs have errors, a file could not be changed or
    the runs directory is refused (a symlink), 2 when the store cannot be used (missing,
    locked).

    \b
    Examples:
      backfillctl gc specs/ --dry-run             # what would be collected
      backfillctl gc specs/                       # as the Config's retention says
      backfillctl gc                              # the default retention (instances 30d)
    """
    specs = load_specs(paths) if paths else None
    if specs is not None and specs.errors:
        print_diagnostics(specs.errors)
        err("gc refused: the retention is read from these specs; fix their errors first")
        raise typer.Exit(1)
    policy = specs.config.retention if specs is not None else Retention()
    moment = resolve_now(now).timestamp()
    store = open_state(state, specs)
    runs = _runs(store)
    out(f"Retention: {describe(policy)} ({_source(specs)}).")
    # The store knows the type each group had when applied; the specs fill in the rest.
    types: dict[str, str] = {n: g.type for n, g in specs.resource_groups.items()} if specs else {}
    types.update({n: t for n, (t, _) in store.resource_groups().items()})
    plan = retention.survey(store, moment, policy, types, runs=runs)
    errors: list[str] = []
    if not dry_run and not plan.empty:
        done = retention.collect(
            store,
            plan,
            now=moment,
            retention=policy,
            at=time.time(),
            actor=who(resolve_actor(None)),
            origin="gc",
            runs=runs,
        )
        plan, errors = done.collection, done.errors
    for line in render(plan, policy, done=not dry_run):
        out(line)
    for error in errors:
        err(f"error: {error}")
    if errors:
        raise typer.Exit(1)


def _runs(store: StateStore) -> RunFiles:
    """The store's runs directory, where gc removes and cuts files; one that is refused
    (a symlink: its files are not this store's to weigh, remove or cut) ends gc, exit 1."""
    runs = RunFiles.of(store)
    refused = runs.refused()
    if refused:
        err(f"error: {refused}")
        err("gc refused: nothing was changed")
        raise typer.Exit(1)
    return runs


def render(c: retention.Collection, policy: Retention, *, done: bool) -> list[str]:
    """Per rule, one line per backfill (- deleted or removed, ~ cut, = kept); a summary."""
    if c.empty:
        return ["No changes: nothing is older or larger than the retention allows."]

    def verb(did: str, todo: str) -> str:
        return did if done else todo

    lines = [f"Backfills finished more than {age(policy.instances)} ago:"]
    lines += _backfill_lines(c, verb) or ["  none"]
    lines.append("Logs older than the retention of their resource group type:")
    for name, logs in sorted(_group(c.logs).items()):
        kinds = Counter(d.group_type for d in logs)
        lines.append(
            f"  - backfill/{name}: {len(logs)} log(s) {verb('removed', 'to remove')} "
            f"({size(sum(d.size for d in logs))}; "
            f"{', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))})"
        )
    if not c.logs:
        lines.append("  none")
    lines.append(f"Logs of finished instances larger than {size(policy.max_log_size)}:")
    for name, cuts in sorted(_group(c.cuts).items()):
        lines.append(
            f"  ~ backfill/{name}: {len(cuts)} log(s) {verb('cut', 'to cut')} "
            f"({size(sum(x.removed for x in cuts))} {verb('removed', 'to remove')})"
        )
    if not c.cuts:
        lines.append("  none")
    counts = (
        f"{len(c.instances)} instance(s) and {len(c.backfills)} backfill(s) "
        f"{verb('deleted', 'to delete')}, {len(c.logs)} log(s) {verb('removed', 'to remove')}, "
        f"{len(c.cuts)} log(s) {verb('cut', 'to cut')}; {size(c.freed)} "
        f"{verb('freed', 'to free')}."
    )
    lines.append(f"Collection complete: {counts}" if done else f"Plan: {counts}")
    return lines


def _backfill_lines(c: retention.Collection, verb: Callable[[str, str], str]) -> list[str]:
    """Per backfill: its instances deleted, itself deleted, or kept as collected."""
    lines = []
    by = _group(c.instances)
    for name in sorted(set(by) | set(c.backfills) | set(c.collected)):
        parts = []
        if name in by:
            drops = by[name]
            parts.append(
                f"{len(drops)} instance(s) {verb('deleted', 'to delete')}, with "
                f"{sum(d.attempts for d in drops)} attempt(s) and {sum(d.logs for d in drops)} "
                f"log file(s) ({size(sum(d.size for d in drops))})"
            )
        if name in c.backfills:
            parts.append(f"the backfill {verb('deleted', 'to delete')} (nothing left)")
        if name in c.collected:
            parts.append(
                f"the backfill {verb('kept', 'to keep')} as collected: applying its "
                "unchanged spec does not run it again"
            )
        if parts:
            lines.append(f"  - backfill/{name}: {'; '.join(parts)}")
    return lines


def describe(r: Retention) -> str:
    logs = ", ".join(f"{kind} {age(keep)}" for kind, keep in r.logs)
    return f"instances {age(r.instances)}; logs {logs}; maxLogSize {size(r.max_log_size)}"


def age(d: timedelta) -> str:
    """30d, 1h30m, 90s -> 1m30s: the schema's duration format, largest unit first."""
    left = int(d.total_seconds())
    parts = []
    for unit, seconds in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= seconds:
            parts.append(f"{left // seconds}{unit}")
            left %= seconds
    return "".join(parts) or "0s"


def size(n: int) -> str:
    """Bytes as written in a Config: 3MiB, 512KiB, 1500B; else to a tenth of a unit."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n // scale}{unit}" if n % scale == 0 else f"{n / scale:.1f}{unit}"
    return f"{n}B"


def _source(specs: Specs | None) -> str:
    if specs is not None and specs.config.origin is not None:
        return f"from {specs.config.origin}"
    return "defaults"


def _group(items: list[_Item]) -> dict[str, list[_Item]]:
    found: dict[str, list[_Item]] = defaultdict(list)
    for item in items:
        found[item.backfill].append(item)
    return found
