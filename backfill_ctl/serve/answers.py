"""The dashboard's answers to what it cannot show: a query not understood (400), what is
not there (404), a store that cannot be read (503), a bug (500): `{"error": ...}` from
the API (/api/...), which the pages' scripts read; a page else."""

from __future__ import annotations

import json
from html import escape

from backfill_ctl.serve import pages

HTML = "text/html; charset=utf-8"
JSON = "application/json"


def offset_of(text: str) -> int | str:
    """?offset=N of the log's API: N, or why it is not one."""
    if text.isascii() and text.isdigit() and len(text) <= 18:
        return int(text)
    return f"offset={cut(text)}: a number of bytes (0 or more) into the log, as the page sends"


def failure(code: int, text: str, target: str, hint: str | None = None) -> tuple[int, bytes, str]:
    """An error's answer to a request for `target`: `{"error": text}` (and its "hint")
    from the API (/api/...), which the pages' scripts read; a page else."""
    if target.startswith("/api/"):
        body: dict[str, str] = {"error": text} | ({"hint": hint} if hint else {})
        return code, json.dumps(body).encode(), JSON
    title = {400: "Bad request", 404: "Not found", 503: "Unavailable"}.get(code, "Error")
    said = f"<p>{escape(text)}</p>" + (f"<p>{escape(hint)}</p>" if hint else "")
    return code, pages.page(title, said).encode(), HTML


def cut(text: str) -> str:
    """A value of the query as an error quotes it: 40 characters at most."""
    return text if len(text) <= 40 else text[:40] + "..."
