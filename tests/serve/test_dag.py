"""The scope DAG of the backfill page: ranks and layout, and the picture of a store that
`apply` filled (a blocklisted and an unpermitted intermediate dry-run, a blocked leaf
left out), and of one save_apply filled with a hostile node name."""

from __future__ import annotations

import re
from pathlib import Path

from backfill_ctl.serve import dag
from backfill_ctl.serve.views import route
from backfill_ctl.state import open_store
from tests.builders import backfill, node
from tests.cli.helpers import run
from tests.serve.test_dashboard import HOSTILE
from tests.state.contract import AT, WHO, instance
from tests.state.contract import backfill as record
from tests.test_reliability import specs

BOX = re.compile(
    r'<a href="([^"]+)" class="([^"]*)" data-node="([^"]+)">.*?<rect class="s-([a-z-]+)"'
)


def boxes(html: str) -> dict[str, tuple[str, str, str]]:
    """node -> (link, classes of its box, its state)"""
    return {m[3]: (m[1], m[2], m[4]) for m in BOX.finditer(html)}


def test_nodes_are_ranked_by_their_longest_path_from_a_root() -> None:
    edges = {("a", "b"), ("b", "c"), ("a", "c"), ("c", "d"), ("x", "x"), ("zz", "a")}
    assert dag.ranks(["a", "b", "c", "d", "x"], edges) == {"a": 0, "b": 1, "c": 2, "d": 3, "x": 0}
    assert dag.ranks(["a", "b", "c"], {("a", "b"), ("b", "c"), ("c", "b")}) == {
        "a": 0,
        "b": 1,  # a cycle: after the rest
        "c": 1,
    }
    place, hidden = dag.layout(["d", "c", "b", "a", "x"], edges, limit=3)
    assert place == {"a": (0, 0), "x": (0, 1), "b": (1, 0)} and hidden == 2


def test_a_applied_scope_is_drawn_with_its_dry_runs_marked_as_the_pr_comment(
    tmp_path: Path,
) -> None:
    spec_dir = specs(
        tmp_path,
        node("src", resourceGroup="rg"),
        node("mid", upstream=["src"], resourceGroup="rg"),
        node("theirs", upstream=["src"], owners=("bob",), resourceGroup="rg"),
        node("out", upstream=["mid", "theirs"], resourceGroup="rg"),
        node("side", upstream=["src"], resourceGroup="rg"),
        backfill(
            select={"method": "descendants", "roots": ["src"], "block": ["mid", "side"]},
            dates=[{"from": "2024-03-01", "to": "2024-03-02"}],
        ),
    )
    db = tmp_path / "state.db"
    applied = run("apply", str(spec_dir), "--state", str(db), "--as", "alice")
    assert applied.exit_code == 0, applied.stdout + applied.stderr
    store = open_store(db, create=False)
    assert {(i.node, i.dry_run_reason) for i in store.instances()} == {
        ("src", None),
        ("mid", "blocklisted"),
        ("theirs", "no-permission"),
        ("out", None),
    }
    html = route(store, "/backfills/bf")[1].decode()
    found = boxes(html)
    assert found == {
        "src": ("/backfills/bf?node=src", "light", "pending"),
        "mid": ("/backfills/bf?node=mid", "light m-blocklisted", "pending"),
        "theirs": ("/backfills/bf?node=theirs", "light m-no-permission", "pending"),
        "out": ("/backfills/bf?node=out", "light", "pending"),
    }
    assert ">dry-run: blocklisted</text>" in html and ">dry-run: no-permission</text>" in html
    assert html.count("<path class=edge") == 4  # src -> mid, theirs -> out
    at = re.findall(r'data-node="(\w+)">.*?<rect class="[^"]*" x="(\d+)"', html)
    x = {n: float(m) for n, m in at}
    assert x["src"] < x["mid"] == x["theirs"] < x["out"]
    assert "<p>blocked, not in the scope: side</p>" in html
    filtered = route(store, "/backfills/bf?node=theirs")[1].decode()
    assert sorted(set(re.findall(r'data-cell="([^|"]+)\|', filtered))) == ["theirs"]


def test_a_big_scope_is_cut_and_says_how_much_is_left_out() -> None:
    names = [f"n{k:04d}" for k in range(2000)]
    edges = [(names[k - 1], names[k]) for k in range(1, 2000)]
    html = dag.dag("bf", names, edges, {}, {}, limit=40)
    assert len(boxes(html)) == 40 and "<p>and 1,960 more nodes</p>" in html
    assert html.count("<path class=edge") == 39


def test_a_hostile_node_name_is_text_in_the_picture() -> None:
    store = open_store("memory:")
    store.save_apply(
        [record()],
        [instance("i1", HOSTILE), instance("i2", "b", deps=("i1",))],
        [],
        [],
        at=AT,
        **WHO,
    )
    html = route(store, "/backfills/bf")[1].decode()
    picture = html.split("<h2>Scope</h2>", 1)[1]
    assert HOSTILE not in html
    escaped = "&lt;img src=x onerror=alert(1)&gt;"
    assert f'data-node="{escaped}"' in picture and ">&lt;img src=x onerror=aler…</text>" in picture
    assert 'href="/backfills/bf?node=%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E"' in picture
    assert dag.dag(HOSTILE, ["a"], [], {}, {"a": HOSTILE}, left_out=[HOSTILE]).count("<img") == 0
