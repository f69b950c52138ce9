"""The address --serve (and ui's --listen) takes, the socket family it needs, and how
it is written in a URL."""

from __future__ import annotations

import socket

from backfill_ctl.errors import UsageError


def parse_address(text: str, option: str = "--serve") -> tuple[str, int]:
    """PORT (on 127.0.0.1), HOST:PORT, [IPv6]:PORT, or :PORT (every interface, as Go
    servers take it); `option` names the flag it came with, in the error."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") if host else ("" if text.startswith(":") else "127.0.0.1")
    host = host or "0.0.0.0"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(
            f"{option} {text}: not an address",
            hint="give PORT, HOST:PORT, [IPv6]:PORT or :PORT (all interfaces), like 127.0.0.1:8080",
        )
    return host, int(port)


def family(host: str) -> socket.AddressFamily:
    """AF_INET6 for an IPv6 address, or a name that resolves to IPv6 only; else AF_INET
    (0.0.0.0 for every interface, as before)."""
    if ":" in host:
        return socket.AF_INET6
    try:
        found = {i[0] for i in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)}
    except OSError:  # (the bind says why)
        return socket.AF_INET
    return socket.AF_INET6 if found == {socket.AF_INET6} else socket.AF_INET


def url(host: str, port: int) -> str:
    """`http://HOST:PORT`, an IPv6 address in brackets."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
