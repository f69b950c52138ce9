"""The in-memory store's attempts (fenced starts; the first end report wins) and the
controller lease with its epochs."""

from __future__ import annotations

import copy
import time
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from backfill_ctl.core.records import (
    WAITING,
    AttemptRecord,
    Lease,
)
from backfill_ctl.state import LeaseLost
from backfill_ctl.state.memory.tables import Tables
from backfill_ctl.state.protocols import Begun

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    from backfill_ctl.core.records import AttemptState, InstanceState
    from backfill_ctl.state.protocols import AttemptEnd


class Attempts(Tables):
    # -- attempts --------------------------------------------------------------------

    def _check_fence(self, fence: tuple[str, int]) -> None:
        lease = self._lease
        if lease is None or (lease.holder, lease.epoch) != fence:
            holder = f"{lease.holder} (epoch {lease.epoch})" if lease else "nobody"
            raise LeaseLost(
                f"the lease is no longer ours (epoch {fence[1]}): {holder} holds it now"
            )

    def check_fence(self, fence: tuple[str, int]) -> None:
        with self._lock:
            self._check_fence(fence)

    def begin_attempt(
        self,
        instance: str,
        backend: str,
        *,
        at: float,
        actor: str,
        origin: str,
        fence: tuple[str, int] | None = None,
    ) -> int | None:
        with self._lock:
            if fence is not None:
                self._check_fence(fence)
            stored = self._instances.get(instance)
            if stored is None or stored.state not in WAITING:
                return None
            number = stored.attempts + 1
            self._instances[instance] = replace(
                stored,
                state="running",
                reason=None,
                blocker=None,
                attempts=number,
                tries_left=stored.tries_left - 1,
                started_at=at,
                finished_at=None,
                updated_at=at,
            )
            self._attempts[instance, number] = AttemptRecord(
                instance, number, backend, "starting", at
            )
            self._event(
                at,
                actor,
                origin,
                "transition",
                stored.backfill,
                instance,
                stored.state,
                "running",
                f"attempt {number}",
            )
        return number

    def begin_attempts(
        self,
        instances: Sequence[str],
        backend: str,
        *,
        at: float,
        actor: str,
        origin: str,
        fence: tuple[str, int] | None = None,
        handle: Mapping[str, Any] | None = None,
    ) -> dict[str, Begun]:
        with self._lock:
            if fence is not None:
                self._check_fence(fence)
            begun = {}
            for instance in instances:
                number = self.begin_attempt(instance, backend, at=at, actor=actor, origin=origin)
                if number is not None:
                    if handle:
                        attempt = self._attempts[instance, number]
                        self._attempts[instance, number] = replace(
                            attempt, handle=copy.deepcopy(dict(handle))
                        )
                    i = self._instances[instance]
                    begun[instance] = Begun(
                        instance,
                        number,
                        i.backfill,
                        i.node,
                        i.bizdate,
                        i.cyctime,
                        copy.deepcopy(i.run),  # (as a read gives it: not the stored one)
                        i.timezone,
                        i.tries_left,
                    )
            return begun

    def set_attempt_handles(
        self, handles: Sequence[tuple[str, int, dict[str, Any], str | None]]
    ) -> None:
        with self._lock:
            for instance, number, handle, log in handles:
                self.set_attempt_handle(instance, number, handle, log)

    def end_attempts(
        self, ends: Sequence[AttemptEnd], *, at: float, actor: str, origin: str
    ) -> list[bool]:
        with self._lock:
            self.set_attempt_handles([(e.instance, e.number, *e.handle) for e in ends if e.handle])
            return [
                self.end_attempt(
                    e.instance,
                    e.number,
                    attempt_state=e.attempt_state,
                    exit_code=e.exit_code,
                    message=e.message,
                    instance_state=e.instance_state,
                    at=at,
                    actor=actor,
                    origin=origin,
                    not_before=e.not_before,
                    log=e.log,
                )
                for e in ends
            ]

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Every change inside at once, or none: the tables as they were are put back
        if the batch fails (a rolled-back transaction)."""
        with self._lock:
            saved = self._saved()
            try:
                yield
            except BaseException:
                self._restore(saved)
                raise

    def set_attempt_handle(
        self, instance: str, number: int, handle: dict[str, Any], log: str | None
    ) -> None:
        with self._lock:
            attempt = self._attempts.get((instance, number))
            if attempt is not None and attempt.state == "starting":
                self._attempts[instance, number] = replace(
                    attempt, handle=copy.deepcopy(handle), log=log, state="running"
                )

    def end_attempt(
        self,
        instance: str,
        number: int,
        *,
        attempt_state: str,
        exit_code: int | None,
        message: str | None,
        instance_state: str,
        at: float,
        actor: str,
        origin: str,
        not_before: float | None = None,
        log: tuple[str, int] | None = None,
    ) -> bool:
        """The first report wins: an attempt already ended is left as it is (False)."""
        with self._lock:
            attempt = self._attempts.get((instance, number))
            if attempt is None or attempt.state not in ("starting", "running"):
                return False
            if log is not None:
                self._keep_log(instance, number, log[0], log[1], at)
            self._attempts[instance, number] = replace(
                attempt,
                state=cast("AttemptState", attempt_state),
                exit_code=exit_code,
                message=message,
                finished_at=at,
            )
            stored = self._instances.get(instance)
            if stored is None or stored.state != "running" or stored.attempts != number:
                return True  # stopped, removed or on a later attempt: the attempt is recorded
            self._instances[instance] = replace(
                stored,
                state=cast("InstanceState", instance_state),
                reason=message,
                blocker=None,
                finished_at=at if instance_state in ("succeeded", "failed") else None,
                updated_at=at,
                stop_requested=False,
                not_before=not_before,
            )
            self._event(
                at,
                actor,
                origin,
                "transition",
                stored.backfill,
                instance,
                "running",
                instance_state,
                message,
            )
        return True

    def abandon_attempt(
        self,
        instance: str,
        number: int,
        *,
        state: str,
        reason: str,
        at: float,
        actor: str,
        origin: str,
    ) -> None:
        with self._lock:
            attempt = self._attempts.get((instance, number))
            if attempt is None or attempt.state != "starting":
                return
            del self._attempts[instance, number]
            stored = self._instances.get(instance)
            if stored is None or stored.state != "running":
                return
            self._instances[instance] = replace(
                stored,
                state=cast("InstanceState", state),
                reason=reason,
                blocker=None,
                attempts=stored.attempts - 1,
                tries_left=stored.tries_left + 1,
                started_at=None,
                updated_at=at,
            )
            self._event(
                at,
                actor,
                origin,
                "not-started",
                stored.backfill,
                instance,
                "running",
                state,
                reason,
            )

    def attempts(
        self, instance: str | None = None, *, states: Iterable[str] | None = None
    ) -> list[AttemptRecord]:
        wanted = None if states is None else set(states)
        with self._lock:
            return [
                a
                for _, a in sorted(self._attempts.items())
                if (instance is None or a.instance == instance)
                and (wanted is None or a.state in wanted)
            ]

    # -- the lease -------------------------------------------------------------------

    def acquire_lease(
        self, holder: str, *, pid: int, host: str, at: float | None = None, ttl: float
    ) -> Lease:
        if at is None:
            at = time.time()
        with self._lock:
            now = self._lease
            if now is not None and now.holder != holder and now.expires_at >= at:
                return now
            same = now is not None and now.holder == holder
            acquired = now.acquired_at if now is not None and same else at
            epoch = (now.epoch if same else now.epoch + 1) if now is not None else 1
            self._lease = Lease(holder, pid, host, acquired, at + ttl, epoch)
            return self._lease

    def lease(self) -> Lease | None:
        with self._lock:
            return self._lease

    def take_over_lease(self, dead_holder: str) -> None:
        with self._lock:
            if self._lease is not None and self._lease.holder == dead_holder:
                self._lease = replace(self._lease, expires_at=0.0)

    def release_lease(self, holder: str) -> None:
        self.take_over_lease(holder)
