"""Safe, strict YAML reading: documents as plain data, problems as diagnostics.

PyYAML is used only to parse (`compose`), with the C parser when it is available;
turning the node tree into data is done here so that every value can be checked
against the YAML 1.1 traps a spec author falls into:

- a duplicate key is an error (PyYAML would silently keep the last one);
- `yes`/`no`/`on`/`off` read as booleans are errors (write true/false or quote);
- `22:00` is kept as the string it looks like, not the base-60 integer 1320;
- dates and timestamps are kept as their text, so the schema decides their format;
- only the core tags are accepted: an explicit `!!python/...` tag is an error,
  never a constructor call.

Line and column of a JSON path are looked up later by composing the text again
(`locate`), so nothing but the text is kept while the specs are valid.
"""

from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from backfill_ctl.errors import Diagnostic, PathPart

if TYPE_CHECKING:
    from collections.abc import Iterator

try:  # the C parser is ~10x faster; the pure-Python one behaves the same
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader

_TAG = "tag:yaml.org,2002:"
# The tags compared on every node, built once (not `_STR` at each comparison).
_STR, _NULL, _BOOL, _INT, _FLOAT = (_TAG + k for k in ("str", "null", "bool", "int", "float"))
_SEQ, _MAP, _MERGE, _TIMESTAMP = (_TAG + k for k in ("seq", "map", "merge", "timestamp"))
_TRUE_FALSE = {"true", "false"}
_OCTAL = re.compile(r"^[-+]?0[0-7_]+$")
# Values a document may hold, and repeat through aliases, before we call it a "billion
# laughs": such a document is reported and dropped, not validated.
_MAX_VALUES = 2_000_000
MAX_ALIAS_VALUES = 100_000
# Its int/float constructors only read the node's text; one instance serves every file.
_SCALARS = _Loader("")
# A node's tag depends on its kind, text and quoting only (a SafeLoader has no path
# resolvers): resolved once per distinct text, not by regexes on each of the ~900,000
# scalars of a 20,000-document catalog (~1.5 us each, most of composing).
_resolve = functools.lru_cache(maxsize=1 << 16)(_SCALARS.resolve)


@dataclass(frozen=True, slots=True)
class RawDocument:
    """One YAML document as plain data, and where it came from."""

    file: str
    index: int  # position of the document in its file
    line: int  # 1-based line where the document's content starts
    data: Any


def compose_documents(text: str) -> Iterator[yaml.Node]:
    """Yield the node tree of every document in `text` (raises yaml.YAMLError)."""
    loader = _Loader(text)
    if not loader.yaml_path_resolvers:
        loader.resolve = _resolve  # type: ignore[method-assign]
    try:
        while loader.check_node():
            node = loader.get_node()
            assert node is not None  # check_node() said there is one
            yield node
    finally:
        loader.dispose()


def parse_text(file: str, text: str) -> tuple[list[RawDocument], list[Diagnostic]]:
    """Parse every document of one file; a syntax error ends that file only."""
    docs: list[RawDocument] = []
    diags: list[Diagnostic] = []
    index = 0
    try:
        for node in compose_documents(text):
            converter = _Converter(file, index)
            data = converter.convert(node, ())
            if converter.exhausted:
                data = None  # not validated: its errors would be as large as the document
            diags.extend(converter.diagnostics)
            docs.append(RawDocument(file, index, node.start_mark.line + 1, data))
            index += 1
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        diags.append(
            Diagnostic(
                f"YAML syntax error: {problem}",
                file=file,
                doc=index,
                code="yaml-syntax",
                hint=_syntax_hint(problem, _line_at(text, mark.line) if mark else ""),
                line=mark.line + 1 if mark else None,
                col=mark.column + 1 if mark else None,
            )
        )
    except yaml.YAMLError as exc:
        diags.append(Diagnostic(f"YAML error: {exc}", file=file, doc=index, code="yaml-syntax"))
    return docs, diags


_KIND_LINE = re.compile(r"^kind:[ \t]*['\"]?([A-Za-z]+)", re.M)
_NAME_LINE = re.compile(
    r"^metadata:[^\n]*?(?:\{[^}\n]*?\bname:[ \t]*|\n(?:[ \t]+[^\n]*\n)*?[ \t]+name:[ \t]*)"
    r"['\"]?([\w.-]+)",
    re.M,
)


def unparsed_documents(text: str, line: int) -> list[tuple[str, str, int]]:
    """(kind, name, 1-based line) of the documents a syntax error on `line` (0-based)
    left unread: its own and those after it, guessed from their text alone, so that a
    reference to one of them can say where it is instead of calling it unknown."""
    lines = text.splitlines(keepends=True)
    starts = [i for i, text_line in enumerate(lines) if text_line.startswith("---")]
    begin = max((i for i in starts if i <= line), default=0)
    bounds = [begin, *(i for i in starts if i > begin), len(lines)]
    found = []
    for first, end in itertools.pairwise(bounds):
        chunk = "".join(lines[first:end])
        kind, name = _KIND_LINE.search(chunk), _NAME_LINE.search(chunk)
        if kind and name:
            found.append(
                (kind.group(1), name.group(1), first + chunk.count("\n", 0, kind.start()) + 1)
            )
    return found


def _line_at(text: str, line: int) -> str:
    lines = text.splitlines()
    return lines[line] if 0 <= line < len(lines) else ""


def _octal_hint(text: str) -> str:
    sign = "-" if text.startswith("-") else ""
    digits = text.lstrip("+-").lstrip("0") or "0"
    return f"write {sign}{digits} (or {sign}0o{digits} for octal)"


def _syntax_hint(problem: str, line: str = "") -> str:
    # libyaml says "tab" only for some tab errors; a tab-indented line is the usual cause
    if "tab" in problem or "\t" in line[: len(line) - len(line.lstrip(" \t"))]:
        return "indent with spaces; YAML does not allow tabs for indentation"
    if "mapping values are not allowed" in problem:
        return "a value containing ': ' must be quoted"
    return "check the indentation and quoting around this position"


class _Converter:
    """Node tree -> plain data, collecting diagnostics instead of raising."""

    def __init__(self, file: str, doc: int) -> None:
        self.file = file
        self.doc = doc
        self.diagnostics: list[Diagnostic] = []
        self._budget = _MAX_VALUES
        self._repeats = MAX_ALIAS_VALUES  # values an alias may repeat
        self._seen: set[int] = set()
        self._active: set[int] = set()
        self.exhausted = False

    def _error(self, node: yaml.Node, path: tuple[PathPart, ...], msg: str, hint: str) -> None:
        mark = node.start_mark
        self.diagnostics.append(
            Diagnostic(
                msg,
                file=self.file,
                doc=self.doc,
                path=path,
                hint=hint,
                code="yaml",
                line=mark.line + 1,
                col=mark.column + 1,
            )
        )

    def convert(self, node: yaml.Node, path: tuple[PathPart, ...]) -> Any:
        self._budget -= 1
        key = id(node)
        if key in self._seen:
            self._repeats -= 1
        else:
            self._seen.add(key)
        if self._budget < 0 or self._repeats < 0:
            if not self.exhausted:
                self.exhausted = True
                self._error(node, path, *self._too_many())
            return None
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _STR:  # most values: no check to make
                return str(node.value)
            return self._scalar(node, path)
        if id(node) in self._active:
            self._error(node, path, "recursive alias", "an alias may not refer to itself")
            return None
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                self._check_tag(node, path, _SEQ)
                return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
            if isinstance(node, yaml.MappingNode):
                self._check_tag(node, path, _MAP)
                return self._mapping(node, path)
        finally:
            self._active.discard(id(node))
        return None  # pragma: no cover - the three node kinds are exhaustive

    def _too_many(self) -> tuple[str, str]:
        if self._repeats < 0:
            return (
                f"aliases expand this document to more than {MAX_ALIAS_VALUES} repeated values",
                "remove the aliases that repeat large parts of the document",
            )
        return (
            f"document has more than {_MAX_VALUES} values",
            "split it into smaller documents",
        )

    def _check_tag(self, node: yaml.Node, path: tuple[PathPart, ...], tag: str) -> None:
        if node.tag != tag:
            self._error(
                node,
                path,
                f"unsupported YAML tag {node.tag!r}",
                "remove the explicit tag; specs use plain YAML only",
            )

    def _mapping(self, node: yaml.MappingNode, path: tuple[PathPart, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        seen: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            tag = key_node.tag
            if tag == _MERGE:
                merged.update(self._merge_source(value_node, path))
                continue
            # Most keys are plain strings: _key only for the others.
            key = (
                str(key_node.value)
                if tag == _STR and isinstance(key_node, yaml.ScalarNode)
                else self._key(key_node, path)
            )
            if key is None:
                continue
            if key in seen:
                first = seen[key].start_mark.line + 1
                self._error(
                    key_node,
                    (*path, key),
                    f"duplicate key {key!r} (first defined on line {first})",
                    "remove one of the two; YAML would keep only the last",
                )
                continue
            seen[key] = key_node
            out[key] = self.convert(value_node, (*path, key))
        if merged:
            return {**merged, **out}
        return out

    def _merge_source(self, node: yaml.Node, path: tuple[PathPart, ...]) -> dict[str, Any]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        result: dict[str, Any] = {}
        for source in reversed(sources):  # earlier sources win, as YAML specifies
            value = self.convert(source, path)
            if isinstance(value, dict):
                result.update(value)
            else:
                self._error(
                    source,
                    path,
                    "a merge key (<<) needs a mapping",
                    "merge only anchors of mappings",
                )
        return result

    def _key(self, node: yaml.Node, path: tuple[PathPart, ...]) -> str | None:
        if isinstance(node, yaml.ScalarNode) and node.tag == _STR:
            return str(node.value)
        if isinstance(node, yaml.ScalarNode) and node.tag == _BOOL:
            self._error(
                node,
                (*path, str(node.value)),
                f"key {node.value!r} is read as a boolean by YAML 1.1",
                f'quote it: "{node.value}":',
            )
            return None
        if isinstance(node, yaml.ScalarNode):
            return str(node.value)  # numbers and dates as keys are kept as their text
        self._error(
            node,
            path,
            "mapping keys must be plain strings",
            "use a string key, not a list or a mapping",
        )
        return None

    def _scalar(self, node: yaml.ScalarNode, path: tuple[PathPart, ...]) -> Any:
        tag = node.tag
        text = str(node.value)
        if tag == _STR:
            return text
        if tag == _NULL:
            return None
        if tag == _BOOL:
            if text.lower() not in _TRUE_FALSE:
                self._error(
                    node,
                    path,
                    f"{text!r} is read as a boolean by YAML 1.1",
                    f'write true or false, or quote it ("{text}") for a string',
                )
            return text.lower() in {"true", "yes", "on", "y"}
        if tag in (_INT, _FLOAT):
            if ":" in text:  # base-60 in YAML 1.1 (22:00 == 1320): keep what the author wrote
                return text
            if _OCTAL.match(text):  # YAML 1.1 reads 010 as 8; YAML 1.2 and people as 10
                self._error(
                    node,
                    path,
                    f"{text!r} is read as an octal number by YAML 1.1",
                    _octal_hint(text),
                )
            try:
                if tag == _INT:
                    return _SCALARS.construct_yaml_int(node)
                return _SCALARS.construct_yaml_float(node)
            except ValueError:  # an explicit !!int / !!float on text that is not a number
                self._error(
                    node,
                    path,
                    f"{text!r} is not a number",
                    "remove the explicit tag; specs use plain YAML only",
                )
                return text
        if tag == _TIMESTAMP:
            return text  # the schema decides the format; the model parses it
        self._error(
            node,
            path,
            f"unsupported YAML tag {tag!r}",
            "remove the explicit tag; specs use plain YAML only",
        )
        return text
