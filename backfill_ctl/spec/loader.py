"""Paths in, `Specs` out: every document read, schema-checked and built.

Loading never stops at the first problem. Each document goes through YAML parsing,
its kind's JSON Schema, then `DocumentBuilder`; a document with schema errors is not
built (its data cannot be trusted), but every other one is, so reference checks can
still run over the rest. Duplicate names are reported at the second definition.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from backfill_ctl.spec.build import DocumentBuilder
from backfill_ctl.spec.model import Backfill, Config, Node, Origin, ResourceGroup, Workspace
from backfill_ctl.spec.schema import validate_document
from backfill_ctl.spec.source import SourceFile, Sources, read_sources
from backfill_ctl.spec.yamlfile import RawDocument, parse_text

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import TextIO

    from backfill_ctl.errors import Diagnostic
    from backfill_ctl.spec.catalog import Catalog


@dataclass
class Specs:
    """Everything read from the spec paths."""

    workspaces: dict[str, Workspace] = field(default_factory=dict)
    resource_groups: dict[str, ResourceGroup] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)
    backfills: dict[str, Backfill] = field(default_factory=dict)
    config: Config = field(default_factory=Config)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    sources: Sources = field(default_factory=Sources)
    files: int = 0
    documents: list[RawDocument] = field(default_factory=list, repr=False)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    def catalog(self) -> Catalog:
        from backfill_ctl.spec.catalog import Catalog

        return Catalog(self.nodes, self.workspaces, self.resource_groups)

    def digest(self) -> str:
        """sha256 of the documents' content, independent of files, order and comments."""
        canonical = sorted(
            json.dumps(doc.data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            for doc in self.documents
        )
        h = hashlib.sha256()
        for text in canonical:
            h.update(text.encode())
            h.update(b"\n")
        return "sha256:" + h.hexdigest()


def load_specs(paths: Sequence[str], stdin: TextIO | None = None) -> Specs:
    """Read every spec document under `paths` (UsageError if a path is unusable)."""
    return load_files(read_sources(paths, stdin))


def load_files(files: Iterable[SourceFile]) -> Specs:
    specs = Specs()
    for file in files:
        specs.files += 1
        specs.sources.add(file)
        docs, diags = parse_text(file.name, file.text)
        specs.diagnostics.extend(diags)
        for doc in docs:
            if doc.data is None:
                continue  # an empty document (a trailing ---)
            specs.documents.append(doc)
            _add_document(specs, doc)
    return specs


def _add_document(specs: Specs, doc: RawDocument) -> None:
    kind, errors = validate_document(doc)
    specs.diagnostics.extend(errors)
    if kind is None or errors:
        return
    origin = Origin(doc.file, doc.index, doc.line)
    builder = DocumentBuilder(origin)
    data: dict[str, Any] = doc.data
    if kind == "Config":
        if specs.config.origin is not None:
            builder.error(
                ("kind",),
                f"a second Config (the first is at {specs.config.origin})",
                "keep one Config per repository",
                code="duplicate",
            )
        else:
            specs.config = builder.config(data)
    else:
        tables: dict[str, dict[str, Any]] = {
            "Workspace": specs.workspaces,
            "ResourceGroup": specs.resource_groups,
            "Node": specs.nodes,
            "Backfill": specs.backfills,
        }
        table = tables[kind]
        name = data["metadata"]["name"]
        if name in table:
            builder.error(
                ("metadata", "name"),
                f"{kind} {name!r} is already defined at {table[name].origin}",
                "rename one of them",
                code="duplicate",
            )
        else:
            build = {
                "Workspace": builder.workspace,
                "ResourceGroup": builder.resource_group,
                "Node": builder.node,
                "Backfill": builder.backfill,
            }[kind]
            table[name] = build(data)
    specs.diagnostics.extend(builder.diagnostics)
