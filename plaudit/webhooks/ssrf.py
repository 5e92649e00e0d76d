"""The guard that keeps webhook deliveries away from internal addresses.

A vendor configures the endpoint URL, so without a guard a delivery could
reach the host's own services, the private network, or a cloud provider's
instance metadata service (which hands out credentials).  Before every
attempt :func:`resolve_target` resolves the host once, rejects the target
when any of its addresses is forbidden, and returns the checked address.  The
request then connects to that address, with the original name in the
``Host`` header and in TLS SNI, so a DNS answer that changes between the
check and the connection (DNS rebinding) cannot redirect it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, final

import httpx
import trio

from plaudit.errors import PlauditError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

# Instance metadata services, refused even when private targets are allowed:
# AWS, GCP and Azure (169.254.169.254), AWS over IPv6 (fd00:ec2::254), AWS
# ECS task metadata (169.254.170.2), Alibaba Cloud (100.100.100.200) and
# Oracle Cloud (192.0.0.192).
METADATA_ADDRESSES: Final = frozenset(
    ipaddress.ip_address(text)
    for text in (
        "169.254.169.254",
        "fd00:ec2::254",
        "169.254.170.2",
        "100.100.100.200",
        "192.0.0.192",
    )
)


class ForbiddenTargetError(PlauditError):
    """A webhook URL resolves to an address that deliveries must not reach."""


class ResolutionError(PlauditError):
    """A webhook URL's host name could not be resolved (retryable)."""


@final
@dataclass(frozen=True, slots=True)
class Target:
    """Connection target of one attempt: the checked address and the original names."""

    # The URL with its host replaced by the checked IP address.
    url: httpx.URL
    # The original host (and port), sent in the Host header.
    host_header: str
    # The original host name for TLS SNI and certificate checks; None for
    # plain HTTP or an IP literal.
    sni_hostname: str | None
    address: IPAddress
    # The URL's host is an IP address, so every resolution gives the same target.
    literal: bool = False


def forbidden_reason(address: IPAddress, *, allow_private: bool) -> str | None:
    """Return why deliveries must not reach ``address``, or None when they may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return forbidden_reason(address.ipv4_mapped, allow_private=allow_private)

    if address in METADATA_ADDRESSES:
        return "a cloud instance metadata address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if allow_private:
        return None
    for label, flag in (
        ("a loopback address", address.is_loopback),
        ("a link-local address", address.is_link_local),
        ("a private address", address.is_private),
        ("a reserved address", address.is_reserved),
        # 100.64.0.0/10, carrier-grade NAT: internal to a provider.
        ("a shared address", not address.is_global),
    ):
        if flag:
            return label
    return None


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve ``host`` with the system resolver; return its IP addresses in order."""
    try:
        infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise ResolutionError(
            f"cannot resolve the webhook host {host!r} ({error}); check the URL and DNS"
        ) from error
    return [str(info[4][0]) for info in infos]


async def resolve_target(
    url: str, *, allow_private: bool, resolver: Resolver = system_resolver
) -> Target:
    """Resolve ``url``'s host once and return the checked address to connect to.

    Raises ForbiddenTargetError when the URL is not http(s) or any address
    of the host is forbidden, and ResolutionError when the name does not
    resolve.
    """
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ForbiddenTargetError(
            f"webhook URL {url!r} is not an http:// or https:// URL with a host; fix the endpoint"
        )
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = await _addresses(parsed.host, port, resolver)

    for address in addresses:
        reason = forbidden_reason(address, allow_private=allow_private)
        if reason is not None:
            hint = "" if allow_private else "; set allow_private = true for an internal receiver"
            raise ForbiddenTargetError(
                f"webhook host {parsed.host!r} resolves to {address}, {reason}, which "
                f"deliveries must not reach{hint}"
            )

    chosen = addresses[0]
    literal = _is_literal(parsed.host)
    return Target(
        url=parsed.copy_with(host=str(chosen)),
        host_header=parsed.netloc.decode("ascii"),
        sni_hostname=None if literal or parsed.scheme != "https" else parsed.host,
        address=chosen,
        literal=literal,
    )


async def _addresses(host: str, port: int, resolver: Resolver) -> list[IPAddress]:
    if _is_literal(host):
        return [ipaddress.ip_address(host)]

    texts = await resolver(host, port)
    addresses: list[IPAddress] = []
    for text in texts:
        # getaddrinfo may append a zone to link-local IPv6 addresses ("fe80::1%eth0").
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise ResolutionError(f"the webhook host {host!r} has no addresses; check the URL and DNS")
    return addresses


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
