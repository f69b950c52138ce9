# shape: over 400 lines: what reads a Template's private parts (render, bind) stays here
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
$gmtdate` are read from the context, unless `bind` made them text for one node of a
plan. A referenced parameter is inlined (a constant one as text).

String commands (`compile_command`, see "string commands" below) are the exception to
inlining: a parameter's value never enters the text given to `/bin/sh -c`. Each
reference becomes an expansion of the parameter's environment variable, spelt for the
quoting context it stands in, which is worked out once per command when compiling; so
a command whose only dynamic parts are parameters renders to one constant text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, NamedTuple, TypeAlias

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

    from backfill_ctl.core import quoting

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
_ShellPart: TypeAlias = "str | _Expr | quoting.Word"

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
        plain = _flatten(items)
        self._parts = tuple(plain)
        literal = [p for p in plain if isinstance(p, str)]
        self.is_constant = len(literal) == len(plain)
        self._const = "".join(literal) if self.is_constant else None
        self._single = plain[0] if len(plain) == 1 and not isinstance(plain[0], str) else None
        self._shell: tuple[_ShellPart, ...] | None = None
        self._shell_const: str | None = None
        if shell is not None:
            self._shell = _shell_parts(shell)
            if all(isinstance(p, str) for p in self._shell):
                self._shell_const = "".join(p for p in self._shell if isinstance(p, str))

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

    def bind(self, ctx: Context) -> Template:
        """This template with `$nodeid $jobid $gmtdate` read from `ctx` once, as text.
        Bound templates of equal parts are one object (the first bound): the planner
        renders `${pt}` of a thousand nodes once per date."""
        parts = tuple(
            p.value(ctx, None) if isinstance(p, _Field) and p.name != "taskid" else p
            for p in self._parts
        )
        if len(_BOUND) > 4096:
            _BOUND.clear()
        return _BOUND.setdefault(parts, Template(self.text, parts, self.parameters))

    @property
    def per_tick(self) -> bool:
        """It reads the scheduled time or `$taskid` (of a bound template: its only field)."""
        return any(
            isinstance(p, _Field) or (isinstance(p, TimeExpr) and p.scheduled) for p in self._parts
        )

    def __repr__(self) -> str:
        return f"Template({self.text!r})"


_BOUND: dict[tuple[_Part, ...], Template] = {}


def _flatten(items: Iterable[str | _Expr | Template]) -> list[_Part]:
    """The parts of a template made of `items`: a parameter's template is inlined."""
    plain: list[_Part] = []
    for item in items:
        if not isinstance(item, Template):
            _append(plain, item)
        elif item._const is not None:
            _append(plain, item._const)
        else:
            for part in item._parts:
                _append(plain, part)
    return plain


def _shell_parts(shell: Iterable[_ShellPart]) -> tuple[_ShellPart, ...]:
    """The parts of a command's shell text, adjacent strings joined."""
    parts: list[_ShellPart] = []
    for piece in shell:
        if isinstance(piece, str) and parts and isinstance(parts[-1], str):
            parts[-1] += piece
        elif piece != "":
            parts.append(piece)
    return tuple(parts)


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
# A string command runs with `/bin/sh -c`; a parameter's value never becomes part of its
# text: each reference becomes an expansion of the parameter's environment variable,
# spelt for the quoting context it stands in (`quoting.contexts`, where the contexts and
# the places no expansion can stand are described).


def compile_command(text: str, parameters: Mapping[str, Template] | None = None) -> Template:
    """Compile a string command; `render_shell` gives its text for `/bin/sh -c`, with
    each parameter reference an expansion of its variable (see above)."""
    if "$" not in text:
        return Template(text, [text], shell=[text])
    from backfill_ctl.core import quoting  # (sh's quoting: for a command that has references)
    from backfill_ctl.core.quoting import EVALUATING, NOWHERE

    items, refs = _items(text, parameters or {})
    units: list[quoting.Unit] = []
    for index, item in enumerate(items):
        units.extend(item if isinstance(item, str) else [index])
    contexts = quoting.contexts(units)
    shell: list[_ShellPart] = []
    for index, item in enumerate(items):
        if isinstance(item, str):
            shell.append(item)
        elif index in refs:
            name, context = refs[index], contexts[index]
            problem = EVALUATING.get(context) or NOWHERE.get(context)
            if problem is not None:
                message, hint = problem
                hint = hint.replace("${name}", f"${{{name}}}")
                raise ParamError(
                    f"${{{name}}} stands {message}",
                    hint=hint.replace("BACKFILL_PARAM_<NAME>", env_name(name)),
                )
            shell.append(quoting.expansion(env_name(name), context))
        elif isinstance(item, Template):  # unreachable: parameters are in `refs`
            raise AssertionError(item)
        else:
            shell.append(quoting.Word(item) if contexts.get(index) == "bare" else item)
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
