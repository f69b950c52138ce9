"""Paths in, Specs out (spec.loader): every document read, checked and built; the digest."""

from __future__ import annotations

import copy
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backfill_ctl.errors import Diagnostic, UsageError
from backfill_ctl.spec.loader import Specs, load_files, load_specs
from backfill_ctl.spec.source import SourceFile
from tests.builders import (
    backfill,
    config,
    dump,
    node,
    resource_group,
    specs_of,
    workspace,
    write,
)


def load(**files: str) -> Specs:
    return load_files([SourceFile(name, text) for name, text in files.items()])


def formatted(specs: Specs) -> list[str]:
    return [d.format() for d in specs.sources.locate(specs.diagnostics)]


# -- duplicates ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "doc", "table"),
    [
        ("Workspace", workspace("w"), "workspaces"),
        ("ResourceGroup", resource_group("w"), "resource_groups"),
        ("Node", node("w"), "nodes"),
        ("Backfill", backfill("w"), "backfills"),
    ],
)
def test_duplicate_name_is_reported_at_the_second_definition(
    kind: str, doc: dict[str, Any], table: str
) -> None:
    first = dump(workspace("other"), doc)  # the first definition is the second document
    specs = load(**{"a.yaml": first, "b.yaml": dump(doc)})
    assert formatted(specs) == [
        f"b.yaml:4:3: error: $.metadata.name: {kind} 'w' is already defined at a.yaml:"
        f"{first.splitlines().index('---') + 2}\n  hint: rename one of them"
    ]
    assert specs.diagnostics[0].code == "duplicate"
    # the first definition is kept
    assert getattr(specs, table)["w"].origin.file == "a.yaml"


def test_duplicate_in_the_same_file() -> None:
    specs = specs_of(node("a"), node("b"), node("a", schedule="0 3 * * *"))
    assert [(d.doc, d.message) for d in specs.diagnostics] == [
        (2, "Node 'a' is already defined at specs.yaml:1")
    ]
    assert specs.nodes["a"].schedule == "0 2 * * *"


def test_the_same_name_in_different_kinds_is_not_a_duplicate() -> None:
    specs = specs_of(workspace("x"), resource_group("x"), node("x", workspace="x"), backfill("x"))
    assert specs.diagnostics == []
    assert (
        specs.workspaces["x"].name,
        specs.resource_groups["x"].name,
        specs.nodes["x"].name,
        specs.backfills["x"].name,
    ) == ("x", "x", "x", "x")


# -- errors do not stop loading ------------------------------------------------------


def test_a_document_with_schema_errors_in_fields_others_do_not_read_is_built_without_them() -> None:
    """Such a field is left out (it takes its default): the document's own checks run, and
    the others may refer to it. Its errors still stand: nothing is planned from it."""
    specs = specs_of(
        node("bad", "0 2 * *", priority=2),
        node("good", upstream=["bad"]),
        backfill(order="sideways", grups=2, dates=[{"from": "2024-03-05", "to": "2024-03-01"}]),
    )
    assert [(d.doc, d.path, d.code) for d in specs.diagnostics] == [
        (0, ("spec", "priority"), "schema"),
        (0, ("spec", "schedule"), "bad-cron"),
        (2, ("spec", "grups"), "schema"),
        (2, ("spec", "order"), "schema"),
        (2, ("spec", "dates", 0), "invalid"),
    ]
    assert list(specs.nodes) == ["bad", "good"]
    assert (specs.nodes["bad"].priority, specs.backfills["bf"].order) == (1, "ascending")
    assert specs.removed == {
        ("specs.yaml", 0): (("spec", "priority"),),
        ("specs.yaml", 2): (("spec", "grups"), ("spec", "order")),
    }
    assert specs.broken == {}


@pytest.mark.parametrize(
    ("doc", "error", "removed"),
    [
        (node("a", "0 2 * *", ["b", "no way"]), ("spec", "upstream", 1), ("spec", "upstream")),
        (node("a", "0 2 * *", parameters={"pt": 1}), ("spec", "parameters", "pt"), None),
        (node("a", "0 2 * *", owners=("",)), ("metadata", "owners", 0), ("metadata", "owners")),
    ],
)
def test_a_node_without_a_field_others_read_is_checked_but_held_back(
    doc: dict[str, Any], error: tuple[Any, ...], removed: tuple[str, ...] | None
) -> None:
    """Its upstream, owners or parameters decide other documents' checks: a scope through
    it, or an override of its parameters, would be made up. Its own checks still run."""
    specs = specs_of(workspace(), doc, node("b"))
    assert [(d.path, d.code) for d in specs.diagnostics] == [
        (error, "schema"),
        (("spec", "schedule"), "bad-cron"),
    ]
    assert specs.removed == {("specs.yaml", 1): (removed or error,)}
    assert list(specs.nodes) == ["b"]
    assert [n.name for n in specs.held_back] == ["a"]
    assert specs.broken == {("Node", "a"): "specs.yaml:9"}


def test_a_workspace_without_its_operators_is_held_back() -> None:
    specs = specs_of(workspace("w", "Mars/Base", operators=("",)), node("a", workspace="w"))
    assert [d.code for d in specs.diagnostics] == ["schema", "bad-timezone"]
    assert (specs.workspaces, specs.broken) == ({}, {("Workspace", "w"): "specs.yaml:1"})


def test_a_wrong_required_field_no_other_check_reads_has_a_stand_in() -> None:
    """A Backfill's dates or selection, a node's command or schedule: the rest of the
    document is checked, and what reads the field is skipped (core.semantics)."""
    specs = specs_of(
        workspace(),
        node("a", "0 2 * *", command=["sleep", 5]),
        node("b", 5),
        backfill(dates=["2024-3-1"], order="up"),
        backfill(
            "bf2",
            {"method": "descendents", "roots": ["a"]},
            [{"from": "2024-03-02", "to": "2024-03-01"}],
        ),
    )
    assert [(d.doc, d.path, d.code) for d in specs.diagnostics] == [
        (1, ("spec", "run", "command", 1), "schema"),
        (1, ("spec", "schedule"), "bad-cron"),
        (2, ("spec", "schedule"), "schema"),
        (3, ("spec", "order"), "schema"),
        (3, ("spec", "dates", 0), "schema"),
        (4, ("spec", "select", "method"), "schema"),
        (4, ("spec", "dates", 0), "invalid"),
    ]
    assert specs.removed == {
        ("specs.yaml", 1): (("spec", "run", "command"),),
        ("specs.yaml", 2): (("spec", "schedule"),),
        ("specs.yaml", 3): (("spec", "dates"), ("spec", "order")),
        ("specs.yaml", 4): (("spec", "select"),),
    }
    assert (list(specs.nodes), list(specs.backfills)) == (["a", "b"], ["bf", "bf2"])


@pytest.mark.parametrize(
    "doc",
    [
        workspace() | {"metadata": {"name": "-bad"}},
        workspace() | {"apiVersion": "backfillctl.dev/v2"},
        node("a", workspace="no way"),
        node("a") | {"spec": "0 2 * * *"},
    ],
)
def test_a_document_whose_identity_is_wrong_is_not_built(doc: dict[str, Any]) -> None:
    specs = specs_of(doc)
    assert [d.code for d in specs.diagnostics] == ["schema"]
    assert (specs.nodes, specs.workspaces, specs.removed) == ({}, {}, {})


def test_a_duplicate_of_a_document_built_without_a_field_is_reported() -> None:
    specs = specs_of(node("a", priority=2), node("a"))
    assert [(d.path, d.code) for d in specs.diagnostics] == [
        (("spec", "priority"), "schema"),
        (("metadata", "name"), "duplicate"),
    ]
    assert specs.nodes["a"].origin.doc == 0


def test_a_syntax_error_in_one_file_does_not_stop_the_others() -> None:
    specs = load(**{"a.yaml": dump(node("a")) + "---\nb: [\n", "b.yaml": dump(node("b"))})
    assert list(specs.nodes) == ["a", "b"]
    assert [d.code for d in specs.diagnostics] == ["yaml-syntax"]
    assert specs.files == 2


def test_errors_of_every_file_in_one_run() -> None:
    specs = load(
        **{
            "a.yaml": dump(backfill(grups=2)),
            "b.yaml": dump(workspace(timezone="Nowhere/Land")),
            "c.yaml": dump(resource_group()) + "kind: ResourceGroup\n",
        }
    )
    assert [(d.file, d.line, d.code) for d in specs.sources.locate(specs.diagnostics)] == [
        ("a.yaml", 12, "schema"),
        ("b.yaml", 6, "bad-timezone"),
        ("c.yaml", 8, "yaml"),
    ]
    assert len(specs.errors) == 3


def test_errors_leaves_out_warnings() -> None:
    specs = specs_of(backfill(grups=2))
    specs.diagnostics.append(Diagnostic("a warning", severity="warning"))
    assert specs.errors == specs.diagnostics[:1]


# -- empty documents -----------------------------------------------------------------


def test_empty_documents_are_skipped() -> None:
    text = "---\n# only a comment\n---\n" + dump(node("a")) + "...\n---\n---\n"
    specs = load(**{"a.yaml": text, "empty.yaml": "", "comments.yaml": "# nothing\n"})
    assert specs.diagnostics == []
    assert [(d.index, d.line) for d in specs.documents] == [(1, 4)]
    assert specs.nodes["a"].origin.line == 4
    assert specs.files == 3


def test_a_null_document_is_not_an_error_but_a_scalar_is() -> None:
    specs = load(**{"a.yaml": "--- null\n--- ~\n--- 42\n"})
    assert [(d.doc, d.message) for d in specs.diagnostics] == [
        (2, "a document must be a mapping, not a scalar")
    ]


# -- load_specs ----------------------------------------------------------------------


def test_load_specs_from_a_directory_and_stdin(tmp_path: Path) -> None:
    write(tmp_path / "catalog/ws.yaml", dump(workspace()))
    write(tmp_path / "catalog/nodes/a.yml", dump(node("a")))
    specs = load_specs([str(tmp_path / "catalog"), "-"], io.StringIO(dump(backfill())))
    assert specs.diagnostics == []
    assert (list(specs.workspaces), list(specs.nodes), list(specs.backfills)) == (
        ["ws"],
        ["a"],
        ["bf"],
    )
    assert specs.files == 3
    assert specs.backfills["bf"].origin.file == "<stdin>"


def test_an_error_in_stdin_is_located() -> None:
    specs = load_specs(["-"], io.StringIO(dump(backfill(grups=2))))
    assert [d.format() for d in specs.sources.locate(specs.diagnostics)] == [
        "<stdin>:12:3: error: $.spec.grups: unknown field 'grups'\n  hint: did you mean 'groups'?"
    ]


def test_load_specs_missing_path(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file or directory"):
        load_specs([str(tmp_path / "nope")])


# -- digest --------------------------------------------------------------------------

CATALOG = [
    workspace("ws", "Asia/Shanghai", ("bob",)),
    resource_group("rg", 4),
    node("a", parameters={"pt": "${yyyymmdd}"}),
    node("b", upstream=["a"], priority=5),
    backfill("bf", dates=[{"from": "2024-03-01", "to": "2024-03-03"}], groups=2),
    config(backend="local"),
]


def digest_of(**files: str) -> str:
    return load(**files).digest()


def test_digest_format() -> None:
    digest = digest_of(**{"a.yaml": dump(*CATALOG)})
    assert digest.startswith("sha256:")
    assert len(digest) == len("sha256:") + 64


def test_digest_is_stable_when_documents_move_between_files_or_change_order() -> None:
    one_file = digest_of(**{"all.yaml": dump(*CATALOG)})
    assert one_file == digest_of(**{f"{i}.yaml": dump(doc) for i, doc in enumerate(CATALOG)})
    assert one_file == digest_of(**{"all.yaml": dump(*reversed(CATALOG))})
    assert one_file == digest_of(**{"x/a.yaml": dump(*CATALOG[3:]), "y/b.yml": dump(*CATALOG[:3])})


def test_digest_is_stable_under_comments_layout_and_key_order() -> None:
    block = (
        "apiVersion: backfillctl.dev/v1alpha1\nkind: Node\n"
        "metadata:\n  name: a\n  workspace: ws\n"
        "spec:\n  schedule: 0 2 * * *\n  run:\n    command: [run, a]\n"
    )
    flow = (
        "# the a node\n---\n"
        "spec: {run: {command: ['run', 'a']}, schedule: '0 2 * * *'}  # daily\n"
        'kind: "Node"\nmetadata: {workspace: ws, name: a}\n'
        "apiVersion: backfillctl.dev/v1alpha1\n---\n"
    )
    specs = [load(**{"a.yaml": block}), load(**{"b.yaml": flow})]
    assert [(s.diagnostics, list(s.nodes)) for s in specs] == [([], ["a"]), ([], ["a"])]
    assert specs[0].digest() == specs[1].digest()


def test_digest_is_stable_for_unquoted_and_quoted_dates_and_times() -> None:
    base = (
        "apiVersion: backfillctl.dev/v1alpha1\nkind: Backfill\nmetadata: {name: bf}\n"
        "spec:\n  select: {method: descendants, roots: [a]}\n"
    )
    plain = base + "  dates: [2024-03-01]\n  timeWindow: {from: 00:00, to: 22:00}\n"
    quoted = base + "  dates: ['2024-03-01']\n  timeWindow: {from: '00:00', to: \"22:00\"}\n"
    specs = [load(**{"a.yaml": plain}), load(**{"a.yaml": quoted})]
    assert [s.diagnostics for s in specs] == [[], []]
    assert specs[0].digest() == specs[1].digest()


def leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield from leaves(child, (*path, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from leaves(child, (*path, i))
    else:
        yield path


def changed(value: Any) -> Any:
    """A different value of a similar kind (True -> False, 2 -> 3, "a" -> "a2")."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    return f"{value}2"


def with_leaf_changed(doc: dict[str, Any], path: tuple[Any, ...]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    target: Any = out
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = changed(target[path[-1]])
    return out


def test_digest_changes_when_any_value_changes() -> None:
    base = digest_of(**{"a.yaml": dump(*CATALOG)})
    seen = {base}
    count = 0
    for i, doc in enumerate(CATALOG):
        for path in leaves(doc):
            edited = list(CATALOG)
            edited[i] = with_leaf_changed(doc, path)
            digest = digest_of(**{"a.yaml": dump(*edited)})
            assert digest not in seen, (i, path)
            seen.add(digest)
            count += 1
    assert count > 30


@pytest.mark.parametrize(
    "edit",
    [
        lambda docs: [*docs, node("c")],  # a document added
        lambda docs: docs[:-1],  # one removed
        lambda docs: [*docs, docs[2]],  # one repeated
    ],
)
def test_digest_changes_with_the_set_of_documents(edit: Any) -> None:
    base = digest_of(**{"a.yaml": dump(*CATALOG)})
    assert digest_of(**{"a.yaml": dump(*edit(list(CATALOG)))}) != base


def test_digest_tells_a_number_from_its_text() -> None:
    assert digest_of(**{"a.yaml": "kind: X\nv: 1\n"}) != digest_of(
        **{"a.yaml": "kind: X\nv: '1'\n"}
    )


# -- files read by two processes (spec/forked.py) -----------------------------------


def test_a_large_catalog_read_by_two_processes_loads_the_same_specs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Above SHARED_FROM the last files are parsed and checked by a fork: the same
    documents, diagnostics (each file's, in file order) and broken names as alone."""
    from backfill_ctl.spec import loader

    files = {
        "a.yaml": dump(workspace("ws"), node("a1"), node("a2", upstream=["a1"])),
        "b.yaml": dump(node("b1", upstream=["a2"])) + "---\nb: [\n",  # a syntax error
        "c.yaml": dump(node("c1", schedule="every day"), node("c2", upstream=["zz"])),
        "d.yaml": dump(backfill(grups=2), node("d1"), node("a1")),  # a duplicate of a1
    }
    alone = load(**files)
    monkeypatch.setattr(loader, "SHARED_FROM", 1)
    shared = load(**files)

    assert formatted(shared) == formatted(alone) and len(formatted(alone)) >= 3
    assert list(shared.nodes) == list(alone.nodes)
    assert shared.nodes == alone.nodes
    assert shared.broken == alone.broken
    assert shared.digest() == alone.digest()
