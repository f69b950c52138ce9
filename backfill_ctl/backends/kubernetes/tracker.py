"""Following this store's Jobs: a list, then a watch, in a thread (no request per Job)."""

from __future__ import annotations

import contextlib
import json
import threading
from typing import TYPE_CHECKING, Any

import urllib3
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from backfill_ctl.backends import (
    BackendError,
)
from backfill_ctl.backends.kubernetes.api import REQUEST_TIMEOUT, Api

if TYPE_CHECKING:
    from collections.abc import Mapping


WATCH_SECONDS = 240  # a watch request lasts this long, then is renewed from where it was


class Tracker:
    """The latest state of this store's Jobs, kept by a list-then-watch thread."""

    def __init__(self, api: Api, selector: str, *, watch_seconds: int = WATCH_SECONDS) -> None:
        self.api = api
        self.selector = selector
        self.watch_seconds = watch_seconds
        self.jobs: dict[str, dict[str, Any]] = {}
        self.deleted: set[str] = set()
        self.lists = 0  # how many times it listed (once, plus once per 410)
        self.error = ""  # the last failure, for messages
        self.synced = threading.Event()
        self.changed = threading.Event()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._resp: Any = None
        self._thread = threading.Thread(target=self._run, name="backfillctl-watch", daemon=True)
        self._thread.start()

    def get(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self.jobs.get(name)

    def forget(self, name: str) -> None:
        """A deleted Job whose end was reported: nothing more to remember."""
        with self._lock:
            self.deleted.discard(name)

    def seen(self, job: dict[str, Any]) -> None:
        """A Job we just created or found: known before its first watch event."""
        self._update("ADDED", job)

    def stop(self) -> None:
        self._stop.set()
        resp = self._resp
        if resp is not None:
            with contextlib.suppress(Exception):
                resp.shutdown()
        self._thread.join(timeout=5)

    def _update(self, kind: str, job: dict[str, Any]) -> None:
        name = job["metadata"]["name"]
        with self._lock:
            if kind == "DELETED":
                self.jobs.pop(name, None)
                self.deleted.add(name)
            else:
                old = self.jobs.get(name)
                if old is None or _rv(job) >= _rv(old):
                    self.jobs[name] = job
                self.deleted.discard(name)
        self.changed.set()

    def _run(self) -> None:
        version: str | None = None
        backoff = 0.5
        while not self._stop.is_set():
            try:
                if version is None:
                    version = self._list()
                version = self._watch(version)
                backoff = 0.5
            except _Gone:
                version = None
            except (BackendError, ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                if self._stop.wait(backoff):
                    return
                backoff = min(backoff * 2, 30.0)

    def _list(self) -> str:
        data = self.api.json(
            "list",
            "jobs",
            self.api.batch.list_namespaced_job,
            self.api.namespace,
            label_selector=self.selector,
        )
        version = str(data["metadata"]["resourceVersion"])
        current = {j["metadata"]["name"]: j for j in data["items"]}
        with self._lock:
            for name, job in self.jobs.items():
                if name in current:
                    continue
                if _rv(job) > _rv(data):  # created after the list was taken: keep it
                    current[name] = job
                else:
                    self.deleted.add(name)
            self.jobs = current
            self.lists += 1
        self.synced.set()
        self.changed.set()
        return version

    def _watch(self, version: str) -> str:
        """Follow the changes after `version` until the server ends the request; the
        version reached. A 410 Gone raises _Gone; a dropped stream returns where it was."""
        resp = self.api.call(
            "watch",
            "jobs",
            self.api.batch.list_namespaced_job,
            self.api.namespace,
            label_selector=self.selector,
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=self.watch_seconds,
            # a quiet watch is not a dead one: the server ends it after watch_seconds
            _request_timeout=(REQUEST_TIMEOUT[0], self.watch_seconds + 30),
        )
        self._resp = resp  # stop() shuts it down; set before the flag is read again below
        try:
            if self._stop.is_set():
                return version
            for line in iter_resp_lines(resp):  # type: ignore[no-untyped-call]
                if self._stop.is_set():
                    break
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _Gone()
                    raise BackendError(f"watch: {obj.get('reason')}: {obj.get('message')}")
                version = str(obj.get("metadata", {}).get("resourceVersion") or version)
                if kind != "BOOKMARK":
                    self._update(str(kind), obj)
        except (urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError, ValueError):
            pass  # the connection dropped or went silent: resume from the last version seen
        finally:
            self._resp = None
            with contextlib.suppress(Exception):
                resp.release_conn()
        return version


class _Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


def _rv(job: Mapping[str, Any]) -> int:
    try:
        return int(job["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return 0
