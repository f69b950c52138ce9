"""The catalog: every node, its workspace, and the dependency graph between them.

Edges run upstream -> downstream. The graph is a networkx DiGraph built on first
use, so commands that never walk it (schema, explain, --version) do not import
networkx. Unknown upstream names are not edges; validation reports them.
"""

from __future__ import annotations

from collections import deque
from functools import cached_property
from typing import TYPE_CHECKING, Any

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
    def graph(self) -> Any:  # networkx.DiGraph
        import networkx as nx

        graph = nx.DiGraph()
        graph.add_nodes_from(self.nodes)
        graph.add_edges_from(
            (up, node.name)
            for node in self.nodes.values()
            for up in node.upstream
            if up in self.nodes
        )
        return graph

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
        return _reach(self.graph.succ, roots)

    def ancestors(self, nodes: Iterable[str]) -> set[str]:
        return _reach(self.graph.pred, nodes)

    def levels_below(self, roots: Iterable[str], depth: int) -> set[str]:
        """Descendants at most `depth` edges below the nearest root."""
        succ = self.graph.succ
        frontier = set(roots)
        seen: set[str] = set()
        for _ in range(depth):
            frontier = {child for node in frontier for child in succ[node]} - seen
            seen |= frontier
        return seen

    def cycles(self) -> list[list[str]]:
        """One cycle path per strongly connected knot of the graph, first node repeated."""
        import networkx as nx

        if nx.is_directed_acyclic_graph(self.graph):
            return []  # the common case, three times cheaper than the components
        found: list[list[str]] = []
        for component in nx.strongly_connected_components(self.graph):
            if len(component) == 1:
                (only,) = component
                if not self.graph.has_edge(only, only):
                    continue
            start = min(component)
            edges = nx.find_cycle(self.graph.subgraph(component), source=start)
            path = [edge[0] for edge in edges]
            found.append([*path, path[0]])
        return sorted(found)


def _reach(adjacency: Mapping[str, Iterable[str]], sources: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    queue = deque(sources)
    while queue:
        for nxt in adjacency[queue.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen
