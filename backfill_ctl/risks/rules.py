"""The risk checks that need a plan: one function per check id of `CHECKS`. Pure.

Each returns findings located in the Backfill document, at the field that causes the
risk (groups, dates, timeWindow, select), so an annotation lands on the line to change.
Instance lists are samples (`SAMPLE` ids); messages give the full counts.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import TYPE_CHECKING

from backfill_ctl.core.schedules import analyse, zone
from backfill_ctl.errors import Diagnostic, PathPart
from backfill_ctl.risks import CHECKS
from backfill_ctl.spec.model import TimeWindow

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import date, datetime

    from backfill_ctl.core.planner import BackfillPlan, Plan
    from backfill_ctl.core.selection import Scope
    from backfill_ctl.spec.catalog import Catalog

SAMPLE = 20


def finding(
    bp: BackfillPlan,
    code: str,
    message: str,
    hint: str | None,
    *,
    path: tuple[PathPart, ...] = (),
    nodes: Iterable[str] = (),
    instances: Iterable[str] = (),
) -> Diagnostic:
    return Diagnostic.in_document(
        bp.backfill.origin,
        message,
        path=path,
        hint=hint,
        severity=CHECKS[code].severity,
        code=code,
        backfill=bp.name,
        nodes=tuple(nodes),
        instances=tuple(instances)[:SAMPLE],
    )


def listed(names: Sequence[str], most: int = 5) -> str:
    """a, b, c and 4 more."""
    shown = ", ".join(str(n) for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def plan_findings(plan: Plan, catalog: Catalog, max_instances: int) -> list[Diagnostic]:
    """Every plan-level risk of every planned backfill."""
    out: list[Diagnostic] = []
    for bp in plan.backfills:
        out += isolated_nodes(bp, catalog)
        out += isolated_instances(bp)
        out += targets_without_instances(bp, catalog)
        out += waiting_for_time(bp, plan.now)
        out += self_dependent_parallel(bp, catalog)
        out += self_dependent_descending(bp, catalog)
        out += too_many_instances(bp, max_instances)
        out += recurring_collisions(bp, catalog, plan.now)
    out += overlaps(plan.backfills)
    return out


def isolated_nodes(bp: BackfillPlan, catalog: Catalog) -> list[Diagnostic]:
    """Scope nodes no root reaches: the nodes below a root that was blocked and left out."""
    scope, sel = bp.scope, bp.backfill.select
    named = {sel.start} if sel.method == "link" and sel.start else set(sel.roots)
    reached = _reached(scope, _anchors(scope, catalog, named))
    isolated = [n for n in scope.nodes if n not in reached]
    if not isolated:
        return []
    cut = [r for r in scope.left_out if r in named]
    because = f" (blocked root: {listed(cut)})" if cut else ""
    return [
        finding(
            bp,
            "isolated-node",
            f"{len(isolated)} node(s) in scope are connected to no root of the backfill"
            f"{because}: {listed(isolated)}",
            "they run without their upstream being refreshed; unblock the root, or select "
            "these nodes as roots",
            path=("spec", "select"),
            nodes=isolated,
        )
    ]


def _anchors(scope: Scope, catalog: Catalog, named: set[str]) -> set[str]:
    """The named roots (or the link's start) in the scope, and the scope's sources that
    descend from a named root still in use (a root excluded with includeRoot: false was
    left out on purpose and still anchors its descendants)."""
    usable = named - set(scope.left_out)
    anchors = {n for n in scope.nodes if n in named}
    for node in scope.nodes:
        source = not scope.upstream[node] and node not in anchors
        if source and catalog.ancestors([node]) & usable:
            anchors.add(node)
    return anchors


def _reached(scope: Scope, anchors: set[str]) -> set[str]:
    reached, stack = set(anchors), list(anchors)
    while stack:
        for child in scope.downstream[stack.pop()]:
            if child not in reached:
                reached.add(child)
                stack.append(child)
    return reached


def isolated_instances(bp: BackfillPlan) -> list[Diagnostic]:
    """A node's instances for a date whose in-scope upstream produced no instance."""
    dates: dict[tuple[str, str], list[date]] = defaultdict(list)
    for x in bp.isolated:
        dates[x.node, x.upstream].append(x.bizdate)
    if not dates:
        return []
    wanted = {(node, day) for (node, _), days in dates.items() for day in days}
    ids: dict[tuple[str, date], list[str]] = defaultdict(list)
    for i in bp.instances:
        if (i.node, i.bizdate) in wanted:
            ids[i.node, i.bizdate].append(i.id)
    out = []
    for (node, upstream), days in sorted(dates.items()):
        out.append(
            finding(
                bp,
                "isolated-instance",
                f"{node} has no instance of its upstream {upstream} to wait for on "
                f"{len(days)} date(s) ({listed([str(d) for d in days], 3)}): it runs "
                "without that input",
                f"widen timeWindow to include a scheduled time of {upstream}, or check its "
                "effective period",
                path=("spec", "timeWindow")
                if bp.backfill.time_window != TimeWindow()
                else ("spec", "select"),
                nodes=(node, upstream),
                instances=[i for day in days for i in ids[node, day]],
            )
        )
    return out


def targets_without_instances(bp: BackfillPlan, catalog: Catalog) -> list[Diagnostic]:
    """Target nodes that plan no instance: what the Backfill names would not run.

    The planner leaves a node without instances for two reasons only: the timeWindow
    holds none of its scheduled times, or no scheduled day of the dates is in the node's
    effective period. Each reason is one finding, at the field that decides it.
    """
    planned = {i.node for i in bp.instances}
    scope = bp.scope
    missing = [n for n in scope.nodes if scope.roles[n] == "target" and n not in planned]
    if not missing:
        return []
    window = bp.backfill.time_window
    first: dict[str, str] = {}  # a node none of whose times is in the window: its first
    for name in missing:
        times = analyse(catalog.nodes[name].schedule).times
        if not any(t in window for t in times):
            first[name] = f"{times[0]:%H:%M}"
    outside = [n for n in missing if n not in first]
    none = "the Backfill plans no instance at all: " if not bp.instances else ""
    out = []
    if first:
        out.append(_outside_window(bp, first, none))
    if outside:
        out.append(_outside_period(bp, catalog, outside, none))
    return out


def _outside_window(bp: BackfillPlan, first: dict[str, str], none: str) -> Diagnostic:
    window = bp.backfill.time_window
    cut = list(first)
    return finding(
        bp,
        "target-without-instances",
        f"{none}{len(cut)} target node(s) have no instance, their scheduled times are "
        f"outside timeWindow {window.start:%H:%M}-{window.end:%H:%M}: "
        + listed([f"{n} ({first[n]})" for n in cut]),
        f"widen timeWindow to include {listed(sorted(set(first.values())))}, or select "
        "other targets",
        path=("spec", "timeWindow") if window != TimeWindow() else ("spec", "select"),
        nodes=cut,
    )


def _outside_period(
    bp: BackfillPlan, catalog: Catalog, outside: list[str], none: str
) -> Diagnostic:
    periods = [catalog.nodes[n].effective for n in outside]
    return finding(
        bp,
        "target-without-instances",
        f"{none}{len(outside)} target node(s) have no instance, no business date is "
        "scheduled (the day after) in their effective period: "
        + listed(
            [
                f"{n} ({p.start or '...'} to {p.end or '...'})"
                for n, p in zip(outside, periods, strict=True)
            ]
        ),
        "choose business dates whose next day is in the effective period, or select other targets",
        path=("spec", "dates"),
        nodes=outside,
    )


def waiting_for_time(bp: BackfillPlan, now: datetime) -> list[Diagnostic]:
    waiting = [i for i in bp.instances if i.wait_for_time]
    if not waiting:
        return []
    first = min(waiting, key=lambda i: i.cyctime)
    at = now.isoformat(timespec="minutes")
    return [
        finding(
            bp,
            "waiting-for-time",
            f"{len(waiting)} instance(s) are scheduled after now ({at}) and "
            f"wait for their time; the first at {first.cyctime:%Y-%m-%d %H:%M %z} "
            f"({first.node}, business date {first.bizdate})",
            "set runImmediately: true to run them now",
            path=("spec", "dates"),
            nodes=sorted({i.node for i in waiting}),
            instances=[i.id for i in waiting],
        )
    ]


def self_dependent_parallel(bp: BackfillPlan, catalog: Catalog) -> list[Diagnostic]:
    if len(bp.chunks) < 2:
        return []
    nodes = [n for n in bp.scope.nodes if catalog.nodes[n].self_dependent]
    if not nodes:
        return []
    return [
        finding(
            bp,
            "self-dependent-parallel",
            f"self-dependent node(s) {listed(nodes)} would run their {len(bp.dates)} dates in "
            f"{len(bp.chunks)} parallel groups: a date may start before the previous date of "
            "the same node finished",
            "set groups: 1, or backfill the self-dependent nodes in a Backfill of their own "
            "with groups: 1",
            path=("spec", "groups"),
            nodes=nodes,
        )
    ]


def self_dependent_descending(bp: BackfillPlan, catalog: Catalog) -> list[Diagnostic]:
    """A self-dependent node waits for its previous instance: newest first, it cannot."""
    if bp.backfill.order != "descending" or len(bp.dates) < 2:
        return []
    nodes = [n for n in bp.scope.nodes if catalog.nodes[n].self_dependent]
    if not nodes:
        return []
    return [
        finding(
            bp,
            "self-dependent-descending",
            f"self-dependent node(s) {listed(nodes)} would run their {len(bp.dates)} dates "
            "newest first (order: descending): each date runs before the previous date of "
            "the same node",
            "set order: ascending, or backfill the self-dependent nodes in a Backfill of "
            "their own with order: ascending",
            path=("spec", "order"),
            nodes=nodes,
        )
    ]


def too_many_instances(bp: BackfillPlan, limit: int) -> list[Diagnostic]:
    count = len(bp.instances)
    if count <= limit:
        return []
    return [
        finding(
            bp,
            "too-many-instances",
            f"{count} instances, more than the limit of {limit}: a backfill this large "
            "competes with the recurring runs for scheduling resources",
            "split it by dates or nodes, raise Config spec.checks.maxInstances, or accept "
            "the risk with checks.stopOnRisk: false",
            path=("spec", "dates"),
        )
    ]


def recurring_collisions(bp: BackfillPlan, catalog: Catalog, now: datetime) -> list[Diagnostic]:
    """Business date T-1 is what today's recurring instances process too."""
    yesterday: dict[str, date] = {}
    hits = []
    for i in bp.instances:
        if i.dry_run_reason is not None:
            continue
        tz = catalog.timezone(i.node)
        if tz not in yesterday:
            yesterday[tz] = now.astimezone(zone(tz)).date() - timedelta(days=1)
        if i.bizdate == yesterday[tz]:
            hits.append(i)
    if not hits:
        return []
    nodes = sorted({i.node for i in hits})
    days = sorted({str(i.bizdate) for i in hits})
    return [
        finding(
            bp,
            "recurring-collision",
            f"business date {listed(days)} is T-1: today's recurring instances of "
            f"{len(nodes)} node(s) process it too ({listed(nodes)}); the backfill may run at "
            "the same time as them",
            "let today's recurring run finish first (it has priority), or leave T-1 out of "
            "the backfill",
            path=("spec", "dates"),
            nodes=nodes,
            instances=[i.id for i in hits],
        )
    ]


def overlaps(backfills: Sequence[BackfillPlan]) -> list[Diagnostic]:
    """Backfills that would both really run one node for one business date.

    One pass over the (node, date) pairs each Backfill runs; one finding per Backfill,
    naming every other Backfill it overlaps with.
    """
    if len(backfills) < 2:
        return []
    owners: dict[tuple[str, date], set[int]] = defaultdict(set)
    for k, bp in enumerate(backfills):
        for i in bp.instances:
            if i.dry_run_reason is None:
                owners[i.node, i.bizdate].add(k)
    shared: dict[int, set[tuple[str, date]]] = defaultdict(set)
    others: dict[int, set[int]] = defaultdict(set)
    for key, ks in owners.items():
        if len(ks) > 1:
            for k in ks:
                shared[k].add(key)
                others[k] |= ks - {k}
    out = []
    for k in sorted(shared):
        bp, pairs = backfills[k], shared[k]
        names = sorted(backfills[o].name for o in others[k])
        node, day = min(pairs)
        what = (
            f"Backfill {names[0]}"
            if len(names) == 1
            else f"{len(names)} Backfills ({listed(names)})"
        )
        out.append(
            finding(
                bp,
                "overlap",
                f"overlaps {what} on {len(pairs)} node-date(s), e.g. {node} for {day}: the "
                "same partitions would be written twice",
                "remove the overlap from one of them, or merge them into one Backfill",
                path=("spec", "dates"),
                nodes=sorted({n for n, _ in pairs}),
                instances=[i.id for i in bp.instances if (i.node, i.bizdate) in pairs],
            )
        )
    return out
