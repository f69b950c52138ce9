"""A backfill's scope as a layered DAG: inline SVG, written here (Mermaid's script is not
served: too big to vendor, and no CDN).

Nodes are ranked by their longest path from a root (a column per rank, left to right, as
the PR comment's `flowchart LR`); inside a column they follow the mean row of their
upstream, so that edges cross less. Each box is filled like the grid's cells with the
node's worst state (blocked included), marked as the PR comment's Mermaid graph marks
the scope (reports/mermaid.py): dry-run nodes dashed, grey when blocklisted, amber
without permission; blocked nodes outside the scope are named apart. A box links to the
grid filtered by its node. Past `limit` nodes (in run order) the rest is counted, not
drawn, as mermaid.flowchart does.

Pure: a function of the scope's nodes, edges, states and dry-run reasons (the server
reads them from the store). No script, no style attribute: the page's stylesheet (STYLE)
colours the classes.
"""

from __future__ import annotations

from collections import defaultdict
from html import escape
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping, Sequence

    from backfill_ctl.core.records import InstanceRecord

STYLE = """
.dag a rect{fill:#ccc;stroke:#555;stroke-width:1}.dag a text{fill:#fff}
.dag a:hover rect{stroke-width:2.5}.dag .edge{fill:none;stroke:#999;stroke-width:1.2}
.dag a rect.s-succeeded{fill:#2e7d32}.dag a rect.s-failed{fill:#c62828}
.dag a rect.s-running{fill:#1565c0}.dag a rect.s-frozen{fill:#6a1b9a}
.dag a rect.s-cancelled{fill:#616161}.dag a rect.s-pending{fill:#bdbdbd}
.dag a rect.s-waiting-for-upstream,.dag a rect.s-waiting-for-time,
.dag a rect.s-waiting-for-resources{fill:#f9a825}.dag a rect.s-blocked{fill:url(#hatch)}
.dag a.light text{fill:#222;paint-order:stroke;stroke:#fff;stroke-width:3px}
.dag a.m-blocklisted rect{fill:#eeeeee;stroke:#999;stroke-dasharray:5 5}
.dag a.m-blocklisted text{fill:#666}
.dag a.m-no-permission rect,.dag a.m-dry-run rect{fill:#fff4d6;stroke-dasharray:5 5}
.dag a.m-no-permission text,.dag a.m-dry-run text{fill:#222}
"""
LIMIT = 40  # nodes drawn, as mermaid.flowchart's default
BOX_W, BOX_H = 170, 34  # px
GAP_X, GAP_Y = 50, 10  # px between columns, between boxes
NAME_CHARS = 24  # a longer name is cut (with "…") in its box; whole in its title
# States whose fill is light: the box's text is dark on them.
LIGHT = frozenset(
    {"pending", "blocked", "waiting-for-upstream", "waiting-for-time", "waiting-for-resources"}
)
DEFS = (
    '<defs><pattern id=hatch width="5" height="5" patternUnits="userSpaceOnUse" '
    'patternTransform="rotate(45)"><rect width="5" height="5" fill="#ffcdd2" stroke="none"/>'
    '<rect width="2" height="5" fill="#c62828" stroke="none"/></pattern>'
    '<marker id=arrow viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" '
    'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#999"/></marker></defs>'
)


def drawn_from(
    instances: Iterable[InstanceRecord], node_reasons: Collection[str]
) -> tuple[set[tuple[str, str]], dict[str, str]]:
    """The node-level edges (upstream, node) of instances (of one date: their
    dependencies on other dates are not among them) and the nodes' dry-run reasons of
    `node_reasons` (those the plan decides per node, not per date)."""
    found = list(instances)
    node_of = {i.id: i.node for i in found}
    edges = {(node_of[d], i.node) for i in found for d in i.depends_on if d in node_of}
    marks = {
        i.node: i.dry_run_reason
        for i in found
        if i.dry_run_reason is not None and i.dry_run_reason in node_reasons
    }
    return edges, marks


def ranks(nodes: Sequence[str], edges: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Each node's longest path from a root (a node with no upstream among `nodes`). The
    nodes of a cycle (a risk check reports it) come after all others."""
    known = set(nodes)
    down: dict[str, set[str]] = defaultdict(set)
    indegree = dict.fromkeys(nodes, 0)
    for up, node in set(edges):
        if up in known and node in known and up != node:
            down[up].add(node)
            indegree[node] += 1
    rank = dict.fromkeys(nodes, 0)
    ready = [n for n in nodes if not indegree[n]]
    while ready:
        up = ready.pop()
        for node in down[up]:
            rank[node] = max(rank[node], rank[up] + 1)
            indegree[node] -= 1
            if not indegree[node]:
                ready.append(node)
    cyclic = [n for n in nodes if indegree[n]]
    after = max((rank[n] for n in nodes if not indegree[n]), default=-1) + 1
    return {**rank, **dict.fromkeys(cyclic, after)}


def layout(
    nodes: Sequence[str], edges: Iterable[tuple[str, str]], limit: int = LIMIT
) -> tuple[dict[str, tuple[int, int]], int]:
    """(column, row) of the first `limit` nodes in run order (rank, then name), and how
    many were left out."""
    edges = set(edges)
    rank = ranks(nodes, edges)
    shown = sorted(nodes, key=lambda n: (rank[n], n))[:limit]
    ups: dict[str, list[str]] = defaultdict(list)
    for up, node in edges:
        ups[node].append(up)
    place: dict[str, tuple[int, int]] = {}
    for column in sorted({rank[n] for n in shown}):
        members = [n for n in shown if rank[n] == column]

        def mean_row(n: str) -> float:
            rows = [place[u][1] for u in ups[n] if u in place]
            return sum(rows) / len(rows) if rows else float("inf")

        for row, n in enumerate(sorted(members, key=lambda n: (mean_row(n), n))):
            place[n] = (column, row)
    return place, len(nodes) - len(shown)


def dag(
    backfill: str,
    nodes: Sequence[str],
    edges: Iterable[tuple[str, str]],
    states: Mapping[str, str],
    marks: Mapping[str, str],
    *,
    left_out: Sequence[str] = (),
    limit: int = LIMIT,
) -> str:
    """The section of the backfill page. `states`: each node's worst state as the grid
    shows it; `marks`: its dry-run reason (blocklisted, no-permission), as the plan
    decided and the instances record; `left_out`: blocked nodes not in the scope."""
    if not nodes:
        return ""
    edges = set(edges)
    place, hidden = layout(nodes, edges, limit)
    columns = 1 + max(c for c, _ in place.values())
    rows = 1 + max(r for _, r in place.values())
    width = columns * (BOX_W + GAP_X) - GAP_X + 2
    height = rows * (BOX_H + GAP_Y) - GAP_Y + 2
    lines = [_edge(place[u], place[n]) for u, n in sorted(edges) if u in place and n in place]
    boxes = [_box(backfill, n, at, states.get(n, "none"), marks.get(n)) for n, at in place.items()]
    more = f"<p>and {hidden:,} more node{'' if hidden == 1 else 's'}</p>" if hidden else ""
    apart = f"<p>blocked, not in the scope: {escape(', '.join(left_out))}</p>" if left_out else ""
    return (
        "<h2>Scope</h2>"
        f'<svg class=dag role=img aria-label="the scope of {escape(backfill)}" width="{width}" '
        f'height="{height}" viewBox="-1 -1 {width} {height}">'
        f"{DEFS}{''.join(lines)}{''.join(boxes)}</svg>{more}{apart}"
        "<p class=legend>filled as the grid (the worst state of its cells); dashed: dry-run "
        "(grey: blocklisted, amber: no permission); a box shows its node's rows</p>"
    )


def _xy(at: tuple[int, int]) -> tuple[int, int]:
    column, row = at
    return column * (BOX_W + GAP_X), row * (BOX_H + GAP_Y)


def _edge(up: tuple[int, int], down: tuple[int, int]) -> str:
    (x1, y1), (x2, y2) = _xy(up), _xy(down)
    x1, y1, y2 = x1 + BOX_W, y1 + BOX_H // 2, y2 + BOX_H // 2
    bend = (x2 - x1) / 2
    return (
        f'<path class=edge marker-end="url(#arrow)" '
        f'd="M {x1} {y1} C {x1 + bend:.0f} {y1}, {x2 - bend:.0f} {y2}, {x2} {y2}"/>'
    )


def _box(backfill: str, node: str, at: tuple[int, int], state: str, mark: str | None) -> str:
    x, y = _xy(at)
    name = node if len(node) <= NAME_CHARS else node[: NAME_CHARS - 1] + "…"
    classes = ("light " if state in LIGHT else "") + (f"m-{mark}" if mark else "")
    title = f"{node}: {state}" + (f" · dry-run: {mark}" if mark else "")
    second = f'<text x="{x + 8}" y="{y + 28}">dry-run: {escape(mark)}</text>' if mark else ""
    first_y = y + (15 if mark else 21)
    href = f"/backfills/{quote(backfill)}?node={quote(node)}"
    return (
        f'<a href="{escape(href)}" class="{escape(classes.strip())}"'
        f' data-node="{escape(node)}"><title>{escape(title)}</title>'
        f'<rect class="s-{escape(state)}" x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="4"/>'
        f'<text x="{x + 8}" y="{first_y}">{escape(name)}</text>{second}</a>'
    )
