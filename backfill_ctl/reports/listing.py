"""The output formats of `get`: a listing of stored objects, then (with `-w`) what changed.

kubectl-like: `table` (the default) and `wide` (more columns), `json` and `yaml` (every
field: a list first, then one object per change, YAML documents separated by `---`),
`name` (`KIND/NAME` lines), `jsonpath` (a template, reports.jsonpath) and
`custom-columns` (`HEADER:PATH,...`). A table watched keeps its columns: they only widen,
so the rows printed earlier stay aligned with its header. `get` lists a kubectl `List`
(`Columns.as_list`); a jsonpath template reads the list first, then each changed object.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from backfill_ctl.errors import UsageError
from backfill_ctl.reports import jsonpath
from backfill_ctl.reports.base import Registry
from backfill_ctl.reports.text import table, width
from backfill_ctl.usecases.objects import as_list

if TYPE_CHECKING:
    from collections.abc import Sequence

    from backfill_ctl.reports.base import Sink


@dataclass(frozen=True)
class Item:
    """One listed object: its name, its table cells (normal and wide) and its data."""

    name: str  # backfill/NAME or instance/ID
    cells: tuple[str, ...]
    wide: tuple[str, ...]
    data: dict[str, Any]


@dataclass(frozen=True)
class Columns:
    """What is listed: its kind (for the empty message) and its table's header."""

    kind: str  # "backfills" | "instances"
    header: tuple[str, ...]
    wide: tuple[str, ...]  # the columns -o wide adds
    as_list: bool = False  # json, yaml, jsonpath: the listing is a kubectl List
    no_headers: bool = False  # tables: no header line
    template: str = ""  # jsonpath: the template; custom-columns: HEADER:PATH,...


class ListingReporter(Protocol):
    def listing(self, items: Sequence[Item]) -> None:
        """The first listing."""

    def changes(self, items: Sequence[Item]) -> None:
        """Objects that changed since (under -w)."""


class Table:
    def __init__(self, columns: Columns, sink: Sink, *, wide: bool = False) -> None:
        self.columns, self.sink, self.wide = columns, sink, wide
        self.header = columns.header + columns.wide if wide else columns.header
        self.widths = [width(h) for h in self.header]
        self.shown_header = columns.no_headers

    def _rows(self, items: Sequence[Item]) -> list[tuple[str, ...]]:
        return [i.cells + i.wide if self.wide else i.cells for i in items]

    def listing(self, items: Sequence[Item]) -> None:
        rows = self._rows(items)
        columns = range(len(self.header))
        self.widths = [max(width(r[c]) for r in [self.header, *rows]) for c in columns]
        if rows:
            shown = table([self.header, *rows])[1 if self.columns.no_headers else 0 :]
            self.sink.write("".join(line + "\n" for line in shown))
        else:
            self.sink.note(f"No {self.columns.kind} found.")
        self.shown_header = bool(rows) or self.columns.no_headers

    def changes(self, items: Sequence[Item]) -> None:
        rows = self._rows(items)
        for row in rows:  # columns only widen: earlier rows stay as printed
            self.widths = [max(w, width(cell)) for w, cell in zip(self.widths, row, strict=True)]
        shown = [*([] if self.shown_header else [self.header]), *rows]
        self.shown_header = True
        lines = table(shown, header=False, widths=self.widths) if shown else []
        self.sink.write("".join(line + "\n" for line in lines))


def _json(data: object) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _yaml(data: object) -> str:
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return str(yaml.dump(data, Dumper=dumper, sort_keys=False, width=120, allow_unicode=True))


class Data:
    """Every field: a list of objects, then each changed object (YAML: a document each)."""

    def __init__(
        self, columns: Columns, sink: Sink, dump: Callable[[object], str], separator: str
    ) -> None:
        self.sink, self.dump, self.separator = sink, dump, separator
        self.as_list = columns.as_list

    def listing(self, items: Sequence[Item]) -> None:
        data = [i.data for i in items]
        self.sink.write(self.dump(as_list(data) if self.as_list else data))

    def changes(self, items: Sequence[Item]) -> None:
        self.sink.write("".join(self.separator + self.dump(i.data) for i in items))


class Names:
    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    def listing(self, items: Sequence[Item]) -> None:
        self.sink.write("".join(f"{i.name}\n" for i in items))

    def changes(self, items: Sequence[Item]) -> None:
        self.listing(items)


class JSONPath:
    """`-o jsonpath=TEMPLATE`: the template on the list, then on each changed object."""

    def __init__(self, columns: Columns, sink: Sink) -> None:
        if not columns.template:
            raise UsageError(
                "-o jsonpath needs a template", hint="write -o jsonpath='{.items[*].metadata.name}'"
            )
        self.sink, self.template = sink, jsonpath.parse(columns.template)

    def listing(self, items: Sequence[Item]) -> None:
        self.sink.write(jsonpath.render(self.template, as_list(i.data for i in items)))

    def changes(self, items: Sequence[Item]) -> None:
        self.sink.write("".join(jsonpath.render(self.template, i.data) for i in items))


def custom_columns(spec: str) -> list[tuple[str, tuple[jsonpath.Node, ...]]]:
    """`NAME:.metadata.name,STATE:.status.state` -> [(header, expression)]."""
    out = []
    for part in spec.split(","):
        header, sep, path = part.partition(":")
        if not sep or not header.strip() or not path.strip():
            raise UsageError(
                f"-o custom-columns: {part!r} is not HEADER:PATH",
                hint="write -o custom-columns=NAME:.metadata.name,STATE:.status.state",
            )
        out.append((header.strip(), jsonpath.relaxed(path)))
    return out


def _column_text(found: list[Any]) -> str:
    shown = [jsonpath.text_of(v) for v in found if v is not None]
    return ",".join(shown) or "<none>"


class CustomColumns:
    """`-o custom-columns=HEADER:PATH,...`: a table of the paths' values on each object."""

    def __init__(self, columns: Columns, sink: Sink) -> None:
        self.paths = custom_columns(columns.template)
        header = tuple(h for h, _ in self.paths)
        self.table = Table(Columns(columns.kind, header, (), no_headers=columns.no_headers), sink)

    def _items(self, items: Sequence[Item]) -> list[Item]:
        cells = [
            tuple(_column_text(jsonpath.values(p, i.data)) for _, p in self.paths) for i in items
        ]
        return [Item(i.name, c, (), i.data) for i, c in zip(items, cells, strict=True)]

    def listing(self, items: Sequence[Item]) -> None:
        self.table.listing(self._items(items))

    def changes(self, items: Sequence[Item]) -> None:
        self.table.changes(self._items(items))


ListingReporterFactory = Callable[[Columns, "Sink"], ListingReporter]

GET: Registry[ListingReporterFactory] = Registry(
    "get",
    {
        "table": lambda columns, sink: Table(columns, sink),
        "wide": lambda columns, sink: Table(columns, sink, wide=True),
        "json": lambda columns, sink: Data(columns, sink, _json, ""),
        "yaml": lambda columns, sink: Data(columns, sink, _yaml, "---\n"),
        "name": lambda columns, sink: Names(sink),
        "jsonpath": JSONPath,
        "custom-columns": CustomColumns,
    },
)
