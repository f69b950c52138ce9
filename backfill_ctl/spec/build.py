"""Schema-valid document data -> spec model objects.

The schema has already checked shapes and patterns; what is left here is what a
pattern cannot say: that 2024-02-30 is not a date, that a range is not reversed,
that a timezone exists and a cron expression parses.
"""

from __future__ import annotations

import difflib
import re
from typing import TYPE_CHECKING, Any

from backfill_ctl.errors import Diagnostic, PathPart, quote
from backfill_ctl.spec.cron import cron_error
from backfill_ctl.spec.model import (
    BUSINESS_DATES,
    MAX_DURATION,
    Backfill,
    Config,
    Kubernetes,
    Limits,
    Node,
    Notifier,
    Origin,
    Period,
    Policy,
    ResourceGroup,
    Retention,
    Run,
    Selection,
    Smtp,
    TimeWindow,
    Workspace,
    is_business_date,
    parse_date,
    parse_duration,
    parse_size,
    parse_time,
)
from backfill_ctl.spec.schema import default, defaults

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from datetime import date, timedelta

    Duration = Callable[[str, tuple[PathPart, ...]], timedelta]  # DocumentBuilder.duration

__all__ = ["DocumentBuilder", "parse_date", "parse_duration", "parse_size", "parse_time"]


class DocumentBuilder:
    """Builds the model object of one document, collecting diagnostics on the way.

    A field left out takes the schema's default (`schema.defaults`, by the field's dotted
    path); none is written here.

    JSON Schema's integer includes 2.0 (YAML `groups: 2.0`), so integer fields are
    made ints here; the planner counts with them.
    """

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.diagnostics: list[Diagnostic] = []

    def error(
        self,
        path: tuple[PathPart, ...],
        message: str,
        hint: str | None = None,
        code: str = "invalid",
    ) -> None:
        self.diagnostics.append(
            Diagnostic.in_document(self.origin, message, path=path, hint=hint, code=code)
        )

    def date(self, text: str, path: tuple[PathPart, ...], business: bool = False) -> date | None:
        """The date `text` names; a business date must also lie in BUSINESS_DATES."""
        try:
            day = parse_date(text)
        except ValueError:
            self.error(path, f"{text!r} is not a calendar date", "write a real date, YYYY-MM-DD")
            return None
        if business and not is_business_date(day):
            self.error(
                path,
                f"business date {day.isoformat()} is out of range",
                f"use a date from {BUSINESS_DATES}: an instance is scheduled the day after its "
                "business date, and its parameters may shift that by up to 100 years",
                code="out-of-range",
            )
            return None
        return day

    def duration(self, text: str, path: tuple[PathPart, ...]) -> timedelta:
        """The duration `text` names (the schema checked its form, not its length)."""
        try:
            return parse_duration(text)
        except ValueError as exc:
            self.error(
                path, str(exc), "write a shorter duration, such as 2h or 30d", code="out-of-range"
            )
            return MAX_DURATION

    def period(
        self, data: Mapping[str, str], path: tuple[PathPart, ...], business: bool = False
    ) -> Period:
        start = self.date(data["from"], (*path, "from"), business) if "from" in data else None
        end = self.date(data["to"], (*path, "to"), business) if "to" in data else None
        if start and end and start > end:
            self.error(path, f"reversed range: from {start} is after to {end}", "swap from and to")
        return Period(start, end)

    def window(self, data: Mapping[str, str] | None) -> TimeWindow | None:
        """The window as written; a bound left out takes the schema's (timeWindow's)."""
        if data is None:
            return None
        fallback = defaults("Backfill")
        return TimeWindow(
            parse_time(data.get("from", fallback["spec.timeWindow.from"])),
            parse_time(data.get("to", fallback["spec.timeWindow.to"])),
        )

    # -- kinds -------------------------------------------------------------------

    def workspace(self, data: Mapping[str, Any]) -> Workspace:
        spec = data.get("spec") or {}
        fallback = defaults("Workspace")
        tz = spec.get("timezone", fallback["spec.timezone"])
        if not timezone_exists(tz):
            self.error(
                ("spec", "timezone"),
                f"unknown timezone {quote(tz)}",
                timezone_hint(tz),
                code="bad-timezone",
            )
        operators = spec.get("operators", fallback["spec.operators"])
        return Workspace(data["metadata"]["name"], tz, tuple(operators), self.origin)

    def resource_group(self, data: Mapping[str, Any]) -> ResourceGroup:
        spec = data["spec"]
        return ResourceGroup(
            data["metadata"]["name"],
            int(spec["concurrency"]),
            spec.get("type", default("ResourceGroup", "spec.type")),
            self.origin,
        )

    def node(self, data: Mapping[str, Any]) -> Node:
        meta, spec = data["metadata"], data["spec"]
        error = cron_error(spec["schedule"])
        if error:
            self.error(
                ("spec", "schedule"),
                f"invalid cron expression {spec['schedule']!r}: {error}",
                'use five fields: minute hour day-of-month month day-of-week, e.g. "0 2 * * *"',
                code="bad-cron",
            )
        fallback = defaults("Node")
        return Node(
            name=meta["name"],
            workspace=meta["workspace"],
            schedule=spec["schedule"],
            run=self._run(spec["run"], fallback),
            owners=tuple(meta.get("owners", fallback["metadata.owners"])),
            upstream=tuple(spec.get("upstream", fallback["spec.upstream"])),
            self_dependent=spec.get("selfDependent", fallback["spec.selfDependent"]),
            priority=int(spec.get("priority", fallback["spec.priority"])),
            resource_group=spec.get("resourceGroup"),
            effective=self.period(spec.get("effective", {}), ("spec", "effective")),
            parameters=tuple(spec.get("parameters", {}).items()),
            labels=tuple(meta.get("labels", {}).items()),
            origin=self.origin,
        )

    def backfill(self, data: Mapping[str, Any]) -> Backfill:
        meta, spec = data["metadata"], data["spec"]
        fallback = defaults("Backfill")
        alerts = spec.get("alerts", {})
        return Backfill(
            name=meta["name"],
            select=self._selection(spec["select"], fallback),
            dates=self._dates(spec["dates"]),
            time_window=self.window(spec.get("timeWindow")) or TimeWindow(),
            run_immediately=spec.get("runImmediately", fallback["spec.runImmediately"]),
            order=spec.get("order", fallback["spec.order"]),
            groups=int(spec.get("groups", fallback["spec.groups"])),
            resource_group=spec.get("resourceGroup", fallback["spec.resourceGroup"]),
            execution_window=self.window(spec.get("executionWindow")),
            alert_when=alerts.get("when", fallback["spec.alerts.when"]),
            notify=tuple(_notifier(n) for n in alerts.get("notify", ())),
            stop_on_risk=spec.get("checks", {}).get(
                "stopOnRisk", fallback["spec.checks.stopOnRisk"]
            ),
            suspend=spec.get("suspend", fallback["spec.suspend"]),
            parameters=tuple(spec.get("parameters", {}).items()),
            labels=tuple(meta.get("labels", {}).items()),
            origin=self.origin,
        )

    def _run(self, run: Mapping[str, Any], fallback: Mapping[str, Any]) -> Run:
        """Node spec.run; `fallback`: the Node schema's defaults."""
        command = run["command"]
        resources = run.get("resources", {})
        path: tuple[PathPart, ...] = ("spec", "run")
        delay = run.get("retryDelay", fallback["spec.run.retryDelay"])
        return Run(
            command=command if isinstance(command, str) else tuple(command),
            image=run.get("image"),
            env=tuple(run.get("env", {}).items()),
            timeout=self.duration(run["timeout"], (*path, "timeout")) if "timeout" in run else None,
            retries=int(run.get("retries", fallback["spec.run.retries"])),
            retry_delay=self.duration(delay, (*path, "retryDelay")),
            cpu=resources.get("cpu"),
            memory=resources.get("memory"),
        )

    def _selection(self, sel: Mapping[str, Any], fallback: Mapping[str, Any]) -> Selection:
        descendants = sel.get("descendants")
        if isinstance(descendants, dict):
            descendants = int(descendants["depth"])
        elif descendants is not None:
            descendants = tuple(descendants)
        self._method_fields(sel)
        return Selection(
            method=sel["method"],
            roots=tuple(sel.get("roots", ())),
            descendants=descendants,
            start=sel.get("start"),
            ends=tuple(sel.get("ends", ())),
            workspaces=tuple(sel.get("workspaces", ())),
            include_root=sel.get("includeRoot", fallback["spec.select.includeRoot"]),
            allow=tuple(sel.get("allow", fallback["spec.select.allow"])),
            block=tuple(sel.get("block", fallback["spec.select.block"])),
        )

    def _dates(self, items: list[str | Mapping[str, str]]) -> tuple[Period, ...]:
        dates: list[Period] = []
        for i, item in enumerate(items):
            path: tuple[PathPart, ...] = ("spec", "dates", i)
            if isinstance(item, str):
                day = self.date(item, path, business=True)
                if day:
                    dates.append(Period(day, day))
            else:
                period = self.period(item, path, business=True)
                if period.start and period.end and period.start <= period.end:
                    dates.append(period)
        return tuple(dates)

    def _method_fields(self, sel: Mapping[str, Any]) -> None:
        """Fields that belong to another selection method are mistakes, not no-ops."""
        allowed = _METHOD_FIELDS[sel["method"]]
        for key in sorted(set(sel) - allowed - {"method", "block"}):
            users = [m for m, fields in _METHOD_FIELDS.items() if key in fields]
            self.error(
                ("spec", "select", key),
                f"{key!r} has no meaning with method {sel['method']!r}",
                f"remove it, or use method {' or '.join(users)}",
                code="select",
            )

    def config(self, data: Mapping[str, Any]) -> Config:
        spec = data.get("spec") or {}
        fallback = defaults("Config")
        limits = spec.get("limits", {})
        return Config(
            state=spec.get("state", fallback["spec.state"]),
            backend=spec.get("backend", fallback["spec.backend"]),
            kubernetes=_kubernetes(spec.get("kubernetes", {}), fallback),
            max_instances=int(
                spec.get("checks", {}).get("maxInstances", fallback["spec.checks.maxInstances"])
            ),
            limits=Limits(
                int(limits.get("maxRoots", fallback["spec.limits.maxRoots"])),
                int(limits.get("maxNodes", fallback["spec.limits.maxNodes"])),
            ),
            retention=_retention(spec.get("retention", {}), fallback, self.duration),
            smtp=_smtp(spec.get("alerts", {}).get("smtp"), fallback),
            require_actor=bool(spec.get("requireActor", fallback["spec.requireActor"])),
            dashboard=str(spec["dashboard"]).rstrip("/") if spec.get("dashboard") else None,
            policies=tuple(
                _policy(item, n, fallback, self.duration)
                for n, item in enumerate(spec.get("policies", []))
            ),
            origin=self.origin,
        )


_METHOD_FIELDS = {
    "manual": {"roots", "descendants"},
    "descendants": {"roots"},
    "workspace": {"roots", "workspaces", "includeRoot", "allow"},
    "link": {"start", "ends"},
}


def _notifier(data: Mapping[str, Any]) -> Notifier:
    command = data.get("command")
    return Notifier(
        data.get("webhook"),
        tuple(command) if isinstance(command, list) else command,
        data.get("email"),
    )


def _kubernetes(kube: Mapping[str, Any], fallback: Mapping[str, Any]) -> Kubernetes:
    """Config spec.kubernetes; `fallback`: the Config schema's defaults."""
    template = kube.get("podTemplate", {})
    given = {**{k.removeprefix("spec.kubernetes."): v for k, v in fallback.items()}, **kube}
    return Kubernetes(
        namespace=kube.get("namespace", fallback["spec.kubernetes.namespace"]),
        service_account=kube.get("serviceAccount"),
        kubeconfig=kube.get("kubeconfig"),
        context=kube.get("context"),
        in_cluster=kube.get("inCluster"),
        image=kube.get("image"),
        working_dir=kube.get("workingDir"),
        ttl_after_finished=int(given["ttlSecondsAfterFinished"]),
        start_timeout=int(given["startTimeoutSeconds"]),
        pod_metadata=dict(template.get("metadata", {})),
        pod_spec=dict(template.get("spec", {})),
    )


def _retention(
    data: Mapping[str, Any], fallback: Mapping[str, Any], duration: Duration
) -> Retention:
    """Config spec.retention; `fallback`: the Config schema's defaults."""
    logs = data.get("logs", {})
    path: tuple[PathPart, ...] = ("spec", "retention")
    instances = data.get("instances", fallback["spec.retention.instances"])
    return Retention(
        instances=duration(instances, (*path, "instances")),
        logs=tuple(
            (kind, duration(logs.get(kind, age), (*path, "logs", kind)))
            for kind, age in default("Config", "spec.retention.logs").items()
        ),
        max_log_size=parse_size(data.get("maxLogSize", fallback["spec.retention.maxLogSize"])),
    )


def _policy(
    item: Mapping[str, Any], index: int, fallback: Mapping[str, Any], duration: Duration
) -> Policy:
    """One of Config spec.policies; `fallback`: the Config schema's defaults."""
    timeout = item.get("timeout", fallback["spec.policies[].timeout"])
    return Policy(
        name=str(item["name"]),
        command=tuple(item["command"]) if "command" in item else None,
        url=item.get("url"),
        timeout=duration(timeout, ("spec", "policies", index, "timeout")).total_seconds(),
        index=index,
    )


def _smtp(data: Mapping[str, Any] | None, fallback: Mapping[str, Any]) -> Smtp | None:
    """Config spec.alerts.smtp; `fallback`: the Config schema's defaults."""
    if not data:
        return None
    return Smtp(
        host=data["host"],
        sender=data["from"],
        port=int(data.get("port", fallback["spec.alerts.smtp.port"])),
        starttls=bool(data.get("starttls", fallback["spec.alerts.smtp.starttls"])),
        username=data.get("username"),
        password_env=data.get("passwordEnv"),
    )


def timezone_hint(name: str) -> str:
    """`did you mean 'Asia/Shanghai'?` for the nearest IANA name, else a few examples."""
    from zoneinfo import available_timezones

    if len(name) > 100:
        return "use an IANA name such as Asia/Shanghai, Europe/Berlin or UTC"
    offset = re.fullmatch(r"(?:UTC|GMT)?([+-])0?([0-9]{1,2})(?::?00)?", name.strip(), re.I)
    if offset:
        sign = "-" if offset.group(1) == "+" else "+"  # POSIX: Etc/GMT-8 is UTC+8
        return f"use a region such as Asia/Shanghai, or Etc/GMT{sign}{int(offset.group(2))}"
    zones = available_timezones()
    by_lower = {zone.lower(): zone for zone in zones}
    if name.lower() in by_lower:
        return f"did you mean {by_lower[name.lower()]!r}? (names are case-sensitive)"
    close = difflib.get_close_matches(name, zones, n=1, cutoff=0.6) or difflib.get_close_matches(
        name.lower(), by_lower, n=1, cutoff=0.6
    )
    if close:
        return f"did you mean {by_lower.get(close[0], close[0])!r}?"
    return "use an IANA name such as Asia/Shanghai, Europe/Berlin or UTC"


def timezone_exists(name: str) -> bool:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a path
        return False
    return True
