"""`backend check` of the kubernetes backend, and the copies of the pods' logs next to the
state store: the parts that touch this machine's files."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from kubernetes import client as k8s

from backfill_ctl.backends import BackendError
from backfill_ctl.backends.files import make_private, refusal
from backfill_ctl.backends.kubernetes.api import PERMISSIONS

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from backfill_ctl.backends.kubernetes.api import Api


def readiness(api_of: Callable[[], Api], runs: Path) -> list[tuple[str, bool, str]]:
    """Can we reach the API server, and may we do what the backend does?"""
    try:
        api = api_of()
        version = api.json("get", "version", k8s.VersionApi(api.client).get_code)
    except BackendError as exc:
        return [("connect to the API server", False, str(exc))]
    results = [
        (
            f"connect to {api.client.configuration.host}",
            True,
            f"Kubernetes {version.get('gitVersion', '?')}",
        )
    ]
    for verb, group, resource, sub in PERMISSIONS:
        what = f"{verb} {resource}{'/' + sub if sub else ''}"
        try:
            allowed, reason = api.access(verb, group, resource, sub)
        except BackendError as exc:
            results.append((what, False, str(exc)))
            continue
        results.append((what, allowed, reason or ("allowed" if allowed else "denied")))
    results.append(_copies(runs))
    return results


def _copies(runs: Path) -> tuple[str, bool, str]:
    """Can the logs be copied into `runs` (a check that makes nothing)?"""
    try:
        why = refusal(runs, runs.lstat())
    except FileNotFoundError:
        return ("write logs", True, f"{runs} (made at the first copy)")
    except OSError as exc:
        return ("write logs", False, f"{runs}: {exc.strerror}")
    return ("write logs", why is None, why or str(runs))


def copy_log(path: Path, runs: Path, data: str | bytes) -> None:
    """`data` into `path` (0600, through a new file renamed over it), in a directory made
    private under `runs`; nothing where that is refused (a link or another user's
    directory would take it elsewhere): the attempt's outcome does not depend on it."""
    try:
        make_private(path.parent, runs)
    except (BackendError, OSError):
        return
    tmp = path.with_suffix(".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # (one left by a copy that failed midway)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data.encode() if isinstance(data, str) else data)
    tmp.replace(path)
