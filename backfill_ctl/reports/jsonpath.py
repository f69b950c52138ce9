"""A small subset of kubectl's JSONPath templates, for `get -o jsonpath=`, `-o
custom-columns=` and `--sort-by=`.

A template is text with expressions in braces:

- a path: `{.status.state}`, `{.items[*].metadata.name}`, `{.items[0].spec}`,
  `{.metadata.labels['team']}`, `{.items[-1:]}`; `$` is the root, `@` the current object;
  `[*]` and `.*` take every element (or value of a map), `[N]` one (negative from the end),
  `[A:B]` a slice;
- a literal: `{"\\n"}`, `{"\\t"}` (JSON escapes);
- `{range PATH}...{end}`: the text between, once per result of PATH, in which a path
  (`{.metadata.name}`) starts from that result.

Several results of one path print separated by a space. A string prints as is; anything
else as JSON (`true`, `3`, `null`, `{"a":1}`). A field that is missing gives no result, as
kubectl's `get` (which allows missing keys). Filters (`[?()]`) and recursive descent (`..`)
are not supported: they are refused, as any other malformed template, with a UsageError.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from backfill_ctl.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

HINT = (
    "write a template like {.items[*].metadata.name} or "
    '{range .items[*]}{.metadata.name}{"\\n"}{end}'
)
_NAME = re.compile(r"[A-Za-z0-9_$-]+|\*")
_INDEX = re.compile(r"\[\s*(-?\d*)\s*(?::\s*(-?\d*)\s*)?\]")
_QUOTED = re.compile(r"""\[\s*(?:'([^']*)'|"([^"]*)")\s*\]""")


class JSONPathError(UsageError):
    """A template that cannot be parsed (exit 2)."""


@dataclass(frozen=True)
class Step:
    """One step of a JSONPath: a field, every item, an index or a slice."""

    kind: str  # "field" | "all" | "index" | "slice"
    name: str = ""
    start: int | None = None
    stop: int | None = None


@dataclass(frozen=True)
class Path:
    """A JSONPath of a template: its steps, from the root or the current item."""

    steps: tuple[Step, ...]
    from_root: bool  # `$`: from the template's root, even inside a range


@dataclass(frozen=True)
class Range:
    """A `{range PATH}...{end}` of a template: its path and what it repeats."""

    path: Path
    body: tuple[Node, ...]


Node = str | Path | Range


def _error(template: str, why: str) -> JSONPathError:
    return JSONPathError(f"jsonpath {template!r}: {why}", hint=HINT)


def _bracket(text: str, n: int, template: str) -> tuple[Step, int]:
    if text.startswith("[?", n) or text.startswith("[(", n):
        raise _error(template, "filters and script expressions are not supported")
    if found := _QUOTED.match(text, n):
        return Step("field", found.group(1) if found.group(1) is not None else found.group(2)), (
            found.end()
        )
    if text.startswith("[*]", n):
        return Step("all"), n + 3
    found = _INDEX.match(text, n)
    if found is None or (found.group(2) is None and found.group(1) in ("", "-")):
        raise _error(template, f"cannot read {text[n:]!r}")
    start = int(found.group(1)) if found.group(1) not in ("", "-") else None
    if found.group(2) is None:
        return Step("index", start=start), found.end()
    stop = int(found.group(2)) if found.group(2) not in ("", "-") else None
    return Step("slice", start=start, stop=stop), found.end()


def parse_path(text: str, template: str) -> Path:
    """`.a.b[*]['c'][0]`, optionally after `$` or `@`."""
    text = text.strip()
    from_root = text.startswith("$")
    n = 1 if text[:1] in ("$", "@") else 0
    if n == len(text) and n:
        return Path((), from_root)
    steps: list[Step] = []
    while n < len(text):
        if text.startswith("..", n):
            raise _error(template, "recursive descent (..) is not supported")
        if text[n] == ".":
            found = _NAME.match(text, n + 1)
            if found is None:
                raise _error(template, f"a field name is missing after {text[: n + 1]!r}")
            word = found.group()
            steps.append(Step("all") if word == "*" else Step("field", word))
            n = found.end()
        elif text[n] == "[":
            step, n = _bracket(text, n, template)
            steps.append(step)
        else:
            raise _error(template, f"cannot read {text[n:]!r}: a path starts with a dot")
    if not steps and text[:1] not in ("$", "@"):
        raise _error(template, "an empty expression")
    return Path(tuple(steps), from_root)


def _close(template: str, start: int) -> int:
    """The index of the `}` that closes the `{` at `start` (quotes may hold braces)."""
    quote = ""
    n = start + 1
    while n < len(template):
        char = template[n]
        if quote:
            if char == "\\":
                n += 1
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "}":
            return n
        elif char == "{":
            break
        n += 1
    raise _error(template, f"the brace at {start} is not closed")


def _tokens(template: str) -> Iterator[tuple[str, str]]:
    """("text", TEXT) and ("expr", INSIDE-BRACES) pieces."""
    n = 0
    while n < len(template):
        start = template.find("{", n)
        if start < 0:
            if "}" in template[n:]:
                raise _error(template, "a closing brace without an opening one")
            yield "text", template[n:]
            return
        if "}" in template[n:start]:
            raise _error(template, "a closing brace without an opening one")
        if start > n:
            yield "text", template[n:start]
        end = _close(template, start)
        yield "expr", template[start + 1 : end].strip()
        n = end + 1


def _literal(inside: str, template: str) -> str:
    try:
        value = json.loads(inside) if inside.startswith('"') else inside[1:-1]
    except json.JSONDecodeError as exc:
        raise _error(template, f"a malformed string {inside}") from exc
    if not isinstance(value, str) or inside[-1:] != inside[:1]:
        raise _error(template, f"a malformed string {inside}")
    return value


def parse(template: str) -> tuple[Node, ...]:
    """The template's nodes; a JSONPathError when it is malformed."""
    stack: list[tuple[Path | None, list[Node]]] = [(None, [])]
    for kind, piece in _tokens(template):
        body = stack[-1][1]
        if kind == "text":
            body.append(piece)
        elif piece == "end":
            if len(stack) == 1:
                raise _error(template, "{end} without a {range}")
            path, inner = stack.pop()
            assert path is not None
            stack[-1][1].append(Range(path, tuple(inner)))
        elif piece.startswith("range ") or piece == "range":
            stack.append((parse_path(piece[len("range") :], template), []))
        elif piece[:1] in ("'", '"'):
            body.append(_literal(piece, template))
        else:
            body.append(parse_path(piece, template))
    if len(stack) > 1:
        raise _error(template, "a {range} without its {end}")
    if not template:
        raise _error(template, "an empty template")
    return tuple(stack[0][1])


def relaxed(expression: str) -> tuple[Node, ...]:
    """kubectl's relaxed form (custom-columns, --sort-by): `.a.b`, `a.b` or `{.a.b}`."""
    text = expression.strip()
    if text.startswith("{") and text.endswith("}"):
        return parse(text)
    if text and text[0] not in ".[$@":
        text = "." + text
    return parse("{" + text + "}")


def _step(value: Any, step: Step) -> list[Any]:
    if step.kind == "field":
        return [value[step.name]] if isinstance(value, dict) and step.name in value else []
    if step.kind == "all":
        if isinstance(value, dict):
            return list(value.values())
        return list(value) if isinstance(value, list) else []
    if not isinstance(value, list):
        return []
    if step.kind == "index":
        assert step.start is not None
        return [value[step.start]] if -len(value) <= step.start < len(value) else []
    return value[step.start : step.stop]


def find(path: Path, root: Any, current: Any) -> list[Any]:
    """Every value `path` reaches."""
    values = [root if path.from_root else current]
    for step in path.steps:
        values = [found for value in values for found in _step(value, step)]
    return values


def text_of(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _render(nodes: Sequence[Node], root: Any, current: Any) -> Iterator[str]:
    for node in nodes:
        if isinstance(node, str):
            yield node
        elif isinstance(node, Path):
            yield " ".join(text_of(v) for v in find(node, root, current))
        else:
            for value in find(node.path, root, current):
                yield from _render(node.body, root, value)


def render(nodes: Sequence[Node], data: Any) -> str:
    """The template's text on `data`."""
    return "".join(_render(nodes, data, data))


def values(nodes: Sequence[Node], data: Any) -> list[Any]:
    """The values a relaxed expression reaches (custom columns, sort keys)."""
    out: list[Any] = []
    for node in nodes:
        if isinstance(node, Path):
            out += find(node, data, data)
        elif isinstance(node, Range):
            out += [v for item in find(node.path, data, data) for v in values(node.body, item)]
    return out
