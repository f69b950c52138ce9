"""`describe -o json|yaml`: the described object as data, as `get -o json` prints one
item, with what `describe` adds: a backfill's date groups, why an instance waits.

One target prints one object; several print a kubectl `List` of them.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from backfill_ctl.cli.get import find_backfill, find_instance
from backfill_ctl.usecases import progress
from backfill_ctl.usecases.objects import as_list, backfill_object, instance_object

if TYPE_CHECKING:
    from collections.abc import Sequence

    from backfill_ctl.state import ReadStore


class DescribeFormat(StrEnum):
    json = "json"
    yaml = "yaml"


DescribeOutputOpt = Annotated[
    DescribeFormat | None,
    typer.Option(
        "--output",
        "-o",
        help="json, yaml: the object as data (as one item of get -o json), with its date "
        "groups or why it waits.",
        show_default=False,
    ),
]


def backfill_data(store: ReadStore, name: str) -> dict[str, Any]:
    record = find_backfill(store, name)
    counts = Counter({s: n for (_, s), n in store.counts(record.name).items()})
    data = backfill_object(record, counts)
    groups = progress.date_groups(store.date_counts(record.name))
    data["status"]["dateGroups"] = [
        {
            "group": g.group,
            "dates": g.dates,
            "instances": g.instances,
            "done": g.done,
            "currentDate": g.bizdate,
            "position": g.position,
            "atCurrentDate": g.at_current,
        }
        for g in groups
    ]
    return data


def instance_data(store: ReadStore, ident: str, now: float) -> dict[str, Any]:
    i = find_instance(store, ident)
    backfill = store.backfill(i.backfill)
    deps = store.instances(ids=i.depends_on) if i.depends_on else []
    why = progress.why_waiting(i, backfill, deps, lambda: store.date_counts(i.backfill), now)
    data = instance_object(i, backfill.labels if backfill is not None else {})
    data["status"]["waitingFor"] = why
    return data


def dump(objects: Sequence[dict[str, Any]], output: DescribeFormat) -> str:
    """One object, or a List of several, as JSON or YAML."""
    data = objects[0] if len(objects) == 1 else as_list(objects)
    if output == DescribeFormat.json:
        return json.dumps(data, indent=2, ensure_ascii=False)
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text = yaml.dump(data, Dumper=dumper, sort_keys=False, width=120, allow_unicode=True)
    return str(text).rstrip("\n")


def dashboard_link(path: str) -> list[tuple[str, object]]:
    """The page of an object on the dashboard, when $BACKFILLCTL_DASHBOARD says where it
    is served (backfillctl ui, or controller --serve behind a proxy)."""
    base = os.environ.get("BACKFILLCTL_DASHBOARD", "").rstrip("/")
    return [("Dashboard", f"{base}/{path}")] if base else []
