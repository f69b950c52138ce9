"""The address --serve takes."""

from __future__ import annotations

from backfill_ctl.errors import UsageError


def parse_address(text: str) -> tuple[str, int]:
    """PORT (on 127.0.0.1), HOST:PORT, or :PORT (every interface, as Go servers take it)."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") if host else ("" if text.startswith(":") else "127.0.0.1")
    host = host or "0.0.0.0"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(
            f"--serve {text}: not an address",
            hint="give PORT, HOST:PORT or :PORT (all interfaces), like 127.0.0.1:8080",
        )
    return host, int(port)
