"""Scheduling parameters: DataWorks-style templates, compiled once and rendered cheaply.

Grammar (anything else is literal text):

    $$            a literal `$`
    ${name}       the named parameter `name`; looked up first
    ${FORMAT}     the business date: tokens yyyy yy mm dd, separators `-_/.: ` between
                  tokens, optional `[+-]N` at the end in the finest unit present
                  (dd: days, mm: months, yyyy/yy: years)
    $[FORMAT]     the scheduled time: tokens yyyy yy mm dd hh24 mi ss, optional `[+-]N`
                  days, `[+-]N/24` hours or `[+-]N/24/60` minutes
    $[add_months(FORMAT,N)]   the scheduled time N months away
    $bizdate $bizmonth $cyctime $jobid $nodeid $taskid $gmtdate   built-ins (whole words)
    $other        left alone: shell syntax, not ours

`${FORMAT}` and `$[FORMAT]` are parsed and evaluated by `timeexpr`. Every error is
raised when compiling; rendering cannot fail.

Caching: a template compiles into a tuple of parts, each a literal string or a small
frozen expression. The expression parsers are `lru_cache`d, so `${yyyymmdd}` in a
thousand nodes (and `$bizdate`) is one object, and `render` memoizes its value in the
caller's `cache` under `(expr, ctx.bizdate)` or `(expr, ctx.cyctime)`: 900,000 instances
over 365 dates format each distinct expression 365 times. `$jobid $nodeid $taskid
$gmtdate` are read from the context on every render. A referenced parameter is inlined
(a constant one as text), so `${pt}` costs what `${yyyymmdd}` costs.

String commands (`compile_command`, see "string commands" below) are the exception to
inlining: a parameter's value never enters the text given to `/bin/sh -c`. Each
reference becomes an expansion of the parameter's environment variable, spelt for the
quoting context it stands in, which is worked out once per command when compiling; so
a command whose only dynamic parts are parameters renders to one constant text.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias

from backfill_ctl.core.timeexpr import (
    BUSINESS_TOKENS,
    ExprError,
    TimeExpr,
    business_expr,
    scheduled_expr,
)
from backfill_ctl.errors import BackfillError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

Cache = dict[object, str]


class ParamError(BackfillError):
    """A template or a set of parameters cannot be compiled."""

    def __init__(
        self, message: str, *, hint: str | None = None, parameter: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.parameter = parameter  # the parameter whose template is bad, if any


class Context(NamedTuple):
    """What one instance's templates are rendered from.

    A NamedTuple: the planner builds one per instance, and it is three times cheaper
    to build than a frozen dataclass.
    """

    bizdate: date
    cyctime: datetime  # naive wall-clock scheduled time in the node's timezone
    taskid: str = ""
    nodeid: str = ""
    jobid: str = ""
    gmtdate: date | None = None  # the run date: unknown while planning


@dataclass(frozen=True, slots=True)
class _Field:
    """`$jobid`, `$nodeid`, `$taskid`, `$gmtdate`: read per instance, never cached."""

    name: str

    def value(self, ctx: Context, cache: Cache | None) -> str:
        v = getattr(ctx, self.name)
        if isinstance(v, date):
            return f"{v.year:04d}{v.month:02d}{v.day:02d}"
        # An unknown run date stays `$gmtdate` for the executor to render again.
        return "$gmtdate" if v is None else str(v)


_Expr: TypeAlias = "TimeExpr | _Field"
_Part: TypeAlias = "str | _Expr"
_ShellPart: TypeAlias = "str | _Expr | _Word"

_BUILTINS: dict[str, _Expr] = {
    "bizdate": business_expr("yyyymmdd"),
    "bizmonth": business_expr("yyyymm"),
    "cyctime": scheduled_expr("yyyymmddhh24miss"),
    **{name: _Field(name) for name in ("jobid", "nodeid", "taskid", "gmtdate")},
}
_LEX = re.compile(r"\$(?:(\$)|\{([^}]*)\}|\[([^\]]*)\]|([A-Za-z_][A-Za-z0-9_]*)|([{\[]))")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BIZ_HINT = (
    "${...} is a named parameter or the business date: tokens yyyy yy mm dd and an "
    "optional offset, e.g. ${yyyymmdd-1}; write $${...} for a literal ${...}"
)
_CYC_HINT = (
    "$[...] is the scheduled time: tokens yyyy yy mm dd hh24 mi ss, offsets -N (days), "
    "-N/24 (hours), -N/24/60 (minutes), add_months(yyyymmdd,-N) (months)"
)


def _scan(text: str) -> Iterator[str | re.Match[str]]:
    pos = 0
    for match in _LEX.finditer(text):
        if match.start() > pos:
            yield text[pos : match.start()]
        yield match
        pos = match.end()
    if pos < len(text):
        yield text[pos:]


def _brace_error(content: str, bad: ExprError, names: Iterable[str]) -> ParamError:
    message = f"unknown parameter or time expression ${{{content}}}"
    # A plain word is most likely a misspelt parameter: token-level detail would mislead.
    if not _IDENT.fullmatch(content) or content.lower().startswith(BUSINESS_TOKENS):
        message += f": {bad}"
    hint = f"did you mean ${content}? {_BIZ_HINT}" if content in _BUILTINS else _BIZ_HINT
    known = ", ".join(sorted(names))
    defined = f"defined parameters: {known}" if known else "no parameters are defined"
    return ParamError(message, hint=f"{hint}; {defined}")


def _append(parts: list[_Part], part: _Part) -> None:
    if isinstance(part, str) and parts and isinstance(parts[-1], str):
        parts[-1] += part
    elif part != "":
        parts.append(part)


class Template:
    """A compiled template; build it with `compile_template` or `compile_parameters`."""

    __slots__ = (
        "_const",
        "_parts",
        "_shell",
        "_shell_const",
        "_single",
        "is_constant",
        "parameters",
        "text",
    )
    _const: str | None
    _parts: tuple[_Part, ...]
    _single: _Expr | None

    def __init__(
        self,
        text: str,
        items: Iterable[str | _Expr | Template],
        parameters: frozenset[str] = frozenset(),
        shell: Iterable[_ShellPart] | None = None,
    ) -> None:
        self.text = text
        self.parameters = parameters
        plain: list[_Part] = []
        for item in items:
            if not isinstance(item, Template):
                _append(plain, item)
            elif item._const is not None:
                _append(plain, item._const)
            else:
                for part in item._parts:
                    _append(plain, part)
        self._parts = tuple(plain)
        literal = [p for p in plain if isinstance(p, str)]
        self.is_constant = len(literal) == len(plain)
        self._const = "".join(literal) if self.is_constant else None
        self._single = plain[0] if len(plain) == 1 and not isinstance(plain[0], str) else None
        self._shell: tuple[_ShellPart, ...] | None = None
        self._shell_const: str | None = None
        if shell is not None:
            parts: list[_ShellPart] = []
            for piece in shell:
                if isinstance(piece, str) and parts and isinstance(parts[-1], str):
                    parts[-1] += piece
                elif piece != "":
                    parts.append(piece)
            self._shell = tuple(parts)
            if all(isinstance(p, str) for p in parts):
                self._shell_const = "".join(p for p in parts if isinstance(p, str))

    @property
    def constant(self) -> str | None:
        """The rendered value when it never depends on the context, else None."""
        return self._const

    def render(self, ctx: Context, cache: Cache | None = None) -> str:
        if self._const is not None:
            return self._const
        if self._single is not None:
            return self._single.value(ctx, cache)
        return "".join([p if isinstance(p, str) else p.value(ctx, cache) for p in self._parts])

    def render_shell(self, ctx: Context, cache: Cache | None = None) -> str:
        """The text for `/bin/sh -c` (of a template built by `compile_command`): each
        parameter reference is an expansion of its variable, so it is constant text."""
        if self._shell_const is not None:
            return self._shell_const
        if self._shell is None:
            raise TypeError(f"{self!r} was not compiled as a shell command")
        return "".join([p if isinstance(p, str) else p.value(ctx, cache) for p in self._shell])

    def value(self, ctx: Context, cache: Cache | None) -> str:
        return self.render(ctx, cache)

    def __repr__(self) -> str:
        return f"Template({self.text!r})"


def compile_template(text: str, parameters: Mapping[str, Template] | None = None) -> Template:
    """Compile `text`; `${name}` means `parameters[name]` when that exists."""
    if "$" not in text:
        return _literal(text)  # most argv elements: nothing to compile
    items, refs = _items(text, parameters or {})
    return Template(text, items, frozenset(refs.values()))


def _items(
    text: str, params: Mapping[str, Template]
) -> tuple[list[str | _Expr | Template], dict[int, str]]:
    """The pieces of `text`, and the parameter referenced at each index of them."""
    items: list[str | _Expr | Template] = []
    refs: dict[int, str] = {}
    for piece in _scan(text):
        if isinstance(piece, str):
            items.append(piece)
            continue
        dollar, brace, bracket, word, opened = piece.groups()
        if dollar:
            items.append("$")
        elif brace in params:
            refs[len(items)] = brace
            items.append(params[brace])
        elif brace is not None:
            try:
                items.append(business_expr(brace))
            except ExprError as bad:
                raise _brace_error(brace, bad, params) from None
        elif bracket is not None:
            try:
                items.append(scheduled_expr(bracket))
            except ExprError as bad:
                raise ParamError(
                    f"invalid scheduled-time expression $[{bracket}]: {bad}", hint=_CYC_HINT
                ) from None
        elif word is not None:
            items.append(_BUILTINS.get(word, piece.group()))
        else:
            raise ParamError(
                f"unterminated ${opened} in {text!r}", hint="close it, or write $$ for a literal $"
            )
    return items, refs


def env_name(parameter: str) -> str:
    """`pt` -> `BACKFILL_PARAM_PT`."""
    return "BACKFILL_PARAM_" + re.sub(r"[^A-Za-z0-9]", "_", parameter).upper()


@lru_cache(maxsize=65536)
def _literal(text: str) -> Template:
    return Template(text, [text] if text else [])


# --- string commands -----------------------------------------------------------------
#
# A string command runs with `/bin/sh -c`. A parameter's value may come from a Backfill
# anyone can propose, so it never becomes part of the command text: each reference
# becomes an expansion of the parameter's environment variable (`environment` exports
# it, exactly the value), and the shell does not parse what an expansion yields. How
# the expansion is written depends on where the reference stands in sh's quoting, which
# `_contexts` works out once per command from the (reviewed) template text:
#
#     bare           ${p}          ->  "${BACKFILL_PARAM_P}"   one word: no splitting, no glob
#     '...'          'a${p}b'      ->  'a'"${BACKFILL_PARAM_P}"'b'
#     "..."          "a${p}b"      ->  "a${BACKFILL_PARAM_P}b"
#     here-doc body  <<EOF ${p}    ->  ${BACKFILL_PARAM_P}   (unquoted delimiter: expanded)
#     $(...)         $(cmd ${p})   ->  as bare, whatever quotes surround the $(...)
#     # comment      # ${p}        ->  ${BACKFILL_PARAM_P}   (never runs)
#
# Where no spelling gives the value exactly, or where a shell evaluates the text it
# gets, compiling fails: inside `...` (rewritten by backslash rules, nested quotes are
# unspecified), $((...)) and ((...)) (bash evaluates a variable's value as an
# arithmetic expression, subscripts and all, so `a[$(cmd)]` would run), the shell's
# own ${...} (its words' quoting differs between shells), $'...' (not POSIX sh),
# a here-doc with a quoted delimiter (nothing expands there; the value spliced in could
# end the here-doc), a here-doc's delimiter, and right after a `\` or a `$` (they would
# change the expansion's first character). Time expressions and built-ins ($bizdate,
# $jobid, ...) hold only digits, name characters and the separators of their format:
# they stay inline, quoted as one word when bare, as before.
#
# The scan is a model of sh's quoting, not a parser: it does not know `case` patterns
# or aliases. If it misjudged a context, the expansion would still never run the value
# as code (an unquoted one at worst splits and globs): values are not in the text.

_BREAKS = " \t\n;&|()<>"  # after these, a `#` starts a comment
_EVALUATING = {
    "bq": (
        "inside `...`, where the shell rewrites the text and nested quotes are unspecified",
        "write $(...) instead of backquotes",
    ),
    "arith": (
        "inside arithmetic $((...)), which evaluates text as code in some shells",
        "pass the value as a word to a program that checks it is a number",
    ),
    "brace": (
        "inside the shell's own $${...}, whose quoting differs between shells",
        "assign it to a variable first (v=${name}) and expand that ($${v:-...})",
    ),
    "ansi": ("inside $'...', which /bin/sh need not support", "use '...' or \"...\" around it"),
}
_NOWHERE = {
    "escaped": (
        "right after a backslash, which would escape the expansion's first character",
        "remove the backslash; $${name} is a literal ${name}",
    ),
    "dollar": ("right after a $, which would join the expansion", "separate the $ from it"),
    "quoted-heredoc": (
        "in a here-document whose delimiter is quoted, where nothing is expanded",
        "unquote the delimiter (<<EOF) and escape \\$, \\` and \\\\ that must stay "
        "literal, or read $BACKFILL_PARAM_<NAME> in what the here-document feeds",
    ),
    "delimiter": ("in a here-document's delimiter", "use a fixed delimiter"),
}
_Unit: TypeAlias = "str | int"  # a character of the text, or the index of a reference


def _contexts(units: list[_Unit]) -> dict[int, str]:
    """The context of each reference: bare, single, double, here-doc, comment, or a
    key of `_EVALUATING` / `_NOWHERE` (where no expansion can stand)."""
    out: dict[int, str] = {}
    _walk(units, 0, len(units), "cmd", out, heredocs=True)
    return out


def _walk(
    units: list[_Unit], i: int, end: int, base: str, out: dict[int, str], *, heredocs: bool
) -> None:
    # A stack of [kind, open parentheses]: cmd (the top level or a $(...)), sq, dq, hd
    # (an unquoted here-doc body), comment, and the kinds of _EVALUATING.
    stack: list[list[Any]] = [[base, 0]]
    pending: list[tuple[str, bool, bool]] = []  # here-docs to read: delimiter, <<-, quoted
    word_start = True
    while i < end:
        u = units[i]
        nxt = units[i + 1] if i + 1 < end else None
        frame = stack[-1]
        kind = frame[0]
        if isinstance(u, int):
            out.setdefault(u, _context_of(stack))
            word_start = False
        elif kind == "sq":
            if u == "'":
                stack.pop()
        elif kind == "comment":
            if u == "\n":
                stack.pop()
                continue  # the newline ends a command: it may start here-doc bodies
        elif kind in ("bq", "ansi"):
            if u == "\\":
                i += 1
            elif u == ("`" if kind == "bq" else "'"):
                stack.pop()
        elif u == "\\":
            if isinstance(nxt, int):
                out[nxt] = "escaped"
            i += 1  # whatever follows is literal (or ours to refuse)
            word_start = False
        elif u == "$":
            if isinstance(nxt, int):
                out[nxt] = "dollar"
            elif nxt == "(":
                arith = i + 2 < end and units[i + 2] == "("
                stack.append(["arith" if arith else "subst", 0])
                i += 2 if arith else 1
            elif nxt == "{":
                stack.append(["brace", 0])
                i += 1
            elif nxt == "'" and kind not in ("dq", "hd"):
                stack.append(["ansi", 0])
                i += 1
            word_start = False
        elif u == "`":
            stack.append(["bq", 0])
        elif kind == "dq":
            if u == '"':
                stack.pop()
        elif kind == "hd":
            pass
        elif kind == "brace":
            if u == "}":
                stack.pop()
            elif u in "'\"":
                stack.append(["sq" if u == "'" else "dq", 0])
        elif kind == "arith":
            if u == "(":
                frame[1] += 1
            elif u == ")":
                if frame[1]:
                    frame[1] -= 1
                elif nxt == ")":
                    stack.pop()
                    i += 1
        else:  # cmd, subst: a command
            if u in "'\"":
                stack.append(["sq" if u == "'" else "dq", 0])
            elif u == "#" and word_start:
                stack.append(["comment", 0])
            elif u == "(" and word_start and nxt == "(":
                stack.append(["arith", 0])  # bash's ((...)); in sh two subshells
                i += 1
            elif u == "(":
                frame[1] += 1
            elif u == ")":
                if frame[1]:
                    frame[1] -= 1
                elif kind == "subst":
                    stack.pop()
            elif u == "<" and nxt == "<" and heredocs:
                i = _heredoc(units, i + 2, end, pending, out)
                word_start = True
                continue
            elif u == "\n" and pending:
                i = _bodies(units, i + 1, end, pending, out)
                pending.clear()
                word_start = True
                continue
            word_start = u in _BREAKS
        i += 1


def _context_of(stack: list[list[Any]]) -> str:
    for kind, _ in stack:
        if kind in _EVALUATING:
            return str(kind)
    kind = stack[-1][0]
    return {"cmd": "bare", "subst": "bare", "sq": "single", "dq": "double", "hd": "here-doc"}.get(
        kind, str(kind)
    )


def _heredoc(
    units: list[_Unit], i: int, end: int, pending: list[tuple[str, bool, bool]], out: dict[int, str]
) -> int:
    """Read the delimiter after `<<` (at `i`); the index after it."""
    if i < end and units[i] == "<":
        return i + 1  # bash's <<< here-string: a word, not a here-doc
    strip = i < end and units[i] == "-"
    i += strip
    while i < end and units[i] in (" ", "\t"):
        i += 1
    word: list[str] = []
    quoted = False
    quote: str | None = None
    while i < end:
        u = units[i]
        if isinstance(u, int):
            out[u] = "delimiter"
            quoted = True
        elif quote is not None:
            if u == quote:
                quote = None
            else:
                word.append(u)
        elif u in "'\"":
            quote, quoted = u, True
        elif u == "\\":
            quoted = True
            i += 1
            if i < end and isinstance(units[i], str):
                word.append(str(units[i]))
        elif u in _BREAKS:
            break
        else:
            word.append(u)
        i += 1
    pending.append(("".join(word), strip, quoted))
    return i


def _bodies(
    units: list[_Unit], i: int, end: int, pending: list[tuple[str, bool, bool]], out: dict[int, str]
) -> int:
    """Read the bodies of the pending here-docs from `i`; the index after the last."""
    for delimiter, strip, quoted in pending:
        start = i
        while True:
            stop = i
            while stop < end and units[stop] != "\n":
                stop += 1
            line = units[i:stop]
            text = "".join(u for u in line if isinstance(u, str))
            if len(text) == len(line) and (text.lstrip("\t") if strip else text) == delimiter:
                body_end, i = i, min(stop + 1, end)
                break
            if stop >= end:
                body_end = i = end
                break
            i = stop + 1
        if quoted:
            for u in units[start:body_end]:
                if isinstance(u, int):
                    out[u] = "quoted-heredoc"
        else:
            _walk(units, start, body_end, "hd", out, heredocs=False)
    return i


@dataclass(frozen=True, slots=True)
class _Word:
    """A time expression or built-in standing bare: its value as one shell word."""

    expr: TimeExpr | _Field

    def value(self, ctx: Context, cache: Cache | None) -> str:
        return shlex.quote(self.expr.value(ctx, cache))


def _expansion(name: str, context: str) -> str:
    var = "${" + env_name(name) + "}"
    if context == "bare":
        return f'"{var}"'
    if context == "single":
        return f"'\"{var}\"'"  # close the quote, expand in double quotes, reopen
    return var  # double, here-doc, comment


def compile_command(text: str, parameters: Mapping[str, Template] | None = None) -> Template:
    """Compile a string command; `render_shell` gives its text for `/bin/sh -c`, with
    each parameter reference an expansion of its variable (see above)."""
    if "$" not in text:
        return Template(text, [text], shell=[text])
    items, refs = _items(text, parameters or {})
    units: list[_Unit] = []
    for index, item in enumerate(items):
        units.extend(item if isinstance(item, str) else [index])
    contexts = _contexts(units)
    shell: list[_ShellPart] = []
    for index, item in enumerate(items):
        if isinstance(item, str):
            shell.append(item)
        elif index in refs:
            name, context = refs[index], contexts[index]
            problem = _EVALUATING.get(context) or _NOWHERE.get(context)
            if problem is not None:
                message, hint = problem
                hint = hint.replace("${name}", f"${{{name}}}")
                raise ParamError(
                    f"${{{name}}} stands {message}",
                    hint=hint.replace("BACKFILL_PARAM_<NAME>", env_name(name)),
                )
            shell.append(_expansion(name, context))
        elif isinstance(item, Template):  # unreachable: parameters are in `refs`
            raise AssertionError(item)
        else:
            shell.append(_Word(item) if contexts.get(index) == "bare" else item)
    return Template(text, items, frozenset(refs.values()), shell)


def compile_parameters(
    node_params: Iterable[tuple[str, str]], overrides: Iterable[tuple[str, str]] = ()
) -> dict[str, Template]:
    """Compile a node's parameters with a backfill's overrides applied.

    An override replaces the node's parameter of the same name (which keeps its place)
    or is appended. References are compiled first; a cycle is an error.
    """
    raw = dict(node_params)
    raw.update(overrides)
    by_env: dict[str, str] = {}
    for name in raw:
        other = by_env.setdefault(env_name(name), name)
        if other != name:
            raise ParamError(
                f"parameters {other} and {name} both map to environment variable {env_name(name)}",
                hint="rename one",
                parameter=name,
            )
    compiled: dict[str, Template] = {}
    path: list[str] = []

    def visit(name: str) -> None:
        if name in path:
            cycle = " -> ".join([*path[path.index(name) :], name])
            raise ParamError(
                f"parameter cycle: {cycle}",
                parameter=name,
                hint="a parameter cannot depend on itself, directly or not",
            )
        if name in compiled:
            return
        path.append(name)
        for piece in _scan(raw[name]):
            if not isinstance(piece, str) and piece.group(2) in raw:
                visit(piece.group(2))
        path.pop()
        try:
            compiled[name] = compile_template(raw[name], compiled)
        except ParamError as error:
            error.parameter = name
            raise

    for name in raw:
        visit(name)
    return {name: compiled[name] for name in raw}


def environment(
    params: Mapping[str, Template], ctx: Context, cache: Cache | None = None
) -> dict[str, str]:
    """The variables of an instance's process: the context, then one per parameter."""
    env = {
        "BACKFILL_BIZDATE": _BUILTINS["bizdate"].value(ctx, cache),
        "BACKFILL_CYCTIME": _BUILTINS["cyctime"].value(ctx, cache),
        "BACKFILL_TASKID": ctx.taskid,
        "BACKFILL_NODE": ctx.nodeid,
        "BACKFILL_NAME": ctx.jobid,
    }
    for name, template in params.items():
        env[env_name(name)] = template.render(ctx, cache)
    return env
