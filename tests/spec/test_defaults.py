"""One source for defaults: every `default` of every schema is what spec.build and the
model's dataclasses produce when the field is left out, and the field is read at all.

Nothing here names a default value: the schema files are walked, so a default added,
changed or removed there is checked without touching this file.
"""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest

from backfill_ctl.spec.build import DocumentBuilder
from backfill_ctl.spec.model import (
    Backfill,
    Config,
    Node,
    Origin,
    Period,
    Policy,
    ResourceGroup,
    Run,
    Selection,
    Smtp,
    Workspace,
)
from backfill_ctl.spec.schema import (
    API_VERSION,
    KINDS,
    default,
    defaults,
    kind_schema,
    schema_errors,
)

MINIMAL: dict[str, dict[str, Any]] = {
    "Workspace": {"metadata": {"name": "w"}},
    "ResourceGroup": {"metadata": {"name": "r"}, "spec": {"concurrency": 2}},
    "Node": {
        "metadata": {"name": "n", "workspace": "w"},
        "spec": {"schedule": "0 2 * * *", "run": {"command": ["true"]}},
    },
    "Backfill": {
        "metadata": {"name": "b"},
        "spec": {
            "select": {"method": "workspace", "roots": ["a"], "workspaces": ["w"]},
            "dates": ["2024-03-01"],
        },
    },
    "Config": {},
}
# What an object or list item must hold when a test creates it to set a field inside.
REQUIRED = {
    "spec.alerts.smtp": {"host": "smtp.example.com", "from": "bf@example.com"},
    "spec.policies[]": {"name": "p", "command": ["true"]},
}
BUILD = {
    "Workspace": "workspace",
    "ResourceGroup": "resource_group",
    "Node": "node",
    "Backfill": "backfill",
    "Config": "config",
}
ALL_DEFAULTS = [(kind, path) for kind in KINDS for path in defaults(kind)]


def document(kind: str) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind, **copy.deepcopy(MINIMAL[kind])}


def with_field(kind: str, path: str, value: Any) -> dict[str, Any]:
    """The minimal document of `kind` with the field at `path` set to `value`."""
    doc = document(kind)
    node: Any = doc
    parts = path.split(".")
    for n, part in enumerate(parts[:-1]):
        prefix = ".".join(parts[: n + 1])
        if part.endswith("[]"):
            items = node.setdefault(part[:-2], [copy.deepcopy(REQUIRED.get(prefix, {}))])
            node = items[0]
        else:
            node = node.setdefault(part, copy.deepcopy(REQUIRED.get(prefix, {})))
    last = parts[-1]
    if last.endswith("[]"):
        node[last[:-2]] = [value]
    else:
        node[last] = value
    return doc


def built(kind: str, doc: dict[str, Any]) -> Any:
    assert schema_errors(kind, doc) == [], doc
    builder = DocumentBuilder(Origin())
    result = getattr(builder, BUILD[kind])(doc)
    assert builder.diagnostics == [], doc
    return result


def field_schema(kind: str, path: str) -> dict[str, Any]:
    node: dict[str, Any] = kind_schema(kind)
    for part in path.split("."):
        if part.endswith("[]"):
            node = node["properties"][part[:-2]]["items"]
        else:
            node = node["properties"][part]
    return node


def other_value(schema: dict[str, Any], value: Any) -> Any:
    """A valid value of the field that is not its default."""
    if "enum" in schema:
        return next(v for v in schema["enum"] if v != value)
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1 if value + 1 <= schema.get("maximum", value + 1) else value - 1
    if isinstance(value, list):
        return [next(iter(schema["items"]["examples"]))]
    return next((e for e in schema.get("examples", ()) if e != value), f"{value}x")


def test_the_schemas_declare_defaults() -> None:
    assert len(ALL_DEFAULTS) >= 36
    assert default("Node", "spec.run.retries") == 0
    assert default("Config", "spec.retention.logs") == {
        "shared": "7d",
        "exclusive": "30d",
        "serverless": "30d",
    }
    with pytest.raises(KeyError):
        default("Node", "spec.schedule")


@pytest.mark.parametrize(("kind", "path"), ALL_DEFAULTS, ids=[f"{k}:{p}" for k, p in ALL_DEFAULTS])
def test_build_fills_in_the_schemas_default(kind: str, path: str) -> None:
    value = default(kind, path)
    parent = path.rsplit(".", 1)[0]
    base = document(kind)
    if parent in REQUIRED:  # a field of an optional object: the object is there in both
        made = copy.deepcopy(REQUIRED[parent])
        base = with_field(
            kind, parent.removesuffix("[]"), [made] if parent.endswith("[]") else made
        )
    written = with_field(kind, path, value)
    assert built(kind, written) == built(kind, base)
    other = with_field(kind, path, other_value(field_schema(kind, path), value))
    assert built(kind, other) != built(kind, base), "build does not read the field"


def test_the_models_defaults_are_what_build_makes_of_a_minimal_document() -> None:
    day = date(2024, 3, 1)
    assert built("Workspace", document("Workspace")) == Workspace("w")
    assert built("ResourceGroup", document("ResourceGroup")) == ResourceGroup("r", 2)
    assert built("Node", document("Node")) == Node("n", "w", "0 2 * * *", Run(("true",)))
    assert built("Backfill", document("Backfill")) == Backfill(
        "b", Selection("workspace", roots=("a",), workspaces=("w",)), (Period(day, day),)
    )
    assert built("Config", document("Config")) == Config()
    smtp = with_field("Config", "spec.alerts.smtp", REQUIRED["spec.alerts.smtp"])
    assert built("Config", smtp).smtp == Smtp("smtp.example.com", "bf@example.com")
    policies = with_field("Config", "spec.policies", [REQUIRED["spec.policies[]"]])
    assert built("Config", policies).policies == (Policy("p", ("true",)),)
