"""Shell completion for bash, zsh and fish: imported only when a shell asks.

The shell runs `backfillctl` with `_BACKFILLCTL_COMPLETE` set (Click's protocol:
`bash_complete`, `zsh_complete`, `fish_complete`, or `bash_source`... for the script;
Typer's `complete_bash` order is accepted too). Verbs and flags come from the Typer app;
the values of some parameters from the world around:

- backfill names and instance ids from the state store, opened read-only through a
  `mode=ro` SQLite URI: a store that does not exist is never created, only not read;
- node names from the store and from the YAML files under the current directory
  (a quick text scan, bounded in files and time: no full spec load);
- `explain` paths and `schema` kinds from the JSON Schemas.

Completion never prints a traceback: on any error it completes nothing.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, MutableMapping

    from typer import _click

    Completer = Callable[[Any, Any, str], list[Any]]

COMPLETE_VAR = "_BACKFILLCTL_COMPLETE"
PROG_NAME = "backfillctl"
SHELLS = ("bash", "zsh", "fish")
_LIMIT = 200  # values offered at most: a shell shows no more usefully
_SCAN_FILES = 400  # YAML files read at most for node names
_SCAN_SECONDS = 0.15


# -- entry points ----------------------------------------------------------------------


def script(shell: str) -> str:
    """The completion script of `shell`, to be sourced (or saved) by the user."""
    from typer._completion_shared import get_completion_script

    return get_completion_script(prog_name=PROG_NAME, complete_var=COMPLETE_VAR, shell=shell)


def complete(cli: _click.Command, ctx_args: MutableMapping[str, Any], instruction: str) -> int:
    """Answer one completion request: print the candidates, one per line. Always 0 and
    nothing at all on stdout when anything goes wrong (a broken store, a bug)."""
    import sys

    try:
        from typer._click.shell_completion import get_completion_class
        from typer._completion_classes import completion_init

        action, shell = _instruction(instruction)
        completion_init()
        comp_cls = get_completion_class(shell)
        if comp_cls is None or action not in ("complete", "source"):
            return 0
        attach(cli)
        comp = comp_cls(cli, ctx_args, PROG_NAME, COMPLETE_VAR)
        text = comp.source() if action == "source" else comp.complete()
    except Exception:  # completion must never show a traceback
        return 0
    if text:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def _instruction(instruction: str) -> tuple[str, str]:
    """(action, shell) from Click's `bash_complete` or Typer's `complete_bash`."""
    first, _, second = instruction.partition("_")
    return (first, second) if first in ("complete", "source") else (second, first)


# -- which parameter completes what ----------------------------------------------------


def attach(cli: _click.Command) -> None:
    """Give the parameters whose values we know a completion callback, by their role."""
    for command in _commands(cli):
        for param in command.params:
            completer = _completer_for(command.name or "", param)
            if completer is not None:
                param._custom_shell_complete = _guarded(completer)


def _commands(command: _click.Command) -> Iterator[_click.Command]:
    yield command
    for sub in getattr(command, "commands", {}).values():
        yield from _commands(sub)


def _completer_for(command: str, param: Any) -> Completer | None:
    opts = set(param.opts)
    if "--backfill" in opts:
        return _backfill_names
    if "--node" in opts:
        return _node_names
    if param.param_type_name != "argument":
        return None
    by_command: dict[str, Completer] = {
        "backfills": _backfill_names,
        "explain": _explain_paths,
        "schema": _kinds,
    }
    if command in by_command:
        return by_command[command]
    if param.name in ("targets", "target"):
        return _targets
    if param.name in ("ids", "instance", "instance_id") or param.metavar == "ID":
        return _instance_ids
    return None


def _guarded(completer: Completer) -> Completer:
    def run(ctx: Any, param: Any, incomplete: str) -> list[Any]:
        try:
            return completer(ctx, param, incomplete)[:_LIMIT]
        except Exception:  # completion must never show a traceback
            return []

    return run


# -- the state store, read-only --------------------------------------------------------


def _store_file(ctx: Any) -> Path | str:
    """The store the completed command would use: --state-file (or the store's --state),
    else $BACKFILLCTL_STATE, else the default; the Config is not read (nor is it by the
    commands that take these values)."""
    from backfill_ctl.cli.state import state_file

    flag = None
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if value and isinstance(value, str) and "--state-file" in param.opts:
            flag = value
    return state_file(flag)


def _query(ctx: Any, sql: str, *args: str) -> list[tuple[str, ...]]:
    path = _store_file(ctx)
    if not isinstance(path, Path) or not path.is_file():  # a PostgreSQL store: no completion
        return []
    uri = f"{path.as_uri()}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=0.2)
    try:
        rows: list[tuple[str, ...]] = conn.execute(sql, args).fetchall()
    finally:
        conn.close()
    return rows


def _like(prefix: str) -> str:
    return re.sub(r"([\\%_])", r"\\\1", prefix) + "%"


def _backfill_names(ctx: Any, _param: Any, incomplete: str) -> list[Any]:
    from typer._click.shell_completion import CompletionItem

    prefix = incomplete.removeprefix("backfill/")
    rows = _query(
        ctx,
        "SELECT name, status FROM backfills WHERE name LIKE ? ESCAPE '\\' "
        "AND status != 'deleted' ORDER BY name LIMIT 500",
        _like(prefix),
    )
    shown = incomplete[: len(incomplete) - len(prefix)]
    return [CompletionItem(shown + name, help=status) for name, status in rows]


def _instance_ids(ctx: Any, _param: Any, incomplete: str) -> list[Any]:
    from typer._click.shell_completion import CompletionItem

    prefix = incomplete.removeprefix("instance/")
    rows = _query(
        ctx,
        "SELECT id, backfill, node, bizdate, state FROM instances "
        "WHERE id LIKE ? ESCAPE '\\' ORDER BY id LIMIT 500",
        _like(prefix),
    )
    shown = incomplete[: len(incomplete) - len(prefix)]
    return [
        CompletionItem(shown + iid, help=f"{backfill} {node} {bizdate} {state}")
        for iid, backfill, node, bizdate, state in rows
    ]


def _targets(ctx: Any, param: Any, incomplete: str) -> list[Any]:
    """backfill/NAME or an instance id (bare or instance/ID)."""
    found: list[Any] = []
    if incomplete.startswith("backfill/") or "backfill/".startswith(incomplete):
        found += _backfill_names(ctx, param, "backfill/" + incomplete.removeprefix("backfill/"))
    if not incomplete.startswith("backfill/"):
        found += _instance_ids(ctx, param, incomplete)
    return found


# -- node names: the store and the specs under the current directory ------------------

_KIND_NODE = re.compile(r"(?m)^kind:\s*['\"]?Node['\"]?\s*$")
_NAME = re.compile(r"(?m)^metadata:\s*\n(?:[ \t]+.*\n)*?[ \t]+name:\s*['\"]?([^\s'\"#]+)")
_FLOW_NAME = re.compile(r"(?m)^metadata:\s*\{[^}]*\bname:\s*['\"]?([^\s,'\"}]+)")


def _node_names(ctx: Any, _param: Any, incomplete: str) -> list[str]:
    names = {n for n in _spec_node_names() if n.startswith(incomplete)}
    names.update(
        row[0]
        for row in _query(
            ctx,
            "SELECT DISTINCT node FROM instances WHERE node LIKE ? ESCAPE '\\' LIMIT 500",
            _like(incomplete),
        )
    )
    return sorted(names)


def _spec_node_names(root: Path | None = None) -> set[str]:
    names: set[str] = set()
    for path in _yaml_files(root or Path.cwd()):
        text = path.read_text(encoding="utf-8", errors="replace")
        for doc in re.split(r"(?m)^---", text):
            if _KIND_NODE.search(doc):
                found = _NAME.search(doc + "\n") or _FLOW_NAME.search(doc)
                if found:
                    names.add(found.group(1))
    return names


def _yaml_files(root: Path) -> Iterator[Path]:
    """The YAML files under `root`, skipping hidden and tool folders, bounded."""
    deadline = time.monotonic() + _SCAN_SECONDS
    count = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS]
        for name in files:
            if name.endswith((".yaml", ".yml")):
                count += 1
                if count > _SCAN_FILES or time.monotonic() > deadline:
                    return
                yield Path(folder) / name


_SKIP_DIRS = {"node_modules", "venv", "__pycache__", "site-packages", "build", "dist"}


# -- the schemas: kinds and explain paths ----------------------------------------------


def _kinds(_ctx: Any, _param: Any, incomplete: str) -> list[str]:
    from backfill_ctl.spec.schema import KINDS

    return [k for k in KINDS if k.lower().startswith(incomplete.lower())]


def _explain_paths(_ctx: Any, _param: Any, incomplete: str) -> list[str]:
    """`Kind.field.path` one level at a time, from the kind's schema."""
    from backfill_ctl.spec.schema import KINDS, kind_schema

    *parents, last = incomplete.split(".")
    if not parents:
        return [f"{k}." for k in KINDS if k.lower().startswith(last.lower())]
    kind = next((k for k in KINDS if k.lower() == parents[0].lower()), None)
    if kind is None:
        return []
    node: Any = kind_schema(kind)
    for part in parents[1:]:
        node = _fields(node).get(part)
        if node is None:
            return []
    prefix = ".".join(parents) + "."
    return [
        prefix + name + ("." if _fields(sub) else "")
        for name, sub in _fields(node).items()
        if name.startswith(last)
    ]


def _fields(schema: Any) -> dict[str, Any]:
    """The fields below a schema node: its properties, its items', its branches'."""
    if not isinstance(schema, dict):
        return {}
    found: dict[str, Any] = dict(schema.get("properties", {}))
    if isinstance(schema.get("items"), dict):
        found.update(_fields(schema["items"]))
    for key in ("oneOf", "anyOf", "allOf"):
        for branch in schema.get(key, ()):
            for name, sub in _fields(branch).items():
                found.setdefault(name, sub)
    return found
