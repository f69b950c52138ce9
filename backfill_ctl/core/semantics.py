"""Checks across documents, after each document passed its schema.

References between documents (workspaces, upstream nodes, resource groups), loops in
the catalog, parameter templates, and each Backfill's selection with its limits.
Everything is reported; nothing stops at the first problem.

A reference to a document that has errors of its own (`Specs.broken`) is not called
unknown: it is a knock-on error that says where that document is, and carries it as
its `cause` (listed after the root causes); a Backfill naming such a node is not
selected at all, so its selection reports nothing that only follows from it.

A document built without the fields its schema errors lie in (`Specs.removed`) is
checked on what it has; a check that would read a removed field is skipped instead of
reporting what only follows from its absence: a node's templates without its
parameters, a Backfill's selection without a part of it, the Config's limits.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from functools import lru_cache
from typing import TYPE_CHECKING

from backfill_ctl.core.params import (
    ParamError,
    compile_command,
    compile_parameters,
    compile_template,
    env_name,
)
from backfill_ctl.core.planner import compile_node
from backfill_ctl.core.schedules import analyse
from backfill_ctl.core.selection import Scope, select
from backfill_ctl.core.size import plan_size, too_large
from backfill_ctl.errors import Diagnostic, PathPart, did_you_mean
from backfill_ctl.spec.cron import cron_error
from backfill_ctl.spec.model import FOLLOW_NODE

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping

    from backfill_ctl.spec.catalog import Catalog
    from backfill_ctl.spec.loader import Specs
    from backfill_ctl.spec.model import Backfill, Limits, Node, Origin


def _diag(
    origin: Origin,
    path: tuple[PathPart, ...],
    message: str,
    hint: str | None,
    code: str,
    *,
    nodes: tuple[str, ...] = (),
    backfill: str | None = None,
    cause: str | None = None,
) -> Diagnostic:
    return Diagnostic.in_document(
        origin,
        message,
        path=path,
        hint=hint,
        code=code,
        nodes=nodes,
        backfill=backfill,
        cause=cause,
    )


_LABELS = {"Workspace": "workspace", "Node": "node", "ResourceGroup": "resource group"}


def _reference(
    specs: Specs,
    origin: Origin,
    path: tuple[PathPart, ...],
    target: tuple[str, str],
    hint: tuple[Iterable[str], str],
    code: str,
    *,
    nodes: tuple[str, ...] = (),
    backfill: str | None = None,
) -> Diagnostic:
    """`unknown node 'x'`, or the knock-on error of a reference to a broken document."""
    kind, name = target
    label = _LABELS[kind]
    where = specs.broken.get(target)
    if where is not None:
        return _diag(
            origin,
            path,
            f"{label} {name!r} is defined in {where} but that document has errors (see above)",
            "fix the errors of that document first; this one follows from them",
            code,
            nodes=nodes,
            backfill=backfill,
            cause=where,
        )
    choices, fallback = hint
    message = f"unknown {'upstream ' if path[:2] == ('spec', 'upstream') else ''}{label} {name!r}"
    return _diag(
        origin,
        path,
        message,
        _suggest(name, choices, fallback),
        code,
        nodes=nodes,
        backfill=backfill,
    )


def _suggest(name: str, choices: Iterable[str], fallback: str) -> str:
    known = sorted(choices)
    close = did_you_mean(name, known)
    if close:
        return close
    if 0 < len(known) <= 8:
        return f"{fallback}, or use one of: {', '.join(known)}"
    return fallback


def check_references(specs: Specs) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    hint: tuple[Iterable[str], str]
    for node in _every_node(specs):
        o, of = node.origin, (node.name,)
        if node.workspace not in specs.workspaces:
            hint = (specs.workspaces, "add a Workspace document with that name")
            target = ("Workspace", node.workspace)
            path: tuple[PathPart, ...] = ("metadata", "workspace")
            out.append(_reference(specs, o, path, target, hint, "unknown-workspace", nodes=of))
        for i, up in enumerate(node.upstream):
            if up not in specs.nodes:
                hint = (specs.nodes, "add a Node with that name")
                path = ("spec", "upstream", i)
                out.append(_reference(specs, o, path, ("Node", up), hint, "unknown-node", nodes=of))
        rg = node.resource_group
        if rg is not None and rg not in specs.resource_groups:
            hint = (specs.resource_groups, "add a ResourceGroup document with that name")
            target, path = ("ResourceGroup", rg), ("spec", "resourceGroup")
            out.append(_reference(specs, o, path, target, hint, "unknown-resource-group", nodes=of))
    for backfill in specs.backfills.values():
        rg = backfill.resource_group
        if rg != FOLLOW_NODE and rg not in specs.resource_groups:
            hint = (specs.resource_groups, f"use {FOLLOW_NODE} or a ResourceGroup's name")
            out.append(
                _reference(
                    specs,
                    backfill.origin,
                    ("spec", "resourceGroup"),
                    ("ResourceGroup", rg),
                    hint,
                    "unknown-resource-group",
                    backfill=backfill.name,
                )
            )
    return out


def check_broken_selection(specs: Specs, backfill: Backfill) -> list[Diagnostic]:
    """Knock-on errors of a Backfill whose selection names a document that has errors."""
    sel = backfill.select
    named: list[tuple[tuple[PathPart, ...], tuple[str, str]]] = []
    descendants = sel.descendants if isinstance(sel.descendants, tuple) else ()
    for field_name, names in (
        ("roots", sel.roots),
        ("descendants", descendants),
        ("ends", sel.ends),
        ("allow", sel.allow),
        ("block", sel.block),
    ):
        named += [((field_name, i), ("Node", n)) for i, n in enumerate(names)]
    if sel.start is not None:
        named.append((("start",), ("Node", sel.start)))
    named += [(("workspaces", i), ("Workspace", w)) for i, w in enumerate(sel.workspaces)]
    known: dict[str, Collection[str]] = {"Node": specs.nodes, "Workspace": specs.workspaces}
    return [
        _reference(
            specs,
            backfill.origin,
            ("spec", "select", *path),
            target,
            ((), ""),
            f"unknown-{_LABELS[target[0]]}",
            backfill=backfill.name,
        )
        for path, target in named
        if target[1] not in known[target[0]] and target in specs.broken
    ]


def check_cycles(specs: Specs, catalog: Catalog) -> list[Diagnostic]:
    out = []
    for cycle in catalog.cycles():
        first = specs.nodes[cycle[0]]
        index = first.upstream.index(cycle[-2]) if cycle[-2] in first.upstream else 0
        out.append(
            _diag(
                first.origin,
                ("spec", "upstream", index),
                "dependency loop: " + " -> ".join(cycle),
                "remove one of these upstream entries to break the loop",
                "dependency-loop",
                nodes=tuple(cycle[:-1]),
            )
        )
    return out


def check_templates(specs: Specs) -> list[Diagnostic]:
    """Every template of every node compiles on its own parameters."""
    out = []
    for node in _every_node(specs):
        if specs.lacks(node.origin, "spec", "parameters"):
            continue  # its ${name}s would be unknown
        compiled, errors = _template_errors(node.parameters, node.run.command, node.run.env)
        out += [_param_diag(node, path, exc) for path, exc in errors]
        if not compiled:
            continue
        params = dict(node.parameters)
        for key, _ in node.run.env:
            for name in params:
                if env_name(name) == key:  # a string command reads the parameter from it
                    out.append(
                        _diag(
                            node.origin,
                            ("spec", "run", "env", key),
                            f"{key} is where parameter {name}'s value is exported",
                            f"remove it, or name the variable otherwise; ${{{name}}} is "
                            f"already in the environment as {key}",
                            "bad-parameter",
                            nodes=(node.name,),
                        )
                    )
    return out


def _every_node(specs: Specs) -> list[Node]:
    """The catalog's nodes and those held back from it (their own checks still run)."""
    return [*specs.nodes.values(), *specs.held_back]


def _param_diag(node: Node, path: tuple[PathPart, ...], exc: ParamError) -> Diagnostic:
    return _diag(node.origin, path, exc.message, exc.hint, "bad-parameter", nodes=(node.name,))


def check_backfill(
    specs: Specs, catalog: Catalog, backfill: Backfill, actor: str | None
) -> tuple[Scope | None, list[Diagnostic]]:
    """Selection, overrides, time window and size of one Backfill."""
    scope, out = select(catalog, backfill, _limits(specs), actor)
    if scope is None:
        return None, out
    if backfill.parameters:
        out += _check_overrides(specs.nodes, scope, backfill)
    out += check_window(catalog, scope, backfill)
    refused = too_large(backfill, plan_size(catalog, backfill, scope))
    if refused is not None:
        out.append(refused)
    return scope, out


def _limits(specs: Specs) -> Limits:
    """The Config's limits; one its document was built without is not applied (it would
    be the default, not what the author wrote)."""
    limits, origin = specs.config.limits, specs.config.origin
    if origin is None:
        return limits
    if specs.lacks(origin, "spec", "limits", "maxRoots"):
        limits = replace(limits, max_roots=sys.maxsize)
    if specs.lacks(origin, "spec", "limits", "maxNodes"):
        limits = replace(limits, max_nodes=sys.maxsize)
    return limits


def _fails_alone(node: Node) -> bool:
    """Whether the node's templates fail without any override (check_templates)."""
    compiled, errors = _template_errors(node.parameters, node.run.command, node.run.env)
    hidden = {env_name(name) for name, _ in node.parameters} & {key for key, _ in node.run.env}
    return not compiled or bool(errors) or bool(hidden)


def _check_overrides(
    nodes: Mapping[str, Node], scope: Scope, backfill: Backfill
) -> list[Diagnostic]:
    failures: dict[tuple[str | None, str], list[str]] = {}
    for name in scope.nodes:
        node = nodes[name]
        if _fails_alone(node):
            continue  # reported at the node (check_templates), once
        try:
            compile_node(node, backfill.parameters)
        except ParamError as exc:
            failures.setdefault((exc.parameter, exc.message), []).append(name)
    out = []
    for (parameter, message), names in sorted(failures.items(), key=lambda kv: str(kv[0])):
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        path: tuple[PathPart, ...] = ("spec", "parameters") + ((parameter,) if parameter else ())
        out.append(
            _diag(
                backfill.origin,
                path,
                f"{message} (for node {shown})",
                "define the parameter on those nodes, or use a time expression",
                "bad-parameter",
                nodes=tuple(names),
                backfill=backfill.name,
            )
        )
    return out


def check_window(catalog: Catalog, scope: Scope, backfill: Backfill) -> list[Diagnostic]:
    """A sub-daily node must have a scheduled time inside the backfill's timeWindow."""
    out = []
    window = backfill.time_window
    for name in scope.nodes:
        expr = catalog.nodes[name].schedule
        if cron_error(expr):
            continue  # reported with the node
        schedule = analyse(expr)
        if schedule.sub_daily and not schedule.times_in(window):
            times = ", ".join(t.strftime("%H:%M") for t in schedule.times[:4])
            out.append(
                _diag(
                    backfill.origin,
                    ("spec", "timeWindow"),
                    f"{schedule.cycle} node {name!r} ({schedule.expr}) has no scheduled "
                    f"time between {window.start:%H:%M} and {window.end:%H:%M}",
                    f"widen timeWindow to include one of its times ({times} ...)",
                    "empty-window",
                    nodes=(name,),
                    backfill=backfill.name,
                )
            )
    return out


@lru_cache(maxsize=4096)
def _template_errors(
    parameters: tuple[tuple[str, str], ...],
    command: tuple[str, ...] | str,
    env: tuple[tuple[str, str], ...],
) -> tuple[bool, tuple[tuple[tuple[PathPart, ...], ParamError], ...]]:
    """Whether a node's parameters compile, and where its templates do not, with why.
    Nodes written alike share the answer: a catalog's commands mostly are."""
    try:
        params = compile_parameters(parameters)
    except ParamError as exc:
        where: tuple[PathPart, ...] = ("spec", "parameters", exc.parameter or "")
        return False, ((where, exc.with_traceback(None)),)
    fields: list[tuple[tuple[PathPart, ...], str]] = (
        [(("spec", "run", "command"), command)]
        if isinstance(command, str)
        else [(("spec", "run", "command", i), arg) for i, arg in enumerate(command)]
    )
    fields += [(("spec", "run", "env", key), value) for key, value in env]
    errors: list[tuple[tuple[PathPart, ...], ParamError]] = []
    for path, text in fields:
        try:
            # A string command also learns where each reference stands in sh's quoting.
            compile = compile_command if path == ("spec", "run", "command") else compile_template
            compile(text, params)
        except ParamError as exc:
            errors.append((path, exc.with_traceback(None)))  # kept: no frames with it
    return True, tuple(errors)


def validate(
    specs: Specs, actor: str | None, authored: Collection[str] | None = None
) -> tuple[dict[str, Scope], list[Diagnostic]]:
    """All cross-document checks; the scope of every Backfill that has one.

    The actor's permissions are checked on the Backfills in `authored` (all when None):
    in a pull request, the ones it adds or edits; the others had their own authors.
    """
    out = check_references(specs)
    catalog = specs.catalog()
    cycles = check_cycles(specs, catalog)
    out += cycles
    out += check_templates(specs)
    scopes: dict[str, Scope] = {}
    if cycles:
        return scopes, out  # a scope needs an acyclic graph
    for backfill in specs.backfills.values():
        if specs.lacks(backfill.origin, "spec", "select"):
            continue  # a scope without a part of its selection would be made up
        broken = check_broken_selection(specs, backfill) if specs.broken else []
        if broken:
            out += broken
            continue
        who = actor if authored is None or backfill.name in authored else None
        scope, diags = check_backfill(specs, catalog, backfill, who)
        out += diags
        if scope is not None:
            scopes[backfill.name] = scope
    return scopes, out
