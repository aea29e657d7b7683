"""The SSRF guard: which addresses a webhook may reach, checked at registration and
again on every attempt.

A URL's host is resolved once per attempt, every address it resolves to is
checked, and the request then goes to the vetted address (see ``http.py``),
so a name that resolves to a public address for the check and to 127.0.0.1
for the connection (DNS rebinding) cannot get through.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Address classes refused unless private targets are allowed, most specific first.
#: Python's ``is_private`` alone misses CGNAT (100.64/10), hence the explicit list.
REFUSED_CLASSES: tuple[tuple[str, IpNetwork], ...] = (
    ("unspecified", ipaddress.ip_network("0.0.0.0/8")),
    ("unspecified", ipaddress.ip_network("::/128")),
    ("loopback", ipaddress.ip_network("127.0.0.0/8")),
    ("loopback", ipaddress.ip_network("::1/128")),
    ("link-local", ipaddress.ip_network("169.254.0.0/16")),
    ("link-local", ipaddress.ip_network("fe80::/10")),
    ("CGNAT", ipaddress.ip_network("100.64.0.0/10")),
    ("multicast", ipaddress.ip_network("224.0.0.0/4")),
    ("multicast", ipaddress.ip_network("ff00::/8")),
    ("unique-local", ipaddress.ip_network("fc00::/7")),
    ("private", ipaddress.ip_network("10.0.0.0/8")),
    ("private", ipaddress.ip_network("172.16.0.0/12")),
    ("private", ipaddress.ip_network("192.168.0.0/16")),
)


class UnsafeTarget(Exception):
    """The URL may not be called: a bad scheme, no address, or a refused address."""


@dataclass(frozen=True)
class Policy:
    """What the settings allow: http URLs, private targets, allow-listed networks."""

    allow_http: bool
    allow_private: bool
    allow_list: tuple[IpNetwork, ...] = ()

    @classmethod
    def of(cls, allow_http: bool, allow_private: bool, allow_list: Sequence[str]) -> Policy:
        networks = tuple(ipaddress.ip_network(cidr, strict=False) for cidr in allow_list)
        return cls(allow_http, allow_private, networks)


@dataclass(frozen=True)
class Target:
    """A URL split for a pinned connection: the vetted address to connect to, the
    host for ``Host`` and TLS SNI."""

    url: str
    scheme: str
    host: str
    port: int
    address: IpAddress


#: IPv6 prefixes that carry an IPv4 address in their last 32 bits (NAT64, RFC 6052/8215).
NAT64_PREFIXES = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def embedded_ipv4(address: IpAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address reaches through a translator or tunnel
    (IPv4-mapped, NAT64, 6to4, Teredo), which is the one that must be vetted."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if any(address in prefix for prefix in NAT64_PREFIXES):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address, the one traffic ends up at
    return None


def address_class(address: IpAddress) -> str | None:
    """The refused class ``address`` falls in, or ``None`` for a public address."""
    embedded = embedded_ipv4(address)
    if embedded is not None:
        return address_class(embedded)
    for name, network in REFUSED_CLASSES:
        if address.version == network.version and address in network:
            return name
    return None if address.is_global else "reserved"


def refusal(address: IpAddress, policy: Policy) -> str | None:
    """Why ``address`` may not be called under ``policy`` (``None``: it may)."""
    if any(address.version == n.version and address in n for n in policy.allow_list):
        return None
    kind = address_class(address)
    if kind is None or (policy.allow_private and kind not in ("unspecified", "multicast")):
        return None
    return f"{address} is a {kind} address"


def split_url(url: str, policy: Policy) -> tuple[str, str, int]:
    """Scheme, host and port of ``url``, or :class:`UnsafeTarget` for a bad one."""
    parts = urlsplit(url)
    allowed = ("https", "http") if policy.allow_http else ("https",)
    if parts.scheme not in allowed:
        raise UnsafeTarget(f"the URL must use {' or '.join(allowed)}")
    if not parts.hostname or parts.username or parts.password:
        raise UnsafeTarget("the URL needs a host and no credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeTarget("the URL's port is not valid") from None
    return parts.scheme, parts.hostname, port


def resolve(host: str, port: int) -> list[IpAddress]:
    """Every address ``host`` resolves to now (one lookup)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeTarget(f"{host} does not resolve: {exc}") from None
    found = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    return list(dict.fromkeys(found))


def vet(url: str, policy: Policy) -> Target:
    """Resolve ``url``'s host once, refuse it if any address is refused, and return
    the address to connect to."""
    scheme, host, port = split_url(url, policy)
    addresses = resolve(host, port)
    if not addresses:
        raise UnsafeTarget(f"{host} does not resolve")
    reasons = [r for r in (refusal(a, policy) for a in addresses) if r]
    if reasons:
        raise UnsafeTarget(f"{host} is refused: {'; '.join(reasons)}")
    return Target(url, scheme, host, port, addresses[0])
