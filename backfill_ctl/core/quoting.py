"""Where each parameter reference of a string command stands in sh's quoting.

`compile_command` (in `params`) turns each reference into an expansion of the
parameter's environment variable; how that expansion is spelt depends on the quoting
context it stands in, which `contexts` works out once per command, from the command's
text as a list of characters with the references' indexes among them. A model of sh's
quoting (quotes, `$(...)`, here-documents, comments), not a parser.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

if TYPE_CHECKING:
    from backfill_ctl.core.params import Cache, Context

# A string command runs with `/bin/sh -c`. A parameter's value may come from a Backfill
# anyone can propose, so it never becomes part of the command text: each reference
# becomes an expansion of the parameter's environment variable (`environment` exports
# it, exactly the value), and the shell does not parse what an expansion yields. How
# the expansion is written depends on where the reference stands in sh's quoting, which
# `contexts` works out once per command from the (reviewed) template text:
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

BREAKS = " \t\n;&|()<>"  # after these, a `#` starts a comment
EVALUATING = {
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
NOWHERE = {
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
Unit: TypeAlias = "str | int"  # a character of the text, or the index of a reference


def contexts(units: list[Unit]) -> dict[int, str]:
    """The context of each reference: bare, single, double, here-doc, comment, or a
    key of `EVALUATING` / `NOWHERE` (where no expansion can stand)."""
    out: dict[int, str] = {}
    _walk(units, 0, len(units), "cmd", out, heredocs=True)
    return out


# One loop over the characters: sh's quoting as a state machine, all branches sharing the
# index, the stack of contexts and the pending here-docs (split, each piece would take and
# give back all of them); the here-docs' delimiters and bodies are read apart already.
# shape: a state machine, a branch per quoting state (see above)
def _walk(
    units: list[Unit], i: int, end: int, base: str, out: dict[int, str], *, heredocs: bool
) -> None:
    # A stack of [kind, open parentheses]: cmd (the top level or a $(...)), sq, dq, hd
    # (an unquoted here-doc body), comment, and the kinds of EVALUATING.
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
            word_start = u in BREAKS
        i += 1


def _context_of(stack: list[list[Any]]) -> str:
    for kind, _ in stack:
        if kind in EVALUATING:
            return str(kind)
    kind = stack[-1][0]
    return {"cmd": "bare", "subst": "bare", "sq": "single", "dq": "double", "hd": "here-doc"}.get(
        kind, str(kind)
    )


def _heredoc(
    units: list[Unit], i: int, end: int, pending: list[tuple[str, bool, bool]], out: dict[int, str]
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
        elif u in BREAKS:
            break
        else:
            word.append(u)
        i += 1
    pending.append(("".join(word), strip, quoted))
    return i


def _bodies(
    units: list[Unit], i: int, end: int, pending: list[tuple[str, bool, bool]], out: dict[int, str]
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


class _Valued(Protocol):
    def value(self, ctx: Context, cache: Cache | None) -> str: ...


@dataclass(frozen=True, slots=True)
class Word:
    """A time expression or built-in standing bare: its value as one shell word."""

    expr: _Valued

    def value(self, ctx: Context, cache: Cache | None) -> str:
        return shlex.quote(self.expr.value(ctx, cache))


def expansion(variable: str, context: str) -> str:
    """The expansion of environment variable `variable`, spelt for `context`."""
    var = "${" + variable + "}"
    if context == "bare":
        return f'"{var}"'
    if context == "single":
        return f"'\"{var}\"'"  # close the quote, expand in double quotes, reopen
    return var  # double, here-doc, comment
