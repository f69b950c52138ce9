"""Which Host headers the server answers: protection against DNS rebinding.

A web page the operator visits can make its own name resolve to 127.0.0.1 (or to any
address the browser reaches) and then read the dashboard as if it were that page's own
(instances' logs, environments, parameters): the browser's same-origin rule goes by
names. Only the request's Host header tells such a request apart: it names the page's
domain. So, as Jupyter's server and webpack's dev server do, the dashboard answers only
for names it was told, whatever the path but the probes':

- always localhost and loopback addresses (127.0.0.0/8, ::1), at any port (an SSH
  tunnel's or kubectl port-forward's is its own);
- the host it listens on, as given (`--listen dash.internal:8800`);
- any IP address, unless it listens on loopback only: a page cannot rebind an address
  literal (nobody's DNS answers for it), and the kubelet and Prometheus name a pod by
  its IP; on loopback, only local clients come, naming it as such;
- the names given with --allow-host (a reverse proxy's, an ingress's).

A request without a Host header, or an empty one (HTTP/1.0; no browser sends either),
is answered: it cannot come from a page. /healthz, /readyz and /metrics are answered
whatever the Host (`serve.PROBES`): they show no log, environment or parameter, and
probes and scrapers name the server as they like (a pod's IP, a Service's name).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from backfill_ctl.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Iterable

LOOPBACK_NAMES = frozenset({"localhost"})
_WILDCARDS = frozenset({"", "0.0.0.0", "::"})


def _address(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        found = ipaddress.ip_address(name)
    except ValueError:
        return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return found


def host_name(header: str) -> str | None:
    """The host of a Host header, without its port, lowercase and without the root's
    dot: `[::1]:8800` -> `::1`, `LocalHost.:80` -> `localhost`; None if it is none."""
    text = header.strip()
    if text.startswith("["):  # an IPv6 address, its port after the bracket
        address, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not (rest[0] == ":" and rest[1:].isdigit())):
            return None
        return address.lower() if _address(address) is not None else None
    name, colon, port = text.partition(":")
    if colon and not port.isdigit():
        return None
    name = name.lower().removesuffix(".")
    return name if name and all(part for part in name.split(".")) else None


def allowed_names(values: Iterable[str]) -> frozenset[str]:
    """The host names of --allow-host (a port, if given, is dropped: any is answered)."""
    names = set()
    for value in values:
        name = host_name(value)
        if name is None or "/" in name:
            raise UsageError(
                f"--allow-host {value}: not a host name",
                hint="give the name the browser shows, like backfills.example.com "
                "(no scheme, no path)",
            )
        names.add(name)
    return frozenset(names)


def is_loopback(name: str) -> bool:
    found = _address(name)
    return name in LOOPBACK_NAMES if found is None else found.is_loopback


@dataclass(frozen=True)
class AllowedHosts:
    """The names answered (beyond loopback's) and whether any IP address is."""

    names: frozenset[str]
    addresses: bool  # any IP address literal: the server listens beyond loopback

    @classmethod
    def listening_on(
        cls, host: str, names: frozenset[str] = frozenset(), bound: str | None = None
    ) -> AllowedHosts:
        """For a server that listens on `host` (as the operator gave it: an address, a
        name, or "" / 0.0.0.0 / :: for every interface; `bound`: the address it was
        bound to, when known), with the names of --allow-host (`allowed_names`)."""
        given = host_name(f"[{host}]" if ":" in host else host) if host else None
        if given and host not in _WILDCARDS:
            names |= {given}
        local = host not in _WILDCARDS and is_loopback(bound or given or host)
        return cls(frozenset(names), addresses=not local)

    def refused(self, header: str | None) -> str | None:
        """None if a request with this Host header is answered; else the host it names
        (without its port), to say so."""
        if header is None or not header.strip():
            return None
        name = host_name(header)
        if name is None:
            return header.strip()[:200]
        if is_loopback(name) or name in self.names:
            return None
        if self.addresses and _address(name) is not None:
            return None
        return name[:200]

    def refusal(self, host: str) -> str:
        """What a refused request is told (plain text: it is echoed, never markup)."""
        ways = "localhost or 127.0.0.1" + (" or by its IP address" if self.addresses else "")
        return (
            f"the Host header names {host}, which this server does not answer for (a "
            f"protection against DNS rebinding): open it as {ways}, or start it with "
            f"--allow-host {host}\n"
        )
