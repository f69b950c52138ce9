"""Paths in, `Specs` out: every document read, schema-checked and built.

Loading never stops at the first problem. Each document goes through YAML parsing,
its kind's JSON Schema, then `DocumentBuilder`. A document with schema errors is built
without the fields they lie in (`spec.salvage`: each takes its default, a few required
ones a stand-in), so that its own checks and those of the documents that refer to it
still run in the same pass; the fields removed are kept in `Specs.removed`, and the
errors stand (nothing is planned from such a document). Duplicate names are reported at
the second definition.

A document built without a field other documents' checks read (`SHARED`: a node's
upstream, owners and parameters, a workspace's operators) is held back from the
catalog: a scope through it, or an override of its parameters, would be made up. It is
then like a document that could not be built at all (its kind, name or a required
field is wrong): where it is defined (kind and name, read from its data or, after a
YAML syntax error, guessed from its text) is kept in `Specs.broken`, and a reference to
it is a knock-on error that names its cause, not an "unknown" name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from backfill_ctl.hashes import sha256
from backfill_ctl.spec.build import DocumentBuilder
from backfill_ctl.spec.collector import collector_paused
from backfill_ctl.spec.forked import shared_map
from backfill_ctl.spec.model import Backfill, Config, Node, Origin, ResourceGroup, Workspace
from backfill_ctl.spec.salvage import salvage
from backfill_ctl.spec.schema import validate_document
from backfill_ctl.spec.source import SourceFile, Sources, read_sources
from backfill_ctl.spec.yamlfile import RawDocument, parse_text, unparsed_documents

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import TextIO

    from backfill_ctl.errors import Diagnostic, PathPart
    from backfill_ctl.spec.catalog import Catalog

    Checked = tuple[RawDocument, str | None, list[Diagnostic]]  # a document, its kind, errors


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
    # (kind, name) -> "file:line" of each document that has errors and is not listed
    broken: dict[tuple[str, str], str] = field(default_factory=dict)
    # (file, document index) -> the fields a document with schema errors was built
    # without, or with a stand-in for (spec.salvage)
    removed: dict[tuple[str, int], tuple[tuple[PathPart, ...], ...]] = field(default_factory=dict)
    # nodes built without a field others read: checked on their own, not in the catalog
    held_back: list[Node] = field(default_factory=list)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    def lacks(self, origin: Origin, *path: PathPart) -> bool:
        """Whether the document `origin` names was built without the field at `path`, or
        without a part of it (`spec.salvage`)."""
        return any(
            f[: len(path)] == path or path[: len(f)] == f
            for f in self.removed.get((origin.file, origin.doc), ())
        )

    def catalog(self) -> Catalog:
        from backfill_ctl.spec.catalog import Catalog

        return Catalog(self.nodes, self.workspaces, self.resource_groups)

    def digest(self) -> str:
        """sha256 of the documents' content, independent of files, order and comments."""
        canonical = sorted(
            json.dumps(doc.data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            for doc in self.documents
        )
        h = sha256()
        for text in canonical:
            h.update(text.encode())
            h.update(b"\n")
        return "sha256:" + h.hexdigest()


def load_specs(paths: Sequence[str], stdin: TextIO | None = None) -> Specs:
    """Read every spec document under `paths` (UsageError if a path is unusable)."""
    return load_files(read_sources(paths, stdin))


def load_files(files: Iterable[SourceFile]) -> Specs:
    with collector_paused():
        return _load_files(files)


# Characters of spec text from which a fork parses and checks half the files (~2,000
# documents): 20,000 take 1.5 s alone, a fork and its pickled results ~0.1 s.
SHARED_FROM = 1_000_000


def _read(file: SourceFile) -> tuple[list[Checked], list[Diagnostic]]:
    """A file's documents with their kinds and schema errors (`validate_document`),
    and its syntax errors: what depends on the file alone (`shared_map` may do it)."""
    docs, diags = parse_text(file.name, file.text)
    checked: list[Checked] = []
    for doc in docs:
        if doc.data is not None:  # (else an empty document: a trailing ---)
            kind, errors = validate_document(doc)
            checked.append((doc, kind, errors))
    return checked, diags


def _load_files(files: Iterable[SourceFile]) -> Specs:
    specs = Specs()
    sources = list(files)
    read = shared_map(_read, sources, [len(f.text) for f in sources], least=SHARED_FROM)
    for file, (checked, diags) in zip(sources, read, strict=True):
        specs.files += 1
        specs.sources.add(file)
        specs.diagnostics.extend(diags)
        for diag in diags:
            if diag.code == "yaml-syntax" and diag.line is not None:
                for kind, name, line in unparsed_documents(file.text, diag.line - 1):
                    specs.broken.setdefault((kind, name), f"{file.name}:{line}")
        for doc, found, errors in checked:
            specs.documents.append(doc)
            _add_document(specs, doc, found, errors)
    return specs


# The fields of a kind other documents' checks read: a document built without one of
# them is held back from the catalog (see the module docstring).
SHARED: dict[str, tuple[tuple[str, ...], ...]] = {
    "Node": (("spec", "upstream"), ("metadata", "owners"), ("spec", "parameters")),
    "Workspace": (("spec", "operators"),),
}


def _add_document(
    specs: Specs, doc: RawDocument, kind: str | None, errors: list[Diagnostic]
) -> None:
    specs.diagnostics.extend(errors)
    if kind is None:
        return
    data: dict[str, Any] = doc.data
    removed: tuple[tuple[PathPart, ...], ...] = ()
    if errors:
        kept = salvage(kind, data, errors)
        if kept is None:
            name = _name_of(data)
            if name is not None:
                specs.broken.setdefault((kind, name), f"{doc.file}:{doc.line}")
            return
        data, removed = kept
        specs.removed[(doc.file, doc.index)] = removed
    origin = Origin(doc.file, doc.index, doc.line)
    builder = DocumentBuilder(origin)
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
        build = {
            "Workspace": builder.workspace,
            "ResourceGroup": builder.resource_group,
            "Node": builder.node,
            "Backfill": builder.backfill,
        }[kind]
        if any(f[: len(s)] == s for f in removed for s in SHARED.get(kind, ())):
            built = build(data)  # its own checks
            specs.broken.setdefault((kind, name), f"{doc.file}:{doc.line}")
            if isinstance(built, Node):
                specs.held_back.append(built)
        elif name in table:
            builder.error(
                ("metadata", "name"),
                f"{kind} {name!r} is already defined at {table[name].origin}",
                "rename one of them",
                code="duplicate",
            )
        else:
            table[name] = build(data)
    specs.diagnostics.extend(builder.diagnostics)


def _name_of(data: Any) -> str | None:
    meta = data.get("metadata") if isinstance(data, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) else None
