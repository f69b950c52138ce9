"""Option and argument values without pydantic, as Typer gives them.

Typer 0.29 turns each value into its annotated type through a pydantic TypeAdapter:
importing pydantic and building the adapters costs ~85 ms a command, more than some
commands' whole work. `install` gives each parameter of a command a `Native` coercion
instead, for the types our verbs use: a value that is plainly of its type (a string, a
plain decimal integer, a choice of an enum, a path...) is converted here, with Typer's
own functions for choices and paths; anything else (a bad value, an unusual spelling
such as "1e3") goes to Typer's own coercion, so results and error messages are Typer's.
It relies on Typer 0.29's parameter internals (`_runtime_param`, `type_descriptor`, as
`main.placeholders` does), hence the pin of Typer's minor version; tests/cli/test_coercion.py
checks every parameter of every verb against Typer's own coercion.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, get_args, get_origin

from typer._coercion import RuntimeParam, build_runtime_param
from typer._param_types import coerce_cli_choice, coerce_cli_path

_INT = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")
_FLOAT = re.compile(r"-?[0-9]{1,15}(?:\.[0-9]{1,15})?")
_UNSURE = object()  # not plainly of its type: Typer decides


def install(command: Any, ctx: Any = None) -> None:
    """Give each parameter of `command` (and of its subcommands) the native coercion.

    `ctx` is the command's own context, if there is one yet: with it, the help option
    (made on first use, from the context's names for it) is made now and given it too.
    """
    params = list(getattr(command, "params", ()))
    if ctx is not None and hasattr(command, "get_help_option"):
        params.append(command.get_help_option(ctx))
    for param in params:
        descriptor = getattr(param, "type_descriptor", None)
        if (
            descriptor is not None
            and getattr(param, "_runtime_param", False) is None
            and descriptor.file_annotation is None
        ):
            param._runtime_param = Native(
                parameter_info=descriptor.parameter_info,
                annotation=descriptor.annotation,
                descriptor=descriptor,
            )
    for sub in getattr(command, "commands", {}).values():
        install(sub, None if ctx is None else context(sub, ctx))


def context(command: Any, parent: Any) -> Any:
    """The context Click makes for `command` under `parent`, before it parses."""
    return command.context_class(command, info_name=command.name, parent=parent)


@dataclass(frozen=True)
class Native(RuntimeParam):
    """Typer's coercion of one parameter, without pydantic when the value is plain."""

    descriptor: Any

    def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
        result = plain(self.annotation, self.parameter_info, value, param, ctx)
        if result is _UNSURE:
            typer_own = build_runtime_param(self.descriptor)
            return typer_own._coerce_value(value, param=param, ctx=ctx)
        return result


def plain(annotation: Any, info: Any, value: Any, param: Any, ctx: Any) -> Any:
    """`value` as Typer makes it of `annotation`, or `_UNSURE`."""
    if get_origin(annotation) is list:
        return _strings(annotation, value)
    if annotation is str or annotation is bool:
        return value if type(value) is annotation else _UNSURE
    if annotation is int or annotation is float:
        return _number(annotation, info, value)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return _choice(annotation, info, value, ctx)
    if isinstance(annotation, type) and issubclass(annotation, Path) and info.path_type is None:
        return _path(annotation, info, value, param, ctx)
    return _UNSURE


def _strings(annotation: Any, value: Any) -> Any:
    """A list[str] option's values (a repeated option, or the arguments)."""
    if get_args(annotation) != (str,):
        return _UNSURE
    items = value if isinstance(value, list | tuple) else [value]
    return list(items) if all(isinstance(v, str) for v in items) else _UNSURE


def _choice(annotation: type[Enum], info: Any, value: Any, ctx: Any) -> Any:
    try:
        return coerce_cli_choice(
            value, choices=list(annotation), case_sensitive=info.case_sensitive, ctx=ctx
        )
    except ValueError:  # Typer's message, through pydantic
        return _UNSURE


def _path(annotation: type[Path], info: Any, value: Any, param: Any, ctx: Any) -> Any:
    """Typer's checks of a path, given the Path pydantic would make of the text."""
    if isinstance(value, str) and value:
        value = annotation(value)
    if not isinstance(value, annotation):
        return _UNSURE
    return coerce_cli_path(value, info, path_type=annotation, param=param, ctx=ctx)


def _number(kind: type[Any], info: Any, value: Any) -> Any:
    """An int or float from a plain decimal text (or a number), within min and max."""
    if info.clamp or info.parser is not None:
        return _UNSURE
    if (
        (type(value) is str and (_INT if kind is int else _FLOAT).fullmatch(value))
        or type(value) is kind
        or (kind is float and type(value) is int)
    ):
        number = kind(value)
    else:
        return _UNSURE
    if (info.min is not None and number < info.min) or (info.max is not None and number > info.max):
        return _UNSURE
    return number
