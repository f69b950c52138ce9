"""`check -o github`: findings as GitHub Actions workflow commands (annotations).

`::error file=F,line=L,col=C,title=T::message` puts the finding on the spec's line in
the pull request. Escaping follows the runner's rules: `%`, CR and LF in the message;
additionally `:` and `,` in properties. An annotation's text is bounded (`errors.clip`),
whatever a finding holds: the runner shows only the first few kilobytes anyway.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backfill_ctl.errors import MAX_TEXT, clip

if TYPE_CHECKING:
    from collections.abc import Iterable

    from backfill_ctl.errors import Diagnostic

_ORDER = {"error": 0, "warning": 1, "notice": 2}  # GitHub shows the first few of each kind


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(finding: Diagnostic) -> str:
    props = []
    if finding.file:
        props.append(f"file={escape_property(finding.file[:1000])}")
    if finding.line is not None:
        props.append(f"line={finding.line}")
        if finding.col is not None:
            props.append(f"col={finding.col}")
    props.append(f"title={escape_property(f'backfillctl {finding.code[:100]}')}")
    message = clip(finding.message) + (f"\nhint: {clip(finding.hint)}" if finding.hint else "")
    message = clip(message, 2 * MAX_TEXT + 100)
    return f"::{finding.severity} {','.join(props)}::{escape_data(message)}"


def render_annotations(findings: Iterable[Diagnostic]) -> list[str]:
    ordered = sorted(findings, key=lambda f: _ORDER[f.severity])
    return [annotation(f) for f in ordered]
