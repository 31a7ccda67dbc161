"""The destination guard: which addresses a call may reach, judged on the URL before every attempt.

A URL is refused when its scheme is not http(s), it has no host, or *any* address its host resolves to is
link-local, cloud metadata, unspecified, multicast or reserved (always), or private (unless the policy
allows private networks). :mod:`stepwise.outbound.connections` judges the address each connection actually
reaches with the same :func:`classify_address`, so DNS rebinding cannot get round it.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Final
from urllib.parse import urlsplit

from stepwise.outbound.display import display_url
from stepwise.outbound.errors import BlockedDestination, OutboundError, Transient

type IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


_METADATA_ADDRESSES: Final[frozenset[IPAddress]] = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
_PRIVATE_NETWORKS: Final = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "127.0.0.0/8",
        "100.64.0.0/10",
        "::1/128",
        "fc00::/7",
        "fec0::/10",  # deprecated site-local: private in spirit
    )
)
# What classify_address says of addresses that ``allow_private`` would permit.
PRIVATE_REASONS: Final = frozenset({"a private address", "a non-public address"})
# Added to a refusal for one of those reasons, so the reader knows a policy could allow it.
PRIVATE_HINT: Final = " (this policy does not allow private networks)"
_THIS_NETWORK: Final = ipaddress.ip_network("0.0.0.0/8")
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")


def classify_address(address: IPAddress, *, allow_private: bool) -> str | None:
    """Say why ``address`` may not be called (e.g. ``"a link-local/metadata address"``), or None if it may.

    IPv4 addresses embedded in IPv6 (IPv4-mapped ``::ffff:a.b.c.d`` and NAT64 ``64:ff9b::a.b.c.d``) are
    judged as the IPv4 address they stand for.
    """
    if isinstance(address, ipaddress.IPv6Address):
        address = ipaddress.IPv6Address(int(address))  # drop any %scope so set membership works
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address in _NAT64:
            address = ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    if address in _METADATA_ADDRESSES:
        return "a link-local/metadata address" if address.is_link_local else "a cloud metadata address"
    if address.is_link_local:
        return "a link-local/metadata address"
    if address.is_unspecified or address in _THIS_NETWORK:
        return "an unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if any(address in network for network in _PRIVATE_NETWORKS):
        return None if allow_private else "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:  # documentation, benchmarking, protocol-assignment ranges and the like
        return None if allow_private else "a non-public address"
    return None


def check_destination(url: str, *, allow_private: bool = False) -> list[IPAddress]:
    """Check that ``url`` may be called and return the addresses its host resolves to.

    Only http and https URLs with a host are accepted. The host is resolved with
    :func:`socket.getaddrinfo` and the URL is refused if *any* address is not allowed (see
    :func:`classify_address`). Raises :class:`BlockedDestination` when refused, or a retryable
    :class:`OutboundError` when the host cannot be resolved.
    """
    try:
        return guard_url(url, allow_private=allow_private)
    except Transient as exc:
        raise OutboundError(f"cannot call {display_url(url)}: {exc.reason}", retryable=True) from None


def guard_url(url: str, *, allow_private: bool) -> list[IPAddress]:
    """:func:`check_destination` for an attempt: an unresolvable host raises :class:`Transient` (retried)."""
    shown = display_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BlockedDestination(f"refusing to call {shown}: the URL is malformed ({exc})") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise BlockedDestination(f"refusing to call {shown}: only http and https URLs can be called")
    host = parts.hostname
    if not host:
        raise BlockedDestination(f"refusing to call {shown}: the URL has no host")
    if port is None:
        port = 443 if parts.scheme.lower() == "https" else 80

    addresses: list[IPAddress]
    literal = True
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        literal = False
        addresses = _resolve(host, port)

    for address in addresses:
        why = classify_address(address, allow_private=allow_private)
        if why is None:
            continue
        tail = PRIVATE_HINT if why in PRIVATE_REASONS else ""
        if literal:
            raise BlockedDestination(f"refusing to call {shown}: {host} is {why}{tail}")
        raise BlockedDestination(f"refusing to call {shown}: {host} resolves to {address}, {why}{tail}")
    return addresses


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise Transient(f"could not resolve {host}: {exc.strerror or exc}") from None
    except (UnicodeError, ValueError) as exc:
        raise BlockedDestination(f"refusing to call a URL with host {host!r}: {exc}") from None
    addresses: list[IPAddress] = []
    for family, _type, _proto, _name, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            addresses.append(ipaddress.ip_address(str(sockaddr[0])))
    if not addresses:
        raise Transient(f"{host} has no IP address")
    return addresses
