"""``plaudit check-sender`` against a DNS responder on loopback."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from plaudit.messaging.deliverability.domains import organizational_domain
from plaudit.messaging.deliverability.sender import (
    SenderCheckError,
    check_sender,
    dns_lookup,
    make_resolver,
    parse_resolver,
    parse_spf,
)
from tests.support import plaudit_env


def rsa_key(bits: int) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


KEY_2048 = rsa_key(2048)
KEY_1024 = rsa_key(1024)

GOOD_ZONE = {
    "vendor.test": ["v=spf1 ip4:192.0.2.0/24 include:_spf.mailer.test -all", "unrelated=1"],
    "_spf.mailer.test": ["v=spf1 a mx ip4:198.51.100.0/24 ~all"],
    "s1._domainkey.vendor.test": [f"v=DKIM1; k=rsa; p={KEY_2048}"],
    "old._domainkey.vendor.test": ["v=DKIM1; k=rsa; p="],
    "_dmarc.vendor.test": [
        "v=DMARC1; p=quarantine; sp=reject; pct=50; rua=mailto:dmarc@vendor.test; adkim=s"
    ],
}


def serve_dns(sock: socket.socket, zone: dict[str, list[str]], stop: threading.Event) -> None:
    """Serve TXT records from ``zone`` until ``stop``; other names get NXDOMAIN."""
    sock.settimeout(0.1)
    while not stop.is_set():
        try:
            data, peer = sock.recvfrom(4096)
        except TimeoutError:
            continue
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        records = zone.get(name)
        if records is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.TXT:
            # Long values are split into 255-byte strings, as real zones publish them.
            texts = [
                " ".join(
                    '"' + record[start : start + 255] + '"' for start in range(0, len(record), 255)
                )
                for record in records
            ]
            response.answer.append(
                dns.rrset.from_text_list(question.name, 300, dns.rdataclass.IN, "TXT", texts)
            )
        sock.sendto(response.to_wire(), peer)


@pytest.fixture
def dns_server() -> Iterator[tuple[str, dict[str, list[str]]]]:
    zone: dict[str, list[str]] = dict(GOOD_ZONE)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    stop = threading.Event()
    thread = threading.Thread(target=serve_dns, args=(sock, zone, stop), daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}", zone
    finally:
        stop.set()
        thread.join(timeout=10)
        sock.close()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "plaudit", "check-sender", *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=60, env=plaudit_env(), check=False
    )


def test_cli_reports_ready_domain(dns_server: tuple[str, dict[str, list[str]]]) -> None:
    resolver, _zone = dns_server
    result = run_cli("vendor.test", "--resolver", resolver, "--selector", "s1", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ready"] is True
    assert report["spf"]["all_qualifier"] == "-"
    # include (1) plus the included record's a and mx (2).
    assert report["spf"]["lookups"] == 3
    assert report["dkim"][0]["key_bits"] == 2048
    assert report["dkim"][0]["key_type"] == "rsa"
    assert report["dmarc"]["policy"] == "quarantine"
    assert report["dmarc"]["subdomain_policy"] == "reject"
    assert report["dmarc"]["pct"] == 50
    assert report["dmarc"]["adkim"] == "s"
    assert report["dmarc"]["aspf"] == "r"
    assert report["dmarc"]["rua"] == ["mailto:dmarc@vendor.test"]


def test_cli_text_output(dns_server: tuple[str, dict[str, list[str]]]) -> None:
    resolver, _zone = dns_server
    result = run_cli("vendor.test", "--resolver", resolver, "--selector", "s1")
    assert result.returncode == 0, result.stderr
    assert "ready for DMARC: yes" in result.stdout
    assert "s1: rsa 2048 bits" in result.stdout


def test_cli_missing_dmarc_not_ready(dns_server: tuple[str, dict[str, list[str]]]) -> None:
    resolver, zone = dns_server
    del zone["_dmarc.vendor.test"]
    result = run_cli("vendor.test", "--resolver", resolver, "--selector", "s1", "--json")
    assert result.returncode == 3
    report = json.loads(result.stdout)
    assert report["ready"] is False
    assert any("no DMARC record" in problem for problem in report["problems"])


def test_cli_requires_resolver() -> None:
    result = run_cli("vendor.test")
    assert result.returncode == 1
    assert "--resolver" in result.stderr
    assert "--system-resolver" in result.stderr


def test_cli_reads_resolver_from_config(
    dns_server: tuple[str, dict[str, list[str]]], tmp_path: Path
) -> None:
    resolver, _zone = dns_server
    config = tmp_path / "plaudit.toml"
    config.write_text(f'[deliverability]\nresolver = "{resolver}"\n', encoding="utf-8")
    result = run_cli("vendor.test", "--config", str(config), "--selector", "s1", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["resolver"] == resolver


def test_cli_unreachable_resolver_fails_clearly() -> None:
    # A bound socket that never replies, so the query times out.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        result = run_cli("vendor.test", "--resolver", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert "failed" in result.stderr
    assert "127.0.0.1" in result.stderr


def test_revoked_and_missing_selectors(dns_server: tuple[str, dict[str, list[str]]]) -> None:
    resolver, _zone = dns_server
    lookup = dns_lookup(make_resolver(resolver))
    report = check_sender("vendor.test", ["old", "absent"], lookup, resolver=resolver)
    assert report.dkim_ready is False
    assert "revoked" in report.dkim[0].problems[0]
    assert report.dkim[1].record is None
    # SPF alone aligns, so DMARC can still pass.
    assert report.ready is True


def test_common_selectors_probed_by_default(
    dns_server: tuple[str, dict[str, list[str]]],
) -> None:
    resolver, _zone = dns_server
    lookup = dns_lookup(make_resolver(resolver))
    report = check_sender("vendor.test", [], lookup, resolver=resolver)
    assert [key.selector for key in report.dkim] == ["s1"]
    assert report.dkim_ready is True
    assert not any("selector" in problem for problem in report.problems)

    bare = check_sender("mail.vendor.test", [], lookup, resolver=resolver)
    assert bare.dkim == ()
    assert any("no DKIM key at the common selectors" in p for p in bare.problems)


def test_spf_over_lookup_limit(dns_server: tuple[str, dict[str, list[str]]]) -> None:
    resolver, zone = dns_server
    includes = " ".join(f"include:n{index}.mailer.test" for index in range(6))
    zone["vendor.test"] = [f"v=spf1 {includes} -all"]
    for index in range(6):
        zone[f"n{index}.mailer.test"] = ["v=spf1 a ~all"]
    report = check_sender("vendor.test", [], dns_lookup(make_resolver(resolver)), resolver="")
    # Counting stops following includes past the limit: 5 includes of 2 lookups, then 1.
    assert report.spf.lookups == 11
    assert report.spf_ready is False
    assert any("over the limit of 10" in problem for problem in report.spf.problems)


def test_spf_include_loop_ends(dns_server: tuple[str, dict[str, list[str]]]) -> None:
    resolver, zone = dns_server
    zone["vendor.test"] = ["v=spf1 include:loop.mailer.test -all"]
    zone["loop.mailer.test"] = ["v=spf1 include:vendor.test -all"]
    report = check_sender("vendor.test", [], dns_lookup(make_resolver(resolver)), resolver="")
    assert any("loop" in problem for problem in report.spf.problems)


def test_spf_plus_all_is_a_problem(dns_server: tuple[str, dict[str, list[str]]]) -> None:
    resolver, zone = dns_server
    zone["vendor.test"] = ["v=spf1 mx +all"]
    report = check_sender("vendor.test", [], dns_lookup(make_resolver(resolver)), resolver="")
    assert report.spf.all_qualifier == "+"
    assert report.spf_ready is False


def test_two_spf_records_rejected(dns_server: tuple[str, dict[str, list[str]]]) -> None:
    resolver, zone = dns_server
    zone["vendor.test"] = ["v=spf1 -all", "v=spf1 mx -all"]
    report = check_sender("vendor.test", [], dns_lookup(make_resolver(resolver)), resolver="")
    assert "publish exactly one" in report.spf.problems[0]


def test_short_and_broken_dkim_keys(dns_server: tuple[str, dict[str, list[str]]]) -> None:
    resolver, zone = dns_server
    zone["k1._domainkey.vendor.test"] = [f"v=DKIM1; p={KEY_1024}"]
    zone["bad._domainkey.vendor.test"] = ["v=DKIM1; k=rsa; p=!!!notbase64"]
    zone["ed._domainkey.vendor.test"] = [
        "v=DKIM1; k=ed25519; p=" + base64.b64encode(bytes(32)).decode()
    ]
    report = check_sender(
        "vendor.test", ["k1", "bad", "ed"], dns_lookup(make_resolver(resolver)), resolver=""
    )
    assert report.dkim[0].key_bits == 1024
    assert report.dkim[0].problems == ()
    assert "base64" in report.dkim[1].problems[0]
    assert report.dkim[2].key_bits == 256


def test_dmarc_invalid_policy(dns_server: tuple[str, dict[str, list[str]]]) -> None:
    resolver, zone = dns_server
    zone["_dmarc.vendor.test"] = ["v=DMARC1; p=block; pct=abc"]
    report = check_sender("vendor.test", ["s1"], dns_lookup(make_resolver(resolver)), resolver="")
    assert report.ready is False
    assert any("p='block'" in problem for problem in report.dmarc.problems)
    assert any("pct" in problem for problem in report.dmarc.problems)
    assert any("rua" in problem for problem in report.dmarc.problems)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("::1", ("::1", 53)),
        ("[::1]:5353", ("::1", 5353)),
    ],
)
def test_parse_resolver(text: str, expected: tuple[str, int]) -> None:
    assert parse_resolver(text) == expected


@pytest.mark.parametrize("text", ["dns.example", "127.0.0.1:0", "127.0.0.1:x", ""])
def test_parse_resolver_rejects(text: str) -> None:
    with pytest.raises(SenderCheckError):
        parse_resolver(text)


def test_parse_spf_terms() -> None:
    mechanisms, qualifier, redirect = parse_spf("v=spf1 ip4:192.0.2.1 ~all exp=explain.test")
    assert mechanisms == ["ip4:192.0.2.1", "~all"]
    assert qualifier == "~"
    assert redirect is None


def test_cli_rejects_both_resolvers() -> None:
    result = run_cli("vendor.test", "--resolver", "127.0.0.1:9", "--system-resolver")
    assert result.returncode == 1
    assert "not both" in result.stderr


def test_cli_rejects_invalid_domain() -> None:
    result = run_cli("localhost", "--resolver", "127.0.0.1:9")
    assert result.returncode == 1
    assert "domain 'localhost' is invalid" in result.stderr


def subdomain_zone(zone: dict[str, list[str]]) -> None:
    zone["mail.vendor.test"] = ["v=spf1 include:_spf.mailer.test -all"]
    zone["s1._domainkey.mail.vendor.test"] = [f"v=DKIM1; k=rsa; p={KEY_2048}"]


def test_cli_subdomain_inherits_dmarc(dns_server: tuple[str, dict[str, list[str]]]) -> None:
    resolver, zone = dns_server
    subdomain_zone(zone)
    result = run_cli("mail.vendor.test", "--resolver", resolver, "--selector", "s1", "--json")
    assert result.returncode == 0, result.stderr
    dmarc = json.loads(result.stdout)["dmarc"]
    assert dmarc["record_domain"] == "vendor.test"
    assert dmarc["policy"] == "quarantine"
    # The organizational domain's sp= applies to its subdomains.
    assert dmarc["applied_policy"] == "reject"

    text = run_cli("mail.vendor.test", "--resolver", resolver, "--selector", "s1")
    assert "inherited from the organizational domain vendor.test" in text.stdout
    assert "mail.vendor.test gets p=reject" in text.stdout


def test_own_dmarc_record_wins(dns_server: tuple[str, dict[str, list[str]]]) -> None:
    resolver, zone = dns_server
    subdomain_zone(zone)
    zone["_dmarc.mail.vendor.test"] = ["v=DMARC1; p=none; rua=mailto:d@vendor.test"]
    lookup = dns_lookup(make_resolver(resolver))
    report = check_sender("mail.vendor.test", ["s1"], lookup, resolver=resolver)
    assert report.dmarc.record_domain == "mail.vendor.test"
    assert report.dmarc.applied_policy == "none"


def test_subdomain_inherits_p_without_sp(dns_server: tuple[str, dict[str, list[str]]]) -> None:
    resolver, zone = dns_server
    subdomain_zone(zone)
    zone["_dmarc.vendor.test"] = ["v=DMARC1; p=quarantine; rua=mailto:d@vendor.test"]
    lookup = dns_lookup(make_resolver(resolver))
    report = check_sender("mail.vendor.test", ["s1"], lookup, resolver=resolver)
    assert report.dmarc.applied_policy == "quarantine"
    assert report.ready is True


def test_no_dmarc_anywhere_names_both(dns_server: tuple[str, dict[str, list[str]]]) -> None:
    resolver, zone = dns_server
    subdomain_zone(zone)
    del zone["_dmarc.vendor.test"]
    lookup = dns_lookup(make_resolver(resolver))
    report = check_sender("mail.vendor.test", ["s1"], lookup, resolver=resolver)
    assert report.ready is False
    (problem,) = report.dmarc.problems
    assert "_dmarc.mail.vendor.test" in problem
    assert "_dmarc.vendor.test" in problem


def test_two_subdomain_records_stop_discovery(
    dns_server: tuple[str, dict[str, list[str]]],
) -> None:
    resolver, zone = dns_server
    subdomain_zone(zone)
    zone["_dmarc.mail.vendor.test"] = ["v=DMARC1; p=none", "v=DMARC1; p=reject"]
    lookup = dns_lookup(make_resolver(resolver))
    report = check_sender("mail.vendor.test", ["s1"], lookup, resolver=resolver)
    assert report.dmarc.record_domain == "mail.vendor.test"
    assert report.ready is False
    assert "publish exactly one" in report.dmarc.problems[0]


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("vendor.test", "vendor.test"),
        ("mail.vendor.test", "vendor.test"),
        ("a.b.vendor.example", "vendor.example"),
        ("news.studio.co.uk", "studio.co.uk"),
        ("studio.co.uk", "studio.co.uk"),
        ("mail.venue.com.au", "venue.com.au"),
    ],
)
def test_organizational_domain(domain: str, expected: str) -> None:
    assert organizational_domain(domain) == expected
