"""Which names this gateway answers to, and whether a browser says a request comes from
another site. Pure functions of the request's headers and its connection.

- The `Host` allow-list defeats DNS rebinding: a page of `attacker.example` whose name comes to
  resolve to this gateway is same-origin with it in the browser, but its requests say
  `Host: attacker.example`. An IP address in `Host` cannot be rebound, so the address the
  connection came in on is always allowed (probes and scrapers use it).
- Cross-site: `Sec-Fetch-Site` (every current browser sends it) and `Origin`, compared by
  scheme, host and port. A request with neither comes from a program, not from a page.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from multidict import CIMultiDictProxy

# The names of a local run, and the service name docker compose and Kubernetes give it.
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "gateway"})
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "*"})
DEFAULT_PORTS = {"http": 80, "https": 443}
_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_.-]{0,252})?$")
_PORT = re.compile(r"^[0-9]{1,5}$")
_ORIGIN = re.compile(r"^(https?)://([^/?#@\s]+)$")


@dataclass(frozen=True)
class Address:
    """A host and port as a client named them: `example.com:8080`, `[::1]`."""

    host: str  # lower-case, no trailing dot, IPv6 without brackets
    port: int | None

    @property
    def is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True


def parse_host(value: str | None) -> Address | None:
    """`Host`-style `name[:port]` or `[v6][:port]`, or None when it is not one."""
    if value is None or not value.isascii() or len(value) > 300:
        return None
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        host, rest = value[1:end], value[end + 1 :]
        if end < 0 or (rest and not rest.startswith(":")):
            return None
        try:
            if ipaddress.ip_address(host).version != 6:
                return None
        except ValueError:
            return None
        port_text = rest[1:] if rest else None
    else:
        host, sep, port_text_ = value.partition(":")
        port_text = port_text_ if sep else None
        host = host.removesuffix(".")
        if not _NAME.fullmatch(host):
            return None
    if port_text is None:
        return Address(host, None)
    if not _PORT.fullmatch(port_text) or not 0 < int(port_text) < 65536:
        return None
    return Address(host, int(port_text))


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int


def parse_origin(value: str) -> Origin | None:
    """`scheme://host[:port]`, exactly (browsers send nothing else), or None: `null`, other
    schemes and anything malformed are not an origin this gateway could have."""
    match = _ORIGIN.fullmatch(value.strip().lower()) if value.isascii() else None
    if match is None:
        return None
    scheme, authority = match.groups()
    address = parse_host(authority)
    if address is None:
        return None
    return Origin(scheme, address.host, address.port or DEFAULT_PORTS[scheme])


@dataclass(frozen=True)
class Hosts:
    """The names `Host` may carry: exact names, `.suffix` for any name under it, or `*`."""

    names: frozenset[str]
    suffixes: tuple[str, ...] = ()
    anything: bool = False

    @classmethod
    def build(cls, configured: Iterable[str], bound: str) -> Hosts:
        names = set(LOCAL_NAMES)
        if bound.strip().lower() not in WILDCARD_BINDS:
            names.add(bound.strip().lower().strip("[]"))
        names.add(socket.gethostname().lower())
        suffixes: list[str] = []
        anything = False
        for entry in (e.strip().lower().removesuffix(".") for e in configured):
            if entry == "*":
                anything = True
            elif entry.startswith("."):
                suffixes.append(entry)
            elif entry:
                names.add(entry.strip("[]"))
        return cls(frozenset(names), tuple(suffixes), anything)

    def allows(self, value: str | None, local_address: str | None) -> bool:
        """Whether a `Host` value names this gateway; the port is not compared (a published
        port may differ from the one listened on, and DNS rebinding is about names)."""
        if self.anything:
            return True
        address = parse_host(value)
        if address is None:
            return False
        host = address.host
        if host in self.names or any(host.endswith(s) for s in self.suffixes):
            return True
        return local_address is not None and address.is_ip and _same_ip(host, local_address)


def _same_ip(one: str, two: str) -> bool:
    try:
        first, second = ipaddress.ip_address(one), ipaddress.ip_address(two.split("%")[0])
    except ValueError:
        return False
    if isinstance(second, ipaddress.IPv6Address) and second.ipv4_mapped is not None:
        second = second.ipv4_mapped
    return first == second


def split_names(value: str) -> list[str]:
    """`GATEWAY_ALLOWED_HOSTS`: names separated by commas or spaces."""
    return [name for name in re.split(r"[,\s]+", value) if name]


def last_value(headers: CIMultiDictProxy[str], name: str) -> str | None:
    """The last comma-separated value of a header: what the nearest proxy appended."""
    values = [v.strip() for h in headers.getall(name, []) for v in h.split(",") if v.strip()]
    return values[-1] if values else None


def own_origins(
    headers: CIMultiDictProxy[str], schemes: Iterable[str], trust_forwarded: bool
) -> set[Origin]:
    """The origins a page of this gateway has, as this request names the gateway."""
    schemes = set(schemes)
    named: list[tuple[str, str | None]] = [(scheme, headers.get("Host")) for scheme in schemes]
    if trust_forwarded:
        proto = (last_value(headers, "X-Forwarded-Proto") or "").lower()
        forwarded_host = last_value(headers, "X-Forwarded-Host") or headers.get("Host")
        for scheme in {proto} & DEFAULT_PORTS.keys() or schemes:
            named.append((scheme, forwarded_host))
    found = set()
    for each_scheme, value in named:
        address = parse_host(value)
        if address is not None:
            port = address.port or DEFAULT_PORTS[each_scheme]
            found.add(Origin(each_scheme, address.host, port))
    return found


SAME_ORIGIN_SITES = frozenset({"same-origin", "none"})


def cross_site(
    headers: CIMultiDictProxy[str], schemes: Iterable[str], trust_forwarded: bool
) -> bool:
    """True when the browser says the request was made by a page of another origin (another
    port of the same host included). Neither header: a program, or a browser too old to say."""
    sites = headers.getall("Sec-Fetch-Site", [])
    if any(site.strip().lower() not in SAME_ORIGIN_SITES for site in sites):
        return True
    origins = headers.getall("Origin", [])
    if not origins:
        return False
    if len(origins) > 1:
        return True
    origin = parse_origin(origins[0])
    return origin is None or origin not in own_origins(headers, schemes, trust_forwarded)
