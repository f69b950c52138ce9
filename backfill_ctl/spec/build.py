"""Schema-valid document data -> spec model objects.

The schema has already checked shapes and patterns; what is left here is what a
pattern cannot say: that 2024-02-30 is not a date, that a range is not reversed,
that a timezone exists and a cron expression parses.
"""

from __future__ import annotations

import re
from datetime import date, time, timedelta
from typing import TYPE_CHECKING, Any

from backfill_ctl.errors import Diagnostic, PathPart
from backfill_ctl.spec.cron import cron_error
from backfill_ctl.spec.model import (
    FOLLOW_NODE,
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
)

if TYPE_CHECKING:
    from collections.abc import Mapping

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_SIZE = re.compile(r"^(\d+)(B|KB|MB|GB|KiB|MiB|GiB)?$")
_SIZE_UNITS = {
    None: 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
}


def parse_date(text: str) -> date:
    return date.fromisoformat(text)


def parse_time(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text)
    if not match or not text:
        raise ValueError(f"{text!r} is not a duration like 90s, 2h or 1h30m")
    d, h, m, s = (int(g) if g else 0 for g in match.groups())
    return timedelta(days=d, hours=h, minutes=m, seconds=s)


def parse_size(text: str) -> int:
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size like 3MiB")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)]


class DocumentBuilder:
    """Builds the model object of one document, collecting diagnostics on the way.

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

    def date(self, text: str, path: tuple[PathPart, ...]) -> date | None:
        try:
            return parse_date(text)
        except ValueError:
            self.error(path, f"{text!r} is not a calendar date", "write a real date, YYYY-MM-DD")
            return None

    def period(self, data: Mapping[str, str], path: tuple[PathPart, ...]) -> Period:
        start = self.date(data["from"], (*path, "from")) if "from" in data else None
        end = self.date(data["to"], (*path, "to")) if "to" in data else None
        if start and end and start > end:
            self.error(path, f"reversed range: from {start} is after to {end}", "swap from and to")
        return Period(start, end)

    def window(
        self,
        data: Mapping[str, str] | None,
        default: TimeWindow | None = None,
    ) -> TimeWindow | None:
        if data is None:
            return default
        base = default or TimeWindow()
        start = parse_time(data["from"]) if "from" in data else base.start
        end = parse_time(data["to"]) if "to" in data else base.end
        return TimeWindow(start, end)

    # -- kinds -------------------------------------------------------------------

    def workspace(self, data: Mapping[str, Any]) -> Workspace:
        spec = data.get("spec") or {}
        tz = spec.get("timezone", "UTC")
        if not timezone_exists(tz):
            self.error(
                ("spec", "timezone"),
                f"unknown timezone {tz!r}",
                "use an IANA name such as Asia/Shanghai, Europe/Berlin or UTC",
                code="bad-timezone",
            )
        return Workspace(
            data["metadata"]["name"], tz, tuple(spec.get("operators", ())), self.origin
        )

    def resource_group(self, data: Mapping[str, Any]) -> ResourceGroup:
        spec = data["spec"]
        return ResourceGroup(
            data["metadata"]["name"],
            int(spec["concurrency"]),
            spec.get("type", "shared"),
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
        run = spec["run"]
        command = run["command"]
        resources = run.get("resources", {})
        return Node(
            name=meta["name"],
            workspace=meta["workspace"],
            schedule=spec["schedule"],
            run=Run(
                command=command if isinstance(command, str) else tuple(command),
                image=run.get("image"),
                env=tuple(run.get("env", {}).items()),
                timeout=parse_duration(run["timeout"]) if "timeout" in run else None,
                retries=int(run.get("retries", 0)),
                retry_delay=parse_duration(run.get("retryDelay", "30s")),
                cpu=resources.get("cpu"),
                memory=resources.get("memory"),
            ),
            owners=tuple(meta.get("owners", ())),
            upstream=tuple(spec.get("upstream", ())),
            self_dependent=spec.get("selfDependent", False),
            priority=int(spec.get("priority", 1)),
            resource_group=spec.get("resourceGroup"),
            effective=self.period(spec.get("effective", {}), ("spec", "effective")),
            parameters=tuple(spec.get("parameters", {}).items()),
            labels=tuple(meta.get("labels", {}).items()),
            origin=self.origin,
        )

    def backfill(self, data: Mapping[str, Any]) -> Backfill:
        meta, spec = data["metadata"], data["spec"]
        sel = spec["select"]
        descendants = sel.get("descendants")
        if isinstance(descendants, dict):
            descendants = int(descendants["depth"])
        elif descendants is not None:
            descendants = tuple(descendants)
        selection = Selection(
            method=sel["method"],
            roots=tuple(sel.get("roots", ())),
            descendants=descendants,
            start=sel.get("start"),
            ends=tuple(sel.get("ends", ())),
            workspaces=tuple(sel.get("workspaces", ())),
            include_root=sel.get("includeRoot", True),
            allow=tuple(sel.get("allow", ())),
            block=tuple(sel.get("block", ())),
        )
        self._method_fields(sel)
        dates: list[Period] = []
        for i, item in enumerate(spec["dates"]):
            path: tuple[PathPart, ...] = ("spec", "dates", i)
            if isinstance(item, str):
                day = self.date(item, path)
                if day:
                    dates.append(Period(day, day))
            else:
                period = self.period(item, path)
                if period.start and period.end and period.start <= period.end:
                    dates.append(period)
        alerts = spec.get("alerts", {})
        notify = tuple(
            Notifier(
                n.get("webhook"),
                tuple(n["command"]) if isinstance(n.get("command"), list) else n.get("command"),
                n.get("email"),
            )
            for n in alerts.get("notify", ())
        )
        return Backfill(
            name=meta["name"],
            select=selection,
            dates=tuple(dates),
            time_window=self.window(spec.get("timeWindow"), TimeWindow()) or TimeWindow(),
            run_immediately=spec.get("runImmediately", False),
            order=spec.get("order", "ascending"),
            groups=int(spec.get("groups", 1)),
            resource_group=spec.get("resourceGroup", FOLLOW_NODE),
            execution_window=self.window(spec.get("executionWindow")),
            alert_when=alerts.get("when", "failure"),
            notify=notify,
            stop_on_risk=spec.get("checks", {}).get("stopOnRisk", True),
            suspend=spec.get("suspend", False),
            parameters=tuple(spec.get("parameters", {}).items()),
            labels=tuple(meta.get("labels", {}).items()),
            origin=self.origin,
        )

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
        limits = spec.get("limits", {})
        retention = spec.get("retention", {})
        logs = retention.get("logs", {})
        default = Retention()
        kube = spec.get("kubernetes", {})
        return Config(
            state=spec.get("state", "sqlite:///.backfillctl/state.db"),
            backend=spec.get("backend", "local"),
            kubernetes=Kubernetes(
                namespace=kube.get("namespace", "default"),
                service_account=kube.get("serviceAccount"),
                kubeconfig=kube.get("kubeconfig"),
                context=kube.get("context"),
                in_cluster=kube.get("inCluster"),
                image=kube.get("image"),
                working_dir=kube.get("workingDir"),
                ttl_after_finished=int(kube.get("ttlSecondsAfterFinished", 86_400)),
                pod_metadata=dict(kube.get("podTemplate", {}).get("metadata", {})),
                pod_spec=dict(kube.get("podTemplate", {}).get("spec", {})),
            ),
            max_instances=int(spec.get("checks", {}).get("maxInstances", 10_000)),
            limits=Limits(int(limits.get("maxRoots", 500)), int(limits.get("maxNodes", 2000))),
            retention=Retention(
                instances=parse_duration(retention.get("instances", "30d")),
                logs=tuple(
                    (kind, parse_duration(logs[kind]) if kind in logs else age)
                    for kind, age in default.logs
                ),
                max_log_size=parse_size(retention.get("maxLogSize", "3MiB")),
            ),
            smtp=_smtp(spec.get("alerts", {}).get("smtp")),
            require_actor=bool(spec.get("requireActor", False)),
            policies=tuple(
                Policy(
                    name=str(item["name"]),
                    command=tuple(item["command"]) if "command" in item else None,
                    url=item.get("url"),
                    timeout=parse_duration(item.get("timeout", "30s")).total_seconds(),
                    index=n,
                )
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


def _smtp(data: Mapping[str, Any] | None) -> Smtp | None:
    if not data:
        return None
    return Smtp(
        host=data["host"],
        sender=data["from"],
        port=int(data.get("port", 25)),
        starttls=bool(data.get("starttls", False)),
        username=data.get("username"),
        password_env=data.get("passwordEnv"),
    )


def timezone_exists(name: str) -> bool:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
