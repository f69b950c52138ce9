"""The in-memory store's instance changes: save_apply (all of it or nothing), guarded
transitions, the scheduler's waiting states; each with its events."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from backfill_ctl.core.records import (
    NOT_STARTED,
    WAITING,
    BackfillRecord,
    InstanceRecord,
)
from backfill_ctl.state import StoreConflict
from backfill_ctl.state.memory.tables import SETTABLE_INSTANCE, Tables, field_values

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from backfill_ctl.core.records import InstanceState
    from backfill_ctl.state.protocols import WaitingUpdate


_NO_LONGER = "no longer in the specs"
_BROUGHT_BACK = "brought back by apply"  # a cancelled instance an apply wants again
UPDATABLE = NOT_STARTED | {"failed", "cancelled"}  # what save_apply's updates may change


class Changes(Tables):
    def save_apply(
        self,
        backfills: Sequence[BackfillRecord],
        creates: Sequence[InstanceRecord],
        updates: Sequence[InstanceRecord],
        cancels: Sequence[str],
        *,
        at: float,
        actor: str,
        origin: str,
        resource_groups: Sequence[tuple[str, str, int]] = (),
    ) -> list[str]:
        """All of it or nothing: an instance created twice is refused before any change.
        The ids cancelled (PlanStore.save_apply)."""
        with self._lock:
            new = [i.id for i in creates]
            if len(set(new)) != len(new) or any(i in self._instances for i in new):
                raise StoreConflict(
                    "the in-memory store changed while this apply was worked out: another "
                    "apply stored the same instances",
                    hint="apply again: it compares the specs with what is stored now",
                )
            for name, kind, concurrency in resource_groups:
                self._groups[name] = (kind, concurrency)
            for b in backfills:
                kept = b if b.name not in self._backfills else self._reapplied(b)
                self._backfills[b.name] = copy.deepcopy(kept)
            for i in creates:
                self._instances[i.id] = copy.deepcopy(i)
            back = {i.id for i in updates if self._is_cancelled(i.id)}
            for i in updates:
                self._redefine(i, at)
            # The cancelled ones: id -> (their backfill, the state they left).
            gone: dict[str, tuple[str, str]] = {}
            for ident in dict.fromkeys(cancels):
                left = self._cancel(ident, at)
                if left is not None:
                    gone[ident] = left
            self._apply_events(backfills, creates, updates, gone, back, at, actor, origin)
            return list(gone)

    @staticmethod
    def _reapplied(b: BackfillRecord) -> BackfillRecord:
        return replace(b, finished_at=None, outcome=None, notified_at=None)

    def _is_cancelled(self, ident: str) -> bool:
        stored = self._instances.get(ident)
        return stored is not None and stored.state == "cancelled"

    def _redefine(self, i: InstanceRecord, at: float) -> None:
        """A new definition; a cancelled instance comes back pending, with nothing left of
        its cancellation (its reason, its end)."""
        stored = self._instances.get(i.id)
        if stored is None or stored.state not in UPDATABLE:
            return
        back = stored.state == "cancelled"
        self._instances[i.id] = replace(
            stored,
            cyctime=i.cyctime,
            cyctime_epoch=i.cyctime_epoch,
            timezone=i.timezone,
            group=i.group,
            sequence=i.sequence,
            priority=i.priority,
            depends_on=tuple(i.depends_on),
            run=copy.deepcopy(i.run),
            resource_group=i.resource_group,
            dry_run_reason=i.dry_run_reason,
            tries_left=i.tries_left,
            updated_at=at,
            state="pending" if back else stored.state,
            reason=None if back else stored.reason,
            blocker=None if back else stored.blocker,
            finished_at=None if back else stored.finished_at,
        )

    def _cancel(self, ident: str, at: float) -> tuple[str, str] | None:
        """Cancel the instance if it has not started: (its backfill, the state it left);
        None when it is unknown, or kept (it started)."""
        stored = self._instances.get(ident)
        if stored is None or stored.state not in NOT_STARTED:
            return None
        self._instances[ident] = replace(
            stored,
            state="cancelled",
            reason=_NO_LONGER,
            blocker=None,
            updated_at=at,
            finished_at=at,
        )
        return stored.backfill, stored.state

    def _apply_events(
        self,
        backfills: Sequence[BackfillRecord],
        creates: Sequence[InstanceRecord],
        updates: Sequence[InstanceRecord],
        cancelled: dict[str, tuple[str, str]],
        back: set[str],
        at: float,
        actor: str,
        origin: str,
    ) -> None:
        """As the SQL store's: an instance brought back (`back`) is a transition, and so
        is one cancelled (`cancelled`: id -> its backfill and the state it left)."""
        who = (at, actor, origin)
        for i in creates:
            self._event(*who, "created", i.backfill, i.id, None, i.state)
        for i in updates:
            if i.id in back:
                self._event(
                    *who, "transition", i.backfill, i.id, "cancelled", "pending", _BROUGHT_BACK
                )
            else:
                self._event(
                    *who, "updated", i.backfill, i.id, message="definition changed by apply"
                )
        for ident, (backfill, state) in cancelled.items():
            self._event(*who, "transition", backfill, ident, state, "cancelled", _NO_LONGER)
        for b in backfills:
            self._event(*who, "applied", b.name, message=f"applied {b.digest[:19]}")

    def transition(
        self,
        ids: Sequence[str],
        to_state: str,
        *,
        allowed: Iterable[str],
        at: float,
        actor: str,
        origin: str,
        reason: str | None = None,
        kind: str = "transition",
        **fields: Any,
    ) -> list[str]:
        unknown = set(fields) - SETTABLE_INSTANCE
        if unknown:
            raise ValueError(f"cannot set {sorted(unknown)} on an instance")
        permitted, values = set(allowed), field_values(fields)
        moved: list[str] = []
        with self._lock:
            for ident in dict.fromkeys(ids):
                stored = self._instances.get(ident)
                if stored is None or stored.state not in permitted:
                    continue
                self._instances[ident] = replace(
                    stored,
                    state=cast("InstanceState", to_state),
                    reason=reason,
                    blocker=None,
                    updated_at=at,
                    **values,
                )
                self._event(
                    at, actor, origin, kind, stored.backfill, ident, stored.state, to_state, reason
                )
                moved.append(ident)
        return moved

    def set_waiting(
        self, updates: Sequence[WaitingUpdate], *, at: float, actor: str, origin: str
    ) -> int:
        changed = 0
        with self._lock:
            for ident, state, reason, blocker in updates:
                stored = self._instances.get(ident)
                if stored is None or stored.state not in WAITING:
                    continue
                self._instances[ident] = replace(
                    stored,
                    state=cast("InstanceState", state),
                    reason=reason,
                    blocker=None if blocker is None else copy.deepcopy(dict(blocker)),
                    updated_at=at,
                )
                if stored.state != state:
                    changed += 1
                    self._event(
                        at,
                        actor,
                        origin,
                        "transition",
                        stored.backfill,
                        ident,
                        stored.state,
                        state,
                        reason,
                    )
        return changed
