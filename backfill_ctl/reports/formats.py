"""The output formats of `plan`, `check` and `validate`, one reporter per name.

- plan: a reporter returns the text in chunks (a plan may hold a million instances);
- check and validate: a reporter writes to a `Sink` (base.py).

Each reporter imports what it renders with only when it runs: the registries are read
when the CLI starts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from backfill_ctl.reports.base import Registry
from backfill_ctl.reports.text import count

if TYPE_CHECKING:
    from backfill_ctl.core.planner import Plan
    from backfill_ctl.errors import Diagnostic
    from backfill_ctl.reports.base import Sink
    from backfill_ctl.spec.loader import Specs
    from backfill_ctl.usecases.check import CheckResult

PlanReporter = Callable[["Plan", "Specs"], Iterable[str]]
CheckReporter = Callable[["CheckResult", "Sink"], None]


@dataclass(frozen=True)
class Validation:
    """What `validate` found: the specs and every diagnostic, located."""

    specs: Specs
    diagnostics: list[Diagnostic]

    @property
    def errors(self) -> int:
        return sum(1 for d in self.diagnostics if d.is_error)

    @property
    def warnings(self) -> int:
        return len(self.diagnostics) - self.errors


ValidateReporter = Callable[[Validation, "Sink"], None]


# -- plan ---------------------------------------------------------------------------------


def plan_table(plan: Plan, specs: Specs) -> Iterable[str]:
    """A summary per Backfill, for people."""
    from backfill_ctl.reports.plan_table import render_plan

    if not plan.backfills:
        if specs.backfills or any(kind == "Backfill" for kind, _ in specs.broken):
            return ["No Backfill could be planned (see the errors above).\n"]
        return ["No Backfill to plan: the specs hold no Backfill document.\n"]
    return [render_plan(plan, specs.catalog()) + "\n"]


def plan_json(plan: Plan, specs: Specs) -> Iterable[str]:
    """Every instance, in the format tools rely on (and `plan --out` saves)."""
    from backfill_ctl.usecases.plan_data import iter_json

    return iter_json(plan)


def plan_yaml(plan: Plan, specs: Specs) -> Iterable[str]:
    import yaml

    from backfill_ctl.usecases.plan_data import plan_data

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return [yaml.dump(plan_data(plan), Dumper=dumper, sort_keys=False, width=120)]


PLAN: Registry[PlanReporter] = Registry(
    "plan", {"table": plan_table, "json": plan_json, "yaml": plan_yaml}
)


# -- check --------------------------------------------------------------------------------


def check_text(result: CheckResult, sink: Sink) -> None:
    """A line per Backfill, the findings, and the verdict."""
    from backfill_ctl.reports.check_text import render_text, summary_line

    table = render_text(result)
    for line in table:
        sink.write(line + "\n")
    if table and result.findings:  # no blank first line when nothing was planned
        sink.write("\n")
    sink.diagnostics(result.findings, code=True, data=True)
    sink.write(summary_line(result) + "\n")


def check_json(result: CheckResult, sink: Sink) -> None:
    from backfill_ctl.reports.check_text import check_data

    sink.write(json.dumps(check_data(result), indent=2) + "\n")


def check_markdown(result: CheckResult, sink: Sink) -> None:
    """The pull-request comment."""
    from backfill_ctl.reports.markdown import render_markdown

    sink.write(render_markdown(result))


def check_github(result: CheckResult, sink: Sink) -> None:
    """Annotations, and the pull-request comment on the run's summary page."""
    from backfill_ctl.reports.github import render_annotations
    from backfill_ctl.reports.markdown import render_markdown

    for line in render_annotations(result.findings):
        sink.write(line + "\n")
    sink.step_summary(lambda: render_markdown(result))


CHECK: Registry[CheckReporter] = Registry(
    "check",
    {"text": check_text, "json": check_json, "markdown": check_markdown, "github": check_github},
)


# -- validate -----------------------------------------------------------------------------


def validate_text(found: Validation, sink: Sink) -> None:
    """The diagnostics beside the data, then one line: what was read, and the verdict."""
    specs, diagnostics = found.specs, found.diagnostics
    sink.diagnostics(diagnostics, code=False, data=False)
    kinds = [
        count(len(specs.workspaces), "workspace"),
        count(len(specs.resource_groups), "resource group"),
        count(len(specs.nodes), "node"),
        count(len(specs.backfills), "backfill"),
    ]
    verdict = (
        f"{count(found.errors, 'error')}, {count(found.warnings, 'warning')}"
        if diagnostics
        else "valid"
    )
    sink.write(
        f"{count(specs.files, 'file')}, {count(len(specs.documents), 'document')} "
        f"({', '.join(kinds)}): {verdict}\n"
    )


def validate_json(found: Validation, sink: Sink) -> None:
    data = {
        "valid": found.errors == 0,
        "errors": found.errors,
        "warnings": found.warnings,
        "diagnostics": [d.to_dict() for d in found.diagnostics],
    }
    sink.write(json.dumps(data, indent=2) + "\n")


VALIDATE: Registry[ValidateReporter] = Registry(
    "validate", {"text": validate_text, "json": validate_json}
)
