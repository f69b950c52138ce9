"""Builders for spec documents, so a test reads like the specs it is about."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from backfill_ctl.spec.loader import Specs, load_files
from backfill_ctl.spec.source import SourceFile

API = "backfillctl.dev/v1alpha1"
NOW = datetime(2024, 3, 20, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai


def workspace(
    name: str = "ws", timezone: str = "UTC", operators: tuple[str, ...] = ()
) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Workspace",
        "metadata": {"name": name},
        "spec": {"timezone": timezone, "operators": list(operators)},
    }


def resource_group(name: str = "rg", concurrency: int = 4, type: str = "shared") -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "ResourceGroup",
        "metadata": {"name": name},
        "spec": {"type": type, "concurrency": concurrency},
    }


def node(
    name: str,
    schedule: str = "0 2 * * *",
    upstream: tuple[str, ...] | list[str] = (),
    workspace: str = "ws",
    owners: tuple[str, ...] = ("alice",),
    command: list[str] | str | None = None,
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schedule": schedule,
        "upstream": list(upstream),
        "run": {"command": command or ["run", name, "$bizdate"]},
    }
    body.update(spec)
    return {
        "apiVersion": API,
        "kind": "Node",
        "metadata": {"name": name, "workspace": workspace, "owners": list(owners)},
        "spec": body,
    }


def backfill(
    name: str = "bf",
    select: dict[str, Any] | None = None,
    dates: list[Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "select": select or {"method": "descendants", "roots": ["a"]},
        "dates": dates or ["2024-03-01"],
    }
    body.update(spec)
    return {"apiVersion": API, "kind": "Backfill", "metadata": {"name": name}, "spec": body}


def config(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "Config", "spec": spec}


def dump(*docs: dict[str, Any]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


def specs_of(*docs: dict[str, Any], file: str = "specs.yaml") -> Specs:
    """Specs loaded from documents, exactly as from a file."""
    return load_files([SourceFile(file, dump(*docs))])


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
