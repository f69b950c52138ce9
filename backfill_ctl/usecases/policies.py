"""Extension checks (issue 9, item 7): policies a Config names, run on the plan.

The reference: "If extension checks are enabled for the data backfill operation, a
failed check blocks the task from running." A policy is a command (argv, no shell, run
from the Config's directory, without backfillctl's own variables: see
backends/environment.py) or a webhook (a JSON POST). It receives a *review*:

    {"apiVersion": "backfillctl.dev/v1alpha1", "kind": "PolicyReview",
     "plan": <the plan, as plan -o json writes it>,
     "nodes": {NAME: {"workspace": WS, "owners": [...]}, ...}}   # the scope's nodes

and answers `{"findings": [{"backfill": NAME, "severity": "error"|"warning",
"message": TEXT, "hint": TEXT?, "nodes": [...]?}, ...]}` (a command: on stdout, exit
0). Findings become diagnostics with the code `policy:NAME`, located at the Backfill's
document; an error blocks apply like a built-in error, and `check` and the PR report
show them. A policy that cannot be run, times out, exits non-zero or answers anything
else is itself an error finding at its entry in the Config: a broken policy blocks
(fails closed) rather than letting everything through.

This is I/O, so it lives beside the check use case, not in it: the CLI (check, apply)
and the controller add these findings to what `run_check` found.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backfill_ctl.backends.environment import command_environment, own_variables
from backfill_ctl.errors import Diagnostic

if TYPE_CHECKING:
    from backfill_ctl.spec.loader import Specs
    from backfill_ctl.spec.model import Policy
    from backfill_ctl.usecases.check import CheckResult

API = "backfillctl.dev/v1alpha1"
_SEVERITIES = ("error", "warning", "notice")
_MAX_ANSWER = 10 * 1024 * 1024  # bytes read of an answer


def with_policies(specs: Specs, result: CheckResult) -> CheckResult:
    """`result` with the findings of the Config's policies added (none: unchanged)."""
    policies = specs.config.policies
    if not policies or not result.plan.backfills:
        return result
    review = json.dumps(_review(specs, result)).encode()
    found: list[Diagnostic] = []
    for policy in policies:
        found += _findings(specs, policy, review)
    located = specs.sources.locate(found)
    merged = sorted(result.findings + located, key=lambda d: (d.file, d.line or 0, d.col or 0))
    return replace(result, findings=merged)


def _review(specs: Specs, result: CheckResult) -> dict[str, Any]:
    from backfill_ctl.usecases.plan_data import plan_data

    scope = {n for bp in result.plan.backfills for n in bp.scope.nodes}
    nodes = {
        name: {"workspace": node.workspace, "owners": list(node.owners)}
        for name, node in sorted(specs.nodes.items())
        if name in scope
    }
    return {
        "apiVersion": API,
        "kind": "PolicyReview",
        "plan": plan_data(result.plan),
        "nodes": nodes,
    }


def _findings(specs: Specs, policy: Policy, review: bytes) -> list[Diagnostic]:
    try:
        answer = _ask(specs, policy, review)
        return [_finding(specs, policy, item) for item in _items(answer)]
    except _Broken as exc:
        return [_broken(specs, policy, str(exc))]


class _Broken(Exception):
    """The policy could not give an answer."""


def _ask(specs: Specs, policy: Policy, review: bytes) -> bytes:
    import subprocess  # here, not at the top: the CLI starts without them
    import urllib.error
    import urllib.request

    if policy.command is not None:
        cwd = _config_dir(specs)
        try:
            done = subprocess.run(
                list(policy.command),
                input=review,
                capture_output=True,
                cwd=cwd,
                timeout=policy.timeout,
                check=False,
                env=command_environment(os.environ, own_variables(specs.config.smtp)),
            )
        except subprocess.TimeoutExpired:
            raise _Broken(f"it did not answer within {policy.timeout:g}s") from None
        except OSError as exc:
            raise _Broken(f"it cannot be run: {exc.strerror or exc}") from None
        if done.returncode != 0:
            said = done.stderr.decode(errors="replace").strip()[-300:]
            raise _Broken(f"it exited {done.returncode}" + (f": {said}" if said else ""))
        return done.stdout[:_MAX_ANSWER]
    assert policy.url is not None
    request = urllib.request.Request(
        policy.url, data=review, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=policy.timeout) as response:
            return bytes(response.read(_MAX_ANSWER))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise _Broken(f"the webhook failed: {exc}") from None


def _items(answer: bytes) -> list[dict[str, Any]]:
    try:
        data = json.loads(answer)
    except ValueError:
        raise _Broken("its answer is not JSON") from None
    items = data.get("findings") if isinstance(data, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise _Broken('its answer has no list of "findings"')
    for item in items:
        if not isinstance(item.get("message"), str) or item.get("severity", "error") not in (
            _SEVERITIES
        ):
            raise _Broken('a finding needs a "message" and an error/warning/notice "severity"')
    return items


def _finding(specs: Specs, policy: Policy, item: dict[str, Any]) -> Diagnostic:
    name = item.get("backfill")
    backfill = specs.backfills.get(name) if isinstance(name, str) else None
    nodes = tuple(str(n) for n in item.get("nodes") or () if isinstance(n, str))
    fields: dict[str, Any] = {
        "severity": item.get("severity", "error"),
        "code": f"policy:{policy.name}",
        "hint": str(item["hint"])[:500] if item.get("hint") else None,
        "nodes": nodes,
    }
    message = f"policy {policy.name}: {item['message'][:500]}"
    if backfill is not None:
        return Diagnostic.in_document(
            backfill.origin, message, path=("spec",), backfill=backfill.name, **fields
        )
    return _at_policy(specs, policy, message, **fields)


def _broken(specs: Specs, policy: Policy, why: str) -> Diagnostic:
    return _at_policy(
        specs,
        policy,
        f"policy {policy.name} could not check the plan: {why}",
        code=f"policy:{policy.name}",
        hint="fix the policy, or remove it from the Config's spec.policies; until then "
        "nothing is applied (a broken policy blocks)",
    )


def _at_policy(specs: Specs, policy: Policy, message: str, **fields: Any) -> Diagnostic:
    origin = specs.config.origin
    if origin is None:
        return Diagnostic(message, **fields)
    return Diagnostic.in_document(
        origin, message, path=("spec", "policies", policy.index), **fields
    )


def _config_dir(specs: Specs) -> str | None:
    origin = specs.config.origin
    if origin is None or origin.file == "<stdin>":
        return None
    return str(Path(origin.file).resolve().parent)
