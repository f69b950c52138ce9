"""Who may operate a backfill's instances, recorded in the store at apply time (DESIGN §7).

Operations (`stop`, `rerun`, `set-success`, `freeze`, `unfreeze`, `delete`, `stop
backfill/NAME`) read only the state store, never the specs: the store must say who may
operate each node. So `apply` (and the controller's re-apply) records, with each
backfill, its *access*: the names that may operate each node of its scope (the node's
owners and its workspace's operators, as `plan` checks them, DESIGN §5.2), the nodes it
dry-runs (nobody runs them, so a backfill-wide operation does not need them), and the
Config's `requireActor`.

The access lives in the backfill record's stored document (`BackfillRecord.spec`) under
`ACCESS`, a key no Backfill document can hold (the schema allows none but apiVersion,
kind, metadata and spec), so no schema migration is needed. It is not part of the
document: `document()` removes it wherever the applied document is compared or shown.

The rules, for an operation asked by `actor` (`--as`, else $BACKFILLCTL_ACTOR, else
$GITHUB_ACTOR):

- no actor: when a targeted backfill was applied under a Config with `requireActor`,
  the operation is a usage error (exit 2); otherwise nothing is checked (a single
  user's local store, as before permissions were recorded);
- an actor: an instance of a node the actor may not operate is refused and named with
  who may (exit 1); a backfill-wide operation needs every node the backfill runs;
- a backfill applied by a backfillctl that recorded no access is not checked (applying
  it again records it).

An apply is an operation too (`ApplyGuard`): cancelling stored instances the specs no
longer plan, or giving new definitions to those that have not started (a node made
dry-run then succeeds without running), is refused unless the actor may operate their
nodes, and `--prune` needs every node of the backfill it deletes, as `delete` does. So a
colleague who applies another Backfill under the same name, or prunes from a checkout
that lacks one, changes nothing of what others may operate. "May" is the catalog's
answer for a node it holds (the one being applied, whose access the apply records, so
an owner change and an edit go together), else what the store recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from backfill_ctl.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from backfill_ctl.core.planner import BackfillPlan
    from backfill_ctl.core.records import BackfillRecord, InstanceRecord
    from backfill_ctl.spec.catalog import Catalog
    from backfill_ctl.spec.loader import Specs
    from backfill_ctl.state.protocols import BackfillReads
    from backfill_ctl.usecases.reconcile import BackfillChanges

ACCESS = "access"  # the key of the access in a stored backfill document
_SHOWN = 5  # nodes named in a backfill-wide refusal, then "and N more"


@dataclass(frozen=True)
class Access:
    """Who may operate a Backfill's instances, stored with it."""

    require_actor: bool
    operators: Mapping[str, tuple[str, ...]]  # node -> who may operate it, sorted
    dry_run: frozenset[str]  # nodes the backfill dry-runs

    def to_json(self) -> dict[str, Any]:
        return {
            "requireActor": self.require_actor,
            "operators": {n: list(names) for n, names in self.operators.items()},
            "dryRun": sorted(self.dry_run),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Access:
        return cls(
            require_actor=bool(data.get("requireActor", False)),
            operators={n: tuple(names) for n, names in (data.get("operators") or {}).items()},
            dry_run=frozenset(data.get("dryRun") or ()),
        )

    def may(self, actor: str, node: str) -> bool:
        return actor in self.operators.get(node, ())

    def who_may(self, node: str) -> str:
        return ", ".join(self.operators.get(node, ())) or "nobody"


def access_of_plan(specs: Specs, bp: BackfillPlan) -> Access:
    """The access of a planned backfill: from the catalog and the Config, now."""
    catalog = specs.catalog()
    return Access(
        require_actor=specs.config.require_actor,
        operators={n: tuple(catalog.operators_of(n)) for n in sorted(bp.scope.nodes)},
        dry_run=frozenset(bp.scope.dry_run),
    )


def with_access(document: Mapping[str, Any], access: Access) -> dict[str, Any]:
    """The document to store: the applied Backfill document and its access."""
    return {**document, ACCESS: access.to_json()}


def document(stored: Mapping[str, Any]) -> dict[str, Any]:
    """The applied Backfill document of a stored one, without its access."""
    return {k: v for k, v in stored.items() if k != ACCESS}


def access_of(record: BackfillRecord) -> Access | None:
    """The recorded access of a backfill; None when applied before access was recorded."""
    data = record.spec.get(ACCESS)
    return Access.from_json(data) if isinstance(data, dict) else None


class Guard:
    """Decides, for one actor, which instances and backfills an operation may touch."""

    def __init__(self, store: BackfillReads, actor: str | None) -> None:
        self.store = store
        self.actor = actor
        self._access: dict[str, Access | None] = {}

    def access(self, backfill: str) -> Access | None:
        if backfill not in self._access:
            record = self.store.backfill(backfill)
            self._access[backfill] = access_of(record) if record is not None else None
        return self._access[backfill]

    def require_actor(self, backfills: Iterable[str]) -> None:
        """Without an actor, refuse (exit 2) when a backfill's Config requires one."""
        if self.actor is not None:
            return
        strict = sorted(b for b in set(backfills) if (a := self.access(b)) and a.require_actor)
        if strict:
            names = ", ".join(f"backfill/{b}" for b in strict)
            raise UsageError(
                f"{names} requires an actor (the Config sets requireActor): who is asking?",
                hint="pass --as USER, or set $BACKFILLCTL_ACTOR",
            )

    def refusal(self, operation: str, instance: InstanceRecord) -> str | None:
        """Why the actor may not operate this instance, or None if it may."""
        access = self.access(instance.backfill)
        if self.actor is None or access is None or access.may(self.actor, instance.node):
            return None
        return (
            f"cannot {operation}: {self.actor} may not operate node {instance.node} "
            f"(who may: {access.who_may(instance.node)})"
        )

    def split(
        self, operation: str, instances: Sequence[InstanceRecord]
    ) -> tuple[list[InstanceRecord], list[tuple[str, str]]]:
        """The instances the actor may operate, and the others with the reason."""
        allowed: list[InstanceRecord] = []
        refused: list[tuple[str, str]] = []
        for i in instances:
            why = self.refusal(operation, i)
            if why is None:
                allowed.append(i)
            else:
                refused.append((i.id, why))
        return allowed, refused

    def backfill_refusal(self, operation: str, backfill: str) -> str | None:
        """Why the actor may not `operation` the whole backfill (every node it runs), or
        None if it may."""
        access = self.access(backfill)
        if self.actor is None or access is None:
            return None
        denied = [
            n for n in access.operators if n not in access.dry_run and not access.may(self.actor, n)
        ]
        return whole_refusal(operation, self.actor, denied, access.who_may) if denied else None


def whole_refusal(
    operation: str, actor: str, denied: Sequence[str], who_may: Callable[[str], str]
) -> str:
    """A backfill-wide `operation` refused: the nodes `denied` to `actor`, and who may."""
    shown = "; ".join(f"{n}: {who_may(n)}" for n in denied[:_SHOWN])
    more = f"; and {len(denied) - _SHOWN} more node(s)" if len(denied) > _SHOWN else ""
    return (
        f"cannot {operation}: {actor} may not operate {len(denied)} of its node(s) "
        f"(who may: {shown}{more})"
    )


class ApplyGuard:
    """Decides, for one actor, which stored instances an apply may cancel or change, and
    which backfills it may prune (see the module docstring)."""

    def __init__(self, store: BackfillReads, actor: str, catalog: Catalog) -> None:
        self.actor = actor
        self.catalog = catalog
        self._stored = Guard(store, actor)

    def may(self, backfill: str, node: str) -> bool:
        if node in self.catalog.nodes:
            return self.catalog.can_operate(self.actor, node)
        access = self._stored.access(backfill)
        return access is None or access.may(self.actor, node)

    def who_may(self, backfill: str, node: str) -> str:
        if node in self.catalog.nodes:
            return ", ".join(self.catalog.operators_of(node)) or "nobody"
        access = self._stored.access(backfill)
        return access.who_may(node) if access is not None else "nobody"

    def refusal(self, c: BackfillChanges) -> str | None:
        """Why the actor may not make the changes `c` to what the store holds of backfill
        `c.name`, or None if it may."""
        if c.status == "pruned":
            return self._prune_refusal(c.name)
        denied = [(n, k) for n, k in _touched(c).items() if not self.may(c.name, n)]
        if not denied:
            return None
        parts = [
            f"node {n} (who may: {self.who_may(c.name, n)}), whose {cancel + change} stored "
            f"instance(s) it would {_verb(cancel, change)}"
            for n, (cancel, change) in denied[:_SHOWN]
        ]
        more = f"; and {len(denied) - _SHOWN} more node(s)" if len(denied) > _SHOWN else ""
        return f"cannot apply: {self.actor} may not operate {'; '.join(parts)}{more}"

    def _prune_refusal(self, backfill: str) -> str | None:
        """Why the actor may not prune `backfill` (every node it runs, as `delete`)."""
        access = self._stored.access(backfill)
        if access is None:
            return None
        nodes = [n for n in access.operators if n not in access.dry_run]
        denied = [n for n in nodes if not self.may(backfill, n)]
        if not denied:
            return None
        return whole_refusal("prune", self.actor, denied, lambda n: self.who_may(backfill, n))


def _touched(c: BackfillChanges) -> dict[str, tuple[int, int]]:
    """Per node, how many stored instances `c` cancels and changes; a dry-run instance that
    stays one runs nothing, whatever is changed of it, and is not counted."""
    touched: dict[str, tuple[int, int]] = {}
    for iid in c.cancel:
        if (have := c.stored[iid]).dry_run_reason is None:
            cancel, change = touched.get(have.node, (0, 0))
            touched[have.node] = (cancel + 1, change)
    for i in c.update:
        if c.stored[i.id].dry_run_reason is None or i.dry_run_reason is None:
            cancel, change = touched.get(i.node, (0, 0))
            touched[i.node] = (cancel, change + 1)
    return touched


def _verb(cancel: int, change: int) -> str:
    if cancel and change:
        return "change or cancel"
    return "cancel" if cancel else "change"
