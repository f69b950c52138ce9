"""The catalog: every node, its workspace, and the dependency graph between them.

Edges run upstream -> downstream, kept as plain adjacency lists (`succ`, `pred`, each
in the order the specs name them) built on first use; loops are found with two
iterative depth-first searches (strongly connected knots, then one cycle path each), so
validating specs needs no graph library. Unknown upstream names are not edges;
validation reports them.
"""

from __future__ import annotations

from collections import deque
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from backfill_ctl.spec.model import Node, ResourceGroup, Workspace


class Catalog:
    def __init__(
        self,
        nodes: Mapping[str, Node],
        workspaces: Mapping[str, Workspace],
        resource_groups: Mapping[str, ResourceGroup] | None = None,
    ) -> None:
        self.nodes = nodes
        self.workspaces = workspaces
        self.resource_groups = resource_groups or {}

    @cached_property
    def succ(self) -> dict[str, list[str]]:
        """Each node's downstream, in the order their specs name the edge."""
        down: dict[str, dict[str, None]] = {name: {} for name in self.nodes}
        for node in self.nodes.values():
            for up in node.upstream:
                if up in down:
                    down[up][node.name] = None
        return {name: list(children) for name, children in down.items()}

    @cached_property
    def pred(self) -> dict[str, list[str]]:
        """Each node's upstream that is in the catalog (repeats dropped)."""
        return {
            name: [up for up in dict.fromkeys(node.upstream) if up in self.nodes]
            for name, node in self.nodes.items()
        }

    def timezone(self, node: str) -> str:
        workspace = self.workspaces.get(self.nodes[node].workspace)
        return workspace.timezone if workspace else "UTC"

    def can_operate(self, actor: str, node: str) -> bool:
        """Owners of the node and operators of its workspace may operate it."""
        spec = self.nodes[node]
        if actor in spec.owners:
            return True
        workspace = self.workspaces.get(spec.workspace)
        return workspace is not None and actor in workspace.operators

    def operators_of(self, node: str) -> list[str]:
        spec = self.nodes[node]
        workspace = self.workspaces.get(spec.workspace)
        return sorted({*spec.owners, *(workspace.operators if workspace else ())})

    def descendants(self, roots: Iterable[str]) -> set[str]:
        """Every node below any of `roots` (roots themselves only if below another)."""
        return _reach(self.succ, roots)

    def ancestors(self, nodes: Iterable[str]) -> set[str]:
        return _reach(self.pred, nodes)

    def levels_below(self, roots: Iterable[str], depth: int) -> set[str]:
        """Descendants at most `depth` edges below the nearest root."""
        succ = self.succ
        frontier = set(roots)
        seen: set[str] = set()
        for _ in range(depth):
            frontier = {child for node in frontier for child in succ[node]} - seen
            seen |= frontier
        return seen

    def cycles(self) -> list[list[str]]:
        """One cycle path per strongly connected knot of the graph, first node repeated:
        from the knot's least node, the first loop a depth-first walk in edge order
        closes."""
        found: list[list[str]] = []
        for knot in _knots(self.nodes, self.succ, self.pred):
            if len(knot) == 1:
                (only,) = knot
                if only not in self.succ[only]:
                    continue
            path = _cycle_from(min(knot), self.succ, knot)
            found.append([*path, path[0]])
        return sorted(found)


def _knots(
    nodes: Iterable[str], succ: Mapping[str, list[str]], pred: Mapping[str, list[str]]
) -> list[set[str]]:
    """Strongly connected components (Kosaraju): the finishing order of a walk along
    the edges, then walks against them in reverse finishing order."""
    seen: set[str] = set()
    order: list[str] = []
    for root in nodes:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(succ[root]))]
        while stack:
            node, children = stack[-1]
            for child in children:
                if child not in seen:
                    seen.add(child)
                    stack.append((child, iter(succ[child])))
                    break
            else:
                stack.pop()
                order.append(node)
    assigned: set[str] = set()
    knots: list[set[str]] = []
    for root in reversed(order):
        if root in assigned:
            continue
        assigned.add(root)
        knot, todo = {root}, [root]
        while todo:
            for up in pred[todo.pop()]:
                if up not in assigned:
                    assigned.add(up)
                    knot.add(up)
                    todo.append(up)
        knots.append(knot)
    return knots


def _cycle_from(start: str, succ: Mapping[str, list[str]], knot: set[str]) -> list[str]:
    """The nodes of the first loop a depth-first walk from `start`, inside `knot`,
    following edges in order, closes (an edge back to a node on the current path)."""
    path = [start]
    where = {start: 0}  # position on the current path
    visited = {start}
    walks = [iter(succ[start])]
    while walks:
        for child in walks[-1]:
            if child not in knot:
                continue
            if child in where:
                return path[where[child] :]
            if child not in visited:
                visited.add(child)
                where[child] = len(path)
                path.append(child)
                walks.append(iter(succ[child]))
                break
        else:
            walks.pop()
            del where[path.pop()]
    return []  # not reached: every node of a knot lies on a loop


def _reach(adjacency: Mapping[str, Iterable[str]], sources: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    queue = deque(sources)
    while queue:
        for nxt in adjacency[queue.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen
