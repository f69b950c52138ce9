"""The controller's re-apply (`Reconciler`) without the CLI: real spec files, a real store.

Each Backfill is applied as the actor that last applied it, else as the controller's
own identity; one with neither is not applied, and the reconciler says why.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from backfill_ctl.runtime.reapply import Reconciler, fingerprint
from backfill_ctl.spec.loader import load_specs
from backfill_ctl.state import StateStore, open_store
from tests.builders import NOW, backfill, dump, node, resource_group, workspace, write
from tests.running import Clock

# c is an intermediate bob owns: alice's plan dry-runs it.
DOCS = (
    node("a", resourceGroup="rg"),
    node("c", upstream=["a"], resourceGroup="rg", owners=("bob",)),
    node("d", upstream=["c"], resourceGroup="rg"),
)


def specs(root: Path, *docs: dict[str, Any]) -> list[str]:
    write(root / "specs" / "catalog.yaml", dump(workspace(), resource_group("rg"), *docs))
    return [str(root / "specs")]


def reconciler(
    tmp_path: Path, paths: list[str], actor: str | None = None
) -> tuple[Reconciler, StateStore, list[str]]:
    store = open_store(tmp_path / "state.db", create=True)
    said: list[str] = []
    reapply = Reconciler(store, paths, Clock(), actor, say=said.append)
    return reapply, store, said


def test_a_backfill_without_an_identity_is_not_applied(tmp_path: Path) -> None:
    reapply, store, said = reconciler(tmp_path, specs(tmp_path, *DOCS, backfill()))

    reapply()

    assert store.backfill("bf") is None
    assert len(said) == 1
    assert "backfill/bf: not applied by the controller: no identity" in said[0]


def test_it_applies_as_its_own_identity_and_plans_as_it(tmp_path: Path) -> None:
    reapply, store, said = reconciler(tmp_path, specs(tmp_path, *DOCS, backfill()), "alice")

    reapply()

    record = store.backfill("bf")
    assert record is not None
    assert record.applied_by == "alice"
    (c,) = store.instances(node="c")
    assert c.dry_run_reason is not None  # bob's intermediate: alice's plan dry-runs it
    assert said == ["Apply complete: 3 created, 0 updated, 0 cancelled; 0 kept as they ran."]
    events = store.events(instance=c.id)
    assert events[0].actor == "controller as alice"


def test_nothing_happens_until_a_file_changes(tmp_path: Path) -> None:
    paths = specs(tmp_path, *DOCS, backfill())
    reapply, _, said = reconciler(tmp_path, paths, "alice")
    reapply()
    said.clear()

    reapply()
    assert said == []
    assert reapply.seen == fingerprint(paths)

    catalog = Path(paths[0]) / "catalog.yaml"
    write(catalog, dump(workspace(), resource_group("rg"), *DOCS, backfill(dates=["2024-03-02"])))
    os.utime(catalog, ns=(1, 1))
    reapply()
    assert said == ["Apply complete: 3 created, 0 updated, 3 cancelled; 0 kept as they ran."]


def test_a_backfill_is_applied_as_its_recorded_applier(tmp_path: Path) -> None:
    paths = specs(tmp_path, *DOCS, backfill("old"))
    first, store, _ = reconciler(tmp_path, paths, "alice")
    first()
    specs(tmp_path, *DOCS, backfill("old"), backfill("new"))
    later = Reconciler(store, paths, Clock(), "ops", say=print)

    assert later.identities(load_specs(paths)) == {"alice": ["old"], "ops": ["new"]}


def test_a_file_that_does_not_parse_blocks_the_apply_and_says_so(tmp_path: Path) -> None:
    paths = specs(tmp_path, *DOCS, backfill())
    write(Path(paths[0]) / "broken.yaml", "kind: [")
    reapply, store, said = reconciler(tmp_path, paths, "alice")

    reapply()

    assert store.backfill("bf") is None
    assert said == [
        "backfill/bf (as alice): 1 error finding(s), not applied "
        "(backfillctl check --as alice shows them)"
    ]


def test_an_identity_that_lost_permission_is_refused(tmp_path: Path) -> None:
    paths = specs(tmp_path, *DOCS, backfill())
    reapply, store, said = reconciler(tmp_path, paths, "alice")
    reapply()
    # a becomes bob's: planned as alice, the target is an error
    changed = (node("a", resourceGroup="rg", owners=("bob",)), *DOCS[1:])
    specs(tmp_path, *changed, backfill())
    os.utime(Path(paths[0]) / "catalog.yaml", ns=(2, 2))
    said.clear()

    reapply()

    assert said == [
        "backfill/bf (as alice): 1 error finding(s), not applied "
        "(backfillctl check --as alice shows them)"
    ]
    assert NOW.timestamp() == store.backfill("bf").applied_at  # type: ignore[union-attr]
