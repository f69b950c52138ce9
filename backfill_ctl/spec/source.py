"""Reading spec files from paths, and finding the line of a JSON path in them.

`read_sources` expands the command-line paths (files, directories recursively, `-`
for stdin) into `SourceFile`s. `Sources.locate` turns the (file, document, JSON path)
of a diagnostic into a line and column by composing the file again; it runs only
when there is something to report, so valid specs keep nothing but their text.

A spec file larger than `MAX_SPEC_BYTES` (10 MiB; `read_sources(max_bytes=...)` for
another limit) is refused before it is read or parsed: specs are small, and a huge
file would only cost minutes and gigabytes before failing anyway.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from backfill_ctl.errors import Diagnostic, PathPart, UsageError
from backfill_ctl.spec.yamlfile import compose_documents

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import TextIO

YAML_SUFFIXES = (".yaml", ".yml")
STDIN = "-"
STDIN_NAME = "<stdin>"
MAX_SPEC_BYTES = 10 * 1024 * 1024


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit} ({n} bytes)"
    return f"{n} bytes"


def _too_large(name: str, size: int, limit: int) -> UsageError:
    return UsageError(
        f"{name}: {_size(size)} is larger than the limit of {_size(limit)} for a spec file",
        hint="split it into several smaller spec files",
    )


@dataclass(frozen=True, slots=True)
class SourceFile:
    """The text of one spec file, under the name shown to the user."""

    name: str  # as shown to the user: the path as given, or <stdin>
    text: str


def read_sources(
    paths: Sequence[str], stdin: TextIO | None = None, *, max_bytes: int = MAX_SPEC_BYTES
) -> list[SourceFile]:
    """Every YAML file under `paths`, in a stable order, each read once (UsageError for
    one larger than `max_bytes`)."""
    if not paths:
        raise UsageError("no spec paths given", hint="pass files or directories, or - for stdin")
    limit = max_bytes
    seen: set[Path] = set()
    names: set[str] = set()
    files: list[SourceFile] = []
    for arg in paths:
        if arg == STDIN:
            if STDIN_NAME not in names:  # a second - would read nothing
                names.add(STDIN_NAME)
                stream = stdin if stdin is not None else sys.stdin
                files.append(SourceFile(STDIN_NAME, _read_stdin(stream, limit)))
            continue
        path = Path(arg)
        if path.is_dir():
            found = sorted(_yaml_files(path))
            if not found:
                raise UsageError(
                    f"{arg}: no .yaml or .yml files in this directory",
                    hint="pass the directory that holds your specs",
                )
        elif path.exists():
            found = [path]
        else:
            raise UsageError(
                f"{arg}: no such file or directory",
                hint="check the path; it is relative to the current directory",
            )
        for file in found:
            key = file.resolve()
            if key not in seen:
                seen.add(key)
                files.append(SourceFile(str(file), _read(file, limit)))
    return files


def is_spec_file(parts: Sequence[str]) -> bool:
    """A path below a spec directory (as parts) that holds specs: YAML, not hidden."""
    if any(part.startswith(".") for part in parts):
        return False  # .git, .github, editor folders
    return bool(parts) and Path(parts[-1]).suffix.lower() in YAML_SUFFIXES


def _yaml_files(root: Path) -> Iterable[Path]:
    for path in root.rglob("*"):
        if is_spec_file(path.relative_to(root).parts) and path.is_file():
            yield path


def _read(path: Path, limit: int) -> str:
    try:
        size = path.stat().st_size
        if size > limit:
            raise _too_large(str(path), size, limit)
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raw = exc.object[: exc.start]
        line = raw.count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n") + 1) + 1
        raise UsageError(
            f"{path}:{line}:{col}: not UTF-8 text ({exc.reason})",
            hint="save the file as UTF-8",
        ) from exc
    except OSError as exc:
        raise UsageError(
            f"{path}: cannot read: {exc.strerror}", hint="check the file's permissions"
        ) from exc


def _read_stdin(stream: TextIO, limit: int) -> str:
    """stdin's text; its bytes are UTF-8 or it is a UsageError, as for a file."""
    try:
        text = stream.read(limit + 1)  # characters: at least as many bytes
        if len(text) > limit or len(text.encode("utf-8", "surrogateescape")) > limit:
            raise _too_large(STDIN_NAME, len(text.encode("utf-8", "surrogateescape")), limit)
        text.encode("utf-8")  # undecodable bytes come back as surrogates (surrogateescape)
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{STDIN_NAME}: not UTF-8 text ({exc.reason})", hint="send UTF-8 text"
        ) from exc
    except UnicodeEncodeError as exc:
        raise UsageError(f"{STDIN_NAME}: not UTF-8 text", hint="send UTF-8 text") from exc
    return text


class Sources:
    """The text of every loaded file, to locate diagnostics on demand."""

    def __init__(self, files: Iterable[SourceFile] = ()) -> None:
        self._text = {f.name: f.text for f in files}
        self._nodes: dict[str, list[yaml.Node]] = {}

    def add(self, file: SourceFile) -> None:
        self._text[file.name] = file.text

    def locate(self, diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
        """Fill in line and column where they are missing; sort by file and line, the
        knock-on diagnostics (those with a `cause`) after every other. A diagnostic found
        twice (the same in every field: by two checks, or two rules of a schema) is
        shown once."""
        located = [d if d.line is not None else self._locate_one(d) for d in diagnostics]
        return sorted(
            dict.fromkeys(located),
            key=lambda d: (d.cause is not None, d.file, d.line or 0, d.col or 0),
        )

    def _locate_one(self, diag: Diagnostic) -> Diagnostic:
        docs = self._documents(diag.file)
        if diag.doc >= len(docs):
            return diag
        line, col = _walk(docs[diag.doc], diag.path)
        return diag.at(line, col)

    def _documents(self, file: str) -> list[yaml.Node]:
        if file not in self._nodes:
            nodes: list[yaml.Node] = []
            # the documents before a syntax error can still be located
            with contextlib.suppress(yaml.YAMLError):
                nodes.extend(compose_documents(self._text.get(file, "")))
            self._nodes[file] = nodes
        return self._nodes[file]


def _walk(node: yaml.Node, path: Sequence[PathPart]) -> tuple[int, int]:
    """Line and column (1-based) of `path` in a document; the deepest node found.

    The last step into a mapping points at the key (where the author looks for an
    unknown or misspelt field); other steps point at values.
    """
    mark = node.start_mark
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, yaml.MappingNode):
            pair = _find_key(node, str(part))
            if pair is None:
                break
            key_node, value_node = pair
            mark = key_node.start_mark if last else value_node.start_mark
            node = value_node
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            mark = node.start_mark
        else:
            break
    return mark.line + 1, mark.column + 1


def _find_key(node: yaml.MappingNode, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and str(key_node.value) == key:
            return key_node, value_node
    for key_node, value_node in node.value:  # then keys brought in by a merge (<<)
        if key_node.tag.endswith(":merge"):
            sources = (
                value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            )
            for source in sources:
                if isinstance(source, yaml.MappingNode):
                    found = _find_key(source, key)
                    if found:
                        return found
    return None
