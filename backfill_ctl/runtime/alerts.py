"""Telling people a backfill finished (DESIGN §7): webhook, command, email.

A notifier that fails is reported back as text, never raised: an alert must not stop
the loop that runs everybody's backfills. Every notifier gets the same JSON event.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from backfill_ctl.backends.environment import command_environment, own_variables

if TYPE_CHECKING:
    from collections.abc import Mapping

    from backfill_ctl.core.records import BackfillRecord
    from backfill_ctl.spec.model import Smtp

TIMEOUT = 10.0


def wanted(when: str, outcome: str) -> bool:
    """Does `alerts.when` ask for a notification of this outcome?"""
    return {
        "always": True,
        "never": False,
        "failure": outcome == "failed",
        "success": outcome == "succeeded",
    }[when]


def event(
    record: BackfillRecord, outcome: str, counts: Mapping[str, int], at: float
) -> dict[str, Any]:
    return {
        "kind": "backfill-finished",
        "backfill": record.name,
        "outcome": outcome,
        "counts": dict(counts),
        "labels": record.labels,
        "file": record.file,
        "digest": record.digest,
        "finishedAt": at,
    }


def notify(
    record: BackfillRecord, payload: dict[str, Any], smtp: Smtp | None, root: str | None = None
) -> list[str]:
    """Send to every notifier of the backfill; what went wrong, one line per notifier.
    Commands run in `root`, the spec root of the process that sends (as nodes' do)."""
    # Imported here, not on every controller's start (~15 ms: http, email, ssl).
    import http.client
    import smtplib
    import subprocess
    import urllib.error

    failures = []
    for notifier in record.notify:
        try:
            if "webhook" in notifier:
                _webhook(str(notifier["webhook"]), payload)
            elif "command" in notifier:
                _command(notifier["command"], payload, own_variables(smtp), root)
            elif "email" in notifier:
                _email(str(notifier["email"]), payload, smtp)
        except (
            OSError,
            http.client.HTTPException,  # a peer that does not speak HTTP: not an OSError
            urllib.error.URLError,
            smtplib.SMTPException,
            subprocess.SubprocessError,
            ValueError,
        ) as exc:
            kind = next(iter(notifier), "notifier")
            failures.append(f"{kind} {notifier[kind]}: {exc}")
    return failures


def _webhook(url: str, payload: dict[str, Any]) -> None:
    import urllib.request

    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        if response.status >= 300:
            raise ValueError(f"HTTP {response.status}")


def _command(
    command: Any, payload: dict[str, Any], hidden: frozenset[str], root: str | None
) -> None:
    """Run `command` with the event on stdin, in a session of its own: at TIMEOUT, it and
    what it started in its group are killed (the loop waits no longer). Its stderr goes
    to a file (a pipe would wait for what it left running), whose last line says why it
    failed. It inherits none of backfillctl's own variables, nor `hidden`
    (backends/environment.py)."""
    import contextlib
    import signal
    import subprocess
    import tempfile

    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else [str(a) for a in command]
    with tempfile.TemporaryFile() as errors:  # (a pipe would be held open by its children)
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            start_new_session=True,
            env=command_environment(os.environ, hidden),
            cwd=root,
        )
        try:
            proc.communicate(json.dumps(payload).encode(), timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise ValueError(f"timed out after {TIMEOUT:g} s") from None
        if proc.returncode != 0:
            errors.seek(max(0, errors.seek(0, os.SEEK_END) - 4096))
            tail = errors.read().decode(errors="replace").strip().splitlines()[-1:] or [""]
            raise ValueError(f"exit code {proc.returncode} {tail[0]}".strip())


def _email(to: str, payload: dict[str, Any], smtp: Smtp | None) -> None:
    if smtp is None:
        raise ValueError("no SMTP server: set spec.alerts.smtp in the Config")
    import smtplib
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"] = smtp.sender
    message["To"] = to
    message["Subject"] = f"backfill {payload['backfill']} {payload['outcome']}"
    message.set_content(json.dumps(payload, indent=2))
    with smtplib.SMTP(smtp.host, smtp.port, timeout=TIMEOUT) as server:
        if smtp.starttls:
            server.starttls()
        if smtp.username:
            server.login(smtp.username, os.environ.get(smtp.password_env or "", ""))
        server.send_message(message)
