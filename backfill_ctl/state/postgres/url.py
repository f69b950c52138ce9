"""PostgreSQL state URLs: which strings are one, and how one is shown (never with its
password). Light: no psycopg here, the CLI reads these before opening anything."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SCHEMES = ("postgresql://", "postgres://")
_SECRET_PARAMS = {"password", "sslpassword"}


def is_postgres_url(value: object) -> bool:
    return isinstance(value, str) and value.startswith(SCHEMES)


def redact(url: str) -> str:
    """The URL with its password (in the user part or a `password=` parameter) as ***."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            users, host = netloc.rsplit("@", 1)
            if ":" in users:
                users = users.split(":", 1)[0] + ":***"
            netloc = f"{users}@{host}"
        query = urlencode(
            [(k, "***" if k in _SECRET_PARAMS else v) for k, v in parse_qsl(parts.query)],
            safe="*/",
        )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:  # not even a URL: keep the scheme and host part only
        return re.sub(r"//[^@/]*@", "//***@", url.split("?", 1)[0])


def secrets_of(url: str) -> list[str]:
    """The passwords written in the URL (to be cut from any message that quotes them)."""
    try:
        parts = urlsplit(url)
        found = [parts.password] if parts.password else []
        found += [v for k, v in parse_qsl(parts.query) if k in _SECRET_PARAMS and v]
    except ValueError:
        return []
    return found
