"""The SSRF guard: forbidden address classes, resolution once, and the connect-to address."""

from __future__ import annotations

import ipaddress

import pytest

from plaudit.webhooks.ssrf import (
    ForbiddenTargetError,
    ResolutionError,
    forbidden_reason,
    resolve_target,
)


def address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


@pytest.mark.parametrize(
    "text",
    [
        "127.0.0.1",
        "127.8.9.10",
        "::1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.1.1",
        "fe80::1",
        "fc00::1",
        "100.64.0.1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "240.0.0.1",
    ],
)
def test_internal_addresses_refused(text: str) -> None:
    assert forbidden_reason(address(text), allow_private=False) is not None


@pytest.mark.parametrize("text", ["127.0.0.1", "::1", "10.1.2.3", "192.168.1.1", "fe80::1"])
def test_allow_private_admits_internal(text: str) -> None:
    assert forbidden_reason(address(text), allow_private=True) is None


@pytest.mark.parametrize(
    "text",
    [
        "169.254.169.254",
        "fd00:ec2::254",
        "169.254.170.2",
        "100.100.100.200",
        "::ffff:169.254.169.254",
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "ff02::1",
    ],
)
def test_metadata_refused_even_when_allowed(text: str) -> None:
    assert forbidden_reason(address(text), allow_private=True) is not None


@pytest.mark.parametrize("text", ["93.184.216.34", "2606:4700:4700::1111", "8.8.8.8"])
def test_public_addresses_pass(text: str) -> None:
    assert forbidden_reason(address(text), allow_private=False) is None


async def test_literal_target_keeps_url() -> None:
    target = await resolve_target("http://127.0.0.1:8080/hook?x=1", allow_private=True)

    assert str(target.url) == "http://127.0.0.1:8080/hook?x=1"
    assert target.host_header == "127.0.0.1:8080"
    assert target.sni_hostname is None


async def test_ipv6_literal_target() -> None:
    target = await resolve_target("http://[::1]:8080/hook", allow_private=True)

    assert str(target.url) == "http://[::1]:8080/hook"
    assert target.host_header == "[::1]:8080"


async def test_loopback_refused_by_default() -> None:
    with pytest.raises(ForbiddenTargetError, match="allow_private"):
        await resolve_target("http://127.0.0.1:8080/hook", allow_private=False)


async def test_name_connects_to_checked_address() -> None:
    asked: list[tuple[str, int]] = []

    async def resolver(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return ["93.184.216.34"]

    target = await resolve_target(
        "https://hooks.example.com/in", allow_private=False, resolver=resolver
    )

    assert asked == [("hooks.example.com", 443)]
    assert str(target.url) == "https://93.184.216.34/in"
    assert target.host_header == "hooks.example.com"
    assert target.sni_hostname == "hooks.example.com"


async def test_any_forbidden_answer_refuses() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "169.254.169.254"]

    with pytest.raises(ForbiddenTargetError, match=r"169\.254\.169\.254"):
        await resolve_target("http://hooks.example.com/", allow_private=True, resolver=resolver)


async def test_rebinding_sees_each_resolution() -> None:
    """A name that resolves public once and private next is refused on the second attempt."""
    answers = [["93.184.216.34"], ["127.0.0.1"]]

    async def resolver(host: str, port: int) -> list[str]:
        return answers.pop(0)

    first = await resolve_target("http://rebind.example/", allow_private=False, resolver=resolver)
    assert first.address == address("93.184.216.34")
    with pytest.raises(ForbiddenTargetError, match="loopback"):
        await resolve_target("http://rebind.example/", allow_private=False, resolver=resolver)


async def test_empty_resolution_fails() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return []

    with pytest.raises(ResolutionError, match="no addresses"):
        await resolve_target("http://nowhere.example/", allow_private=False, resolver=resolver)


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/", "file:///etc/passwd", "gopher://x/"])
async def test_non_http_schemes_refused(url: str) -> None:
    with pytest.raises(ForbiddenTargetError, match="http"):
        await resolve_target(url, allow_private=True)


async def test_localhost_resolves_to_loopback() -> None:
    target = await resolve_target("http://localhost:9/", allow_private=True)

    assert target.address.is_loopback
    assert target.host_header == "localhost:9"
