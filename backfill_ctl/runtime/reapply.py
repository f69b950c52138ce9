"""The controller's re-apply: the specs applied again whenever their files change.

What a merge does: each Backfill is applied under an identity whose permissions are
checked (DESIGN §7 "Identity"), as `apply --as IDENTITY` would. The controller
(`runtime/controller.py`) calls a `Reconciler` every tick; it says what it did and why
it did not through `say` (the CLI's stderr).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from backfill_ctl.errors import BackfillError
from backfill_ctl.spec.loader import load_specs
from backfill_ctl.spec.source import YAML_SUFFIXES
from backfill_ctl.usecases import apply as applying

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime

    from backfill_ctl.spec.loader import Specs
    from backfill_ctl.state import PlanStore

Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(paths: Sequence[str]) -> Fingerprint:
    """Name, size and mtime of every spec file: cheap enough to look at every tick."""
    found = []
    for arg in paths:
        root = Path(arg)
        files = (
            [root]
            if root.is_file()
            else [p for p in root.rglob("*") if p.suffix.lower() in YAML_SUFFIXES]
        )
        for p in files:
            try:
                st = p.stat()
            except OSError:
                continue
            found.append((str(p), st.st_size, st.st_mtime_ns))
    return tuple(sorted(found))


class Reconciler:
    """Applies the specs again whenever their files change (what a merge does), each
    Backfill under an identity whose permissions are checked (DESIGN §7 "Identity").

    A Backfill's identity is the actor of the `apply --as` that recorded it (the merge
    pipeline's `$GITHUB_ACTOR`), else the identity the controller was started with
    (`--as`, `$BACKFILLCTL_ACTOR`): never anything the spec says. Each Backfill is planned
    as its identity, so what that identity may not operate is dry-run or refused exactly
    as `plan --as IDENTITY` shows. A Backfill with no identity is not applied, and the
    controller says why and how to fix it; what the store already holds still runs.
    """

    def __init__(
        self,
        store: PlanStore,
        paths: Sequence[str],
        clock: Callable[[], float] = time.time,
        actor: str | None = None,
        *,
        say: Callable[[str], None],
    ) -> None:
        self.store, self.paths, self.clock, self.actor = store, list(paths), clock, actor
        self.say = say
        self.seen: Fingerprint = ()

    def __call__(self) -> None:
        current = fingerprint(self.paths)
        if current == self.seen:
            return
        self.seen = current
        try:
            self._apply(load_specs(self.paths))
        except BackfillError as exc:  # a broken spec must not stop the loop
            self.say(f"cannot apply the specs: {exc.message}")

    def identities(self, specs: Specs) -> dict[str | None, list[str]]:
        """The Backfills of the specs by the identity they are applied as (None: none)."""
        applied = {b.name: b.applied_by for b in self.store.backfills(include_deleted=True)}
        groups: dict[str | None, list[str]] = {}
        for name in sorted(specs.backfills):
            groups.setdefault(applied.get(name) or self.actor, []).append(name)
        return groups

    def _apply(self, specs: Specs) -> None:
        from datetime import UTC, datetime

        now = datetime.fromtimestamp(self.clock(), UTC)
        for identity, names in self.identities(specs).items():
            if identity is None:
                for name in names:
                    origin = specs.backfills[name].origin
                    self.say(
                        f"{origin.file}: backfill/{name}: not applied by the controller: no "
                        "identity to check its permissions as (it was never applied with "
                        "--as)\n  hint: apply it with backfillctl apply --as USER (the merge "
                        "pipeline does, as $GITHUB_ACTOR), or start the controller with --as"
                    )
                continue
            self._apply_as(specs, identity, names, now)

    def _apply_as(self, specs: Specs, identity: str, names: list[str], now: datetime) -> None:
        prepared = applying.check_specs(specs, now, identity)
        mine = set(names)
        errors = prepared.errors_of(mine)
        if errors:
            self.say(
                f"backfill/{', backfill/'.join(names)} (as {identity}): {len(errors)} error "
                f"finding(s), not applied (backfillctl check --as {identity} shows them)"
            )
            return
        found = applying.changes(prepared, self.store, at=self.clock(), only=mine)
        for name, why in found.refused:
            self.say(
                f"backfill/{name} (as {identity}): {why}; not applied (backfillctl diff "
                f"--as {identity} shows what would change)"
            )
            mine.discard(name)
        if not mine:
            return
        changes = applying.apply(
            prepared,
            self.store,
            at=self.clock(),
            actor=f"controller as {identity}",
            origin="reconcile",
            only=mine,
        )
        if not changes.empty:
            self.say(changes.summary(done=True))
