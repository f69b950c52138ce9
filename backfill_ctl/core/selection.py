"""Which nodes a backfill covers, and in which role (DESIGN §3 select, §5.2). Pure.

`select()` turns a Backfill's `select` block into a `Scope`:

1. the candidate nodes of the method (manual, link, workspace, descendants);
2. blocked nodes: an *intermediate* one (in-scope upstream and downstream) stays as
   a dry-run so its descendants keep their order; any other is left out (repeatedly);
3. in-scope dependencies, *bridged* through out-of-scope nodes: with a -> x -> c and
   only a and c in scope, c still depends on a;
4. roles: nodes named in the spec (roots, start, ends, chosen descendants, allow)
   and nodes at the edge of the scope are *targets*; the rest are intermediates;
5. permissions of the actor: no permission on a target is an error (the backfill
   cannot run); on an intermediate, the node is dry-run with a warning.

Problems are returned as diagnostics pointing into the Backfill document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from backfill_ctl.errors import Diagnostic, PathPart, did_you_mean

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from backfill_ctl.spec.catalog import Catalog
    from backfill_ctl.spec.model import Backfill, Limits

Role = Literal["target", "intermediate"]
DryRunReason = Literal["blocklisted", "no-permission", "not-scheduled-day"]


@dataclass(frozen=True)
class Scope:
    """The nodes a Backfill selects, in dependency order, with their roles."""

    nodes: tuple[str, ...]  # topological order, ties broken by name
    upstream: Mapping[str, tuple[str, ...]]  # in-scope upstream of each node (bridged)
    downstream: Mapping[str, tuple[str, ...]]
    roles: Mapping[str, Role]
    dry_run: Mapping[str, DryRunReason] = field(default_factory=dict)
    left_out: tuple[str, ...] = ()  # blocked nodes that are not intermediates

    def __len__(self) -> int:
        return len(self.nodes)


class _Selector:
    def __init__(self, catalog: Catalog, backfill: Backfill) -> None:
        self.catalog = catalog
        self.backfill = backfill
        self.diagnostics: list[Diagnostic] = []

    def report(
        self,
        path: tuple[PathPart, ...],
        message: str,
        hint: str | None = None,
        *,
        code: str,
        severity: Literal["error", "warning"] = "error",
        nodes: tuple[str, ...] = (),
    ) -> None:
        self.diagnostics.append(
            Diagnostic.in_document(
                self.backfill.origin,
                message,
                path=("spec", "select", *path),
                hint=hint,
                severity=severity,
                code=code,
                backfill=self.backfill.name,
                nodes=nodes,
            )
        )

    def failed(self) -> bool:
        return any(d.is_error for d in self.diagnostics)

    def known(self, field_name: str, names: Sequence[str], *, single: bool = False) -> None:
        for i, name in enumerate(names):
            if name not in self.catalog.nodes:
                hint = did_you_mean(name, self.catalog.nodes) or "add a Node with that name"
                path: tuple[PathPart, ...] = (field_name,) if single else (field_name, i)
                self.report(path, f"unknown node {name!r}", hint, code="unknown-node")

    def below_roots(
        self, field_name: str, names: Sequence[str], roots: Sequence[str], below: set[str]
    ) -> None:
        for i, name in enumerate(names):
            if name in self.catalog.nodes and name not in below and name not in roots:
                self.report(
                    (field_name, i),
                    f"{name!r} is not a descendant of the roots ({', '.join(roots)})",
                    "name only nodes downstream of a root, or add it to roots",
                    code="not-descendant",
                )

    # -- candidates of each method ---------------------------------------------

    def candidates(self) -> tuple[set[str], set[str]]:
        """(candidate nodes, nodes named in the spec)."""
        sel = self.backfill.select
        if sel.method == "link":
            return self._link()
        roots = set(sel.roots)
        below = self.catalog.descendants(roots)
        if sel.method == "descendants":
            return roots | below, roots
        if sel.method == "manual":
            return self._manual(roots, below)
        return self._workspace(roots, below)

    def _link(self) -> tuple[set[str], set[str]]:
        sel = self.backfill.select
        assert sel.start is not None
        below = self.catalog.descendants([sel.start])
        for i, end in enumerate(sel.ends):
            if end not in below and end != sel.start:
                self.report(
                    ("ends", i),
                    f"end {end!r} is not reachable from start {sel.start!r}",
                    "pick an end downstream of the start, or a start upstream of every end",
                    code="unreachable-end",
                    nodes=(end,),
                )
        if self.failed():
            return set(), set()
        between = below & self.catalog.ancestors(sel.ends)
        named = {sel.start, *sel.ends}
        return between | named, named

    def _manual(self, roots: set[str], below: set[str]) -> tuple[set[str], set[str]]:
        sel = self.backfill.select
        if sel.descendants is None:
            return set(roots), set(roots)
        if isinstance(sel.descendants, int):
            return roots | self.catalog.levels_below(roots, sel.descendants), set(roots)
        self.below_roots("descendants", sel.descendants, sel.roots, below)
        chosen = set(sel.descendants) & below
        return roots | chosen, roots | chosen

    def _workspace(self, roots: set[str], below: set[str]) -> tuple[set[str], set[str]]:
        sel = self.backfill.select
        self.below_roots("allow", sel.allow, sel.roots, below)
        wanted = set(sel.workspaces)
        by_workspace = {n for n in below if self.catalog.nodes[n].workspace in wanted}
        for i, ws in enumerate(sel.workspaces):
            if not any(self.catalog.nodes[n].workspace == ws for n in below):
                self.report(
                    ("workspaces", i),
                    f"workspace {ws!r} holds no descendant of the roots",
                    "remove it, or check the roots",
                    code="empty-workspace",
                    severity="warning",
                )
        allowed = set(sel.allow) & below
        base = roots if sel.include_root else set()
        return base | by_workspace | allowed, base | allowed

    # -- the steps of `select` ---------------------------------------------------

    def names(self, limits: Limits) -> None:
        """Every node the spec names exists; not too many roots."""
        sel = self.backfill.select
        if sel.method == "link":
            self.known("start", [sel.start] if sel.start else [], single=True)
            self.known("ends", sel.ends)
        else:
            self.known("roots", sel.roots)
        if isinstance(sel.descendants, tuple):
            self.known("descendants", sel.descendants)
        self.known("allow", sel.allow)
        self.known("block", sel.block)
        if len(sel.roots) > limits.max_roots:
            self.report(
                ("roots",),
                f"{len(sel.roots)} roots, more than the limit of {limits.max_roots}",
                "split the backfill, or raise Config spec.limits.maxRoots",
                code="too-many-roots",
            )

    def blocked(self, candidates: set[str], left_out: list[str]) -> dict[str, DryRunReason]:
        """The dry-run reason of the blocked nodes kept (intermediates: see `_leave_out`),
        with a warning each; a warning for each blocked node that is no candidate."""
        sel = self.backfill.select
        blocked = set(sel.block)
        for i, name in enumerate(sel.block):
            if name not in candidates:
                self.report(
                    ("block", i),
                    f"blocked node {name!r} is not in the scope; blocking it has no effect",
                    "remove it from block",
                    code="block-unused",
                    nodes=(name,),
                    severity="warning",
                )
        dry_run: dict[str, DryRunReason] = {}
        for name in sorted(blocked & candidates - set(left_out)):
            dry_run[name] = "blocklisted"
            self.report(
                ("block", sel.block.index(name)),
                f"blocked node {name!r} is an intermediate node: it is dry-run, and its "
                "descendants may read missing data",
                "unblock it, or also leave out its descendants",
                code="dry-run-intermediate",
                nodes=(name,),
                severity="warning",
            )
        return dry_run

    def sized(self, scope_nodes: set[str], limits: Limits) -> bool:
        """Is the scope neither empty nor over the limit? (Reports which.)"""
        if len(scope_nodes) > limits.max_nodes:
            self.report(
                (),
                f"the scope holds {len(scope_nodes)} nodes, more than the limit of "
                f"{limits.max_nodes}",
                "narrow the selection, or raise Config spec.limits.maxNodes",
                code="too-many-nodes",
            )
            return False
        if not scope_nodes:
            self.report(
                (),
                "the selection holds no node",
                "check the roots, workspaces and block list",
                code="empty-scope",
            )
            return False
        return True


def select(
    catalog: Catalog, backfill: Backfill, limits: Limits, actor: str | None
) -> tuple[Scope | None, list[Diagnostic]]:
    """The scope of `backfill`, or None when an error makes it unusable."""
    s = _Selector(catalog, backfill)
    s.names(limits)
    if s.failed():
        return None, s.diagnostics

    candidates, named = s.candidates()
    if s.failed():
        return None, s.diagnostics
    left_out, scope_nodes, up = _leave_out(catalog, candidates, set(backfill.select.block))
    down = _invert(up)
    dry_run = s.blocked(candidates, left_out)
    if not s.sized(scope_nodes, limits):
        return None, s.diagnostics

    roles: dict[str, Role] = {
        n: "intermediate" if up[n] and down[n] and n not in named else "target" for n in scope_nodes
    }
    if actor is not None:
        _permissions(s, catalog, actor, roles, dry_run)
    if s.failed():
        return None, s.diagnostics
    order = _topological(scope_nodes, up)
    if order is None:
        s.report(
            (),
            "the scope contains a dependency loop",
            "see the loop reported for the catalog and break it",
            code="dependency-loop",
        )
        return None, s.diagnostics
    return Scope(tuple(order), up, down, roles, dry_run, tuple(left_out)), s.diagnostics


def _leave_out(
    catalog: Catalog, candidates: set[str], blocked: set[str]
) -> tuple[list[str], set[str], dict[str, tuple[str, ...]]]:
    """The blocked nodes left out (sorted), the scope without them and its bridged upstream.
    A blocked node stays (dry-run) only as an intermediate, with in-scope upstream and
    downstream. Leaving one out can make another a source or a leaf (b between a and c,
    with a or c blocked too): repeated until every blocked node kept is an intermediate."""
    scope = set(candidates)
    up = bridged_upstream(catalog, scope)
    left_out: set[str] = set()
    while True:
        down = _invert(up)
        edge = {n for n in blocked & scope if not (up[n] and down[n])}
        if not edge:
            return sorted(left_out), scope, up
        left_out |= edge
        scope -= edge
        up = bridged_upstream(catalog, scope)


def _permissions(
    s: _Selector,
    catalog: Catalog,
    actor: str,
    roles: Mapping[str, Role],
    dry_run: dict[str, DryRunReason],
) -> None:
    for name in sorted(roles):
        if name in dry_run or catalog.can_operate(actor, name):
            continue
        who = ", ".join(catalog.operators_of(name)) or "nobody"
        if roles[name] == "target":
            s.report(
                (),
                f"{actor!r} may not operate target node {name!r} (allowed: {who}); the "
                "backfill cannot run",
                "ask one of them to own the backfill, or add "
                f"{actor!r} to the node's owners or its workspace's operators",
                code="no-permission-target",
                nodes=(name,),
            )
        else:
            dry_run[name] = "no-permission"
            s.report(
                (),
                f"{actor!r} may not operate intermediate node {name!r} (allowed: {who}): "
                "it is dry-run, and its descendants may read missing data",
                f"ask one of them to run this backfill, or to add {actor!r} as an owner",
                code="no-permission-intermediate",
                nodes=(name,),
                severity="warning",
            )


def bridged_upstream(catalog: Catalog, scope: set[str]) -> dict[str, tuple[str, ...]]:
    """In-scope upstream of each scope node, looking through out-of-scope nodes."""
    pred = catalog.pred
    # Only out-of-scope nodes on a path between two scope nodes can bridge.
    bridge = (catalog.descendants(scope) & catalog.ancestors(scope)) - scope
    nearest: dict[str, frozenset[str]] = {}

    def through(node: str) -> frozenset[str]:
        # Iterative post-order: a long chain of bridge nodes must not hit the recursion limit.
        stack = [node]
        on_stack = {node}
        while stack:
            current = stack[-1]
            pending = [
                p for p in pred[current] if p in bridge and p not in nearest and p not in on_stack
            ]
            if pending:  # (on_stack also keeps a loop in the catalog from spinning forever)
                stack.extend(pending)
                on_stack.update(pending)
                continue
            stack.pop()
            on_stack.discard(current)
            if current not in nearest:
                found: set[str] = set()
                for p in pred[current]:
                    if p in scope:
                        found.add(p)
                    elif p in nearest:
                        found |= nearest[p]
                nearest[current] = frozenset(found)
        return nearest[node]

    result: dict[str, tuple[str, ...]] = {}
    for node in scope:
        found: set[str] = set()
        for p in pred[node]:
            if p in scope:
                found.add(p)
            elif p in bridge:
                found |= through(p)
        result[node] = tuple(sorted(found))
    return result


def _invert(up: Mapping[str, Iterable[str]]) -> dict[str, tuple[str, ...]]:
    down: dict[str, list[str]] = {n: [] for n in up}
    for node, parents in up.items():
        for parent in parents:
            down[parent].append(node)
    return {n: tuple(sorted(children)) for n, children in down.items()}


def _topological(nodes: set[str], up: Mapping[str, tuple[str, ...]]) -> list[str] | None:
    """The nodes in dependency order, the least name first among those ready (Kahn's
    algorithm with a heap); None if they loop."""
    import heapq

    waiting = {n: len(set(up[n])) for n in nodes}
    down: dict[str, list[str]] = {n: [] for n in nodes}
    for n in nodes:
        for parent in set(up[n]):
            down[parent].append(n)
    ready = [n for n, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        node = heapq.heappop(ready)
        order.append(node)
        for child in down[node]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, child)
    return order if len(order) == len(nodes) else None
