"""DMARC aggregate, failure and SMTP TLS reports, including hostile XML and archives."""

from __future__ import annotations

import gzip
import io
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest

from plaudit.messaging.deliverability import parse_dmarc
from plaudit.messaging.deliverability.archive import ArchiveLimits

FIXTURES = Path(__file__).parent / "fixtures" / "mail"
AGGREGATE = (FIXTURES / "dmarc_aggregate.xml").read_bytes()
TLS = (FIXTURES / "tls_report.json").read_bytes()


def zipped(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def email_with_attachment(data: bytes, maintype: str, subtype: str, filename: str) -> bytes:
    message = EmailMessage()
    message["From"] = "noreply-dmarc@receiver.example.org"
    message["To"] = "dmarc-rua@example.com"
    message["Subject"] = "Report domain: example.com Submitter: receiver.example.org"
    message.set_content("This is an aggregate report.")
    message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes()


def test_aggregate_metadata_and_policy() -> None:
    report = parse_dmarc(AGGREGATE)

    assert report.kind == "dmarc_aggregate"
    assert report.metadata is not None
    assert report.metadata.org_name == "receiver.example.org"
    assert report.metadata.report_id == "2025-06-20.example.com.7781"
    assert report.metadata.begin == 1750377600
    assert report.metadata.end_utc == "2025-06-20T23:59:59Z"
    assert report.policy_published is not None
    assert report.policy_published.domain == "example.com"
    assert report.policy_published.p == "quarantine"


def test_aggregate_records_and_alignment() -> None:
    report = parse_dmarc(AGGREGATE)

    first, second, third = report.records
    assert (first.source_ip, first.count, first.disposition) == ("192.0.2.44", 120, "none")
    assert first.dkim_aligned is True
    assert first.spf_aligned is False
    assert first.dmarc_pass is True
    assert [result.method for result in first.auth_results] == ["dkim", "spf"]
    assert second.dmarc_pass is False
    assert second.reasons == ("local_policy forwarded",)
    # Upper-case values are invalid per the schema but sent by some reporters.
    assert third.spf == "pass"
    assert third.dmarc_pass is True


def test_aggregate_sources_summary() -> None:
    report = parse_dmarc(AGGREGATE)

    summaries = {summary.source_ip: summary for summary in report.sources}
    assert summaries["192.0.2.44"].messages == 123
    assert summaries["192.0.2.44"].passed == 123
    assert summaries["203.0.113.50"].failed == 7


def test_aggregate_alignment_summary() -> None:
    report = parse_dmarc(AGGREGATE)

    assert report.alignment is not None
    assert report.alignment.dkim_only == 120
    assert report.alignment.spf_only == 3
    assert report.alignment.neither == 7
    assert report.alignment.dkim_and_spf == 0


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(gzip.compress, id="gzip"),
        pytest.param(lambda data: zipped("report.xml", data), id="zip"),
        pytest.param(
            lambda data: email_with_attachment(
                gzip.compress(data), "application", "gzip", "r.xml.gz"
            ),
            id="email-gzip",
        ),
        pytest.param(
            lambda data: email_with_attachment(
                zipped("r.xml", data), "application", "zip", "r.zip"
            ),
            id="email-zip",
        ),
        pytest.param(
            lambda data: email_with_attachment(data, "text", "xml", "r.xml"), id="email-xml"
        ),
        pytest.param(lambda data: gzip.compress(data) + b"\r\n", id="gzip-trailing-newline"),
    ],
)
def test_aggregate_in_every_container(wrap: object) -> None:
    assert callable(wrap)

    report = parse_dmarc(wrap(AGGREGATE))

    assert report.kind == "dmarc_aggregate", report.reason
    assert len(report.records) == 3


def test_namespaced_report() -> None:
    data = AGGREGATE.replace(b"<feedback>", b'<feedback xmlns="urn:ietf:params:xml:ns:dmarc-2.0">')

    report = parse_dmarc(data)

    assert report.kind == "dmarc_aggregate"
    assert report.records[0].source_ip == "192.0.2.44"


def test_entity_expansion_is_rejected() -> None:
    bomb = (
        b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
        b' <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">\n'
        b' <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">\n'
        b"]>\n<feedback><report_metadata><org_name>&lol3;</org_name></report_metadata>"
        b"</feedback>"
    )

    report = parse_dmarc(bomb)

    assert report.kind == "invalid"
    assert "DTD" in report.reason


def test_external_entity_is_rejected(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do-not-leak")
    xxe = (
        f'<?xml version="1.0"?>\n<!DOCTYPE feedback [<!ENTITY x SYSTEM "file://{secret}">]>\n'
        "<feedback><report_metadata><org_name>&x;</org_name></report_metadata></feedback>"
    ).encode()

    report = parse_dmarc(xxe)

    assert report.kind == "invalid"
    assert "do-not-leak" not in report.reason


def test_gzip_bomb_is_capped() -> None:
    bomb = gzip.compress(b"<" + b" " * (4 * 1024 * 1024))
    limits = ArchiveLimits(max_uncompressed_bytes=1024 * 1024)

    report = parse_dmarc(bomb, limits=limits)

    assert report.kind == "invalid"
    assert "expands beyond" in report.reason


def test_zip_bomb_is_capped() -> None:
    # 8 MiB of zeros deflate to about 8 KiB; the cap stops reading at 1 MiB.
    bomb = zipped("report.xml", b"\0" * (8 * 1024 * 1024))
    limits = ArchiveLimits(max_uncompressed_bytes=1024 * 1024)

    report = parse_dmarc(bomb, limits=limits)

    assert report.kind == "invalid"
    assert "expands beyond" in report.reason


def test_zip_with_many_members_is_rejected() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for index in range(50):
            archive.writestr(f"part{index}.xml", AGGREGATE)

    report = parse_dmarc(buffer.getvalue())

    assert report.kind == "invalid"
    assert "members" in report.reason


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"<feedback><record>", "not well-formed"),
        (b"<html><body>hello</body></html>", "expected <feedback>"),
        (b"\x1f\x8b\x08\x00broken", "gzip"),
        (b"PK\x03\x04broken", "zip"),
        (b"", "empty"),
        (b'{"policies": 3}', "policies"),
        (b"{not json", "invalid JSON"),
    ],
)
def test_malformed_input_is_invalid(data: bytes, words: str) -> None:
    report = parse_dmarc(data)

    assert report.kind == "invalid"
    assert words in report.reason


def test_record_without_source_ip_is_skipped_with_warning() -> None:
    data = AGGREGATE.replace(b"<source_ip>203.0.113.50</source_ip>", b"")

    report = parse_dmarc(data)

    assert len(report.records) == 2
    assert report.warnings == ("record 1 has no source_ip; skipped",)


def test_tls_report_json_and_gzip() -> None:
    for data in (TLS, gzip.compress(TLS)):
        report = parse_dmarc(data)

        assert report.kind == "smtp_tls"
        assert report.tls is not None
        (policy,) = report.tls.policies
        assert policy.policy_domain == "example.com"
        assert policy.successful_sessions == 5326
        assert policy.failures[0].result_type == "certificate-expired"


def test_tls_report_attached_to_email() -> None:
    data = email_with_attachment(gzip.compress(TLS), "application", "tlsrpt+gzip", "t.json.gz")

    report = parse_dmarc(data)

    assert report.kind == "smtp_tls"


def test_failure_report_email() -> None:
    report = parse_dmarc((FIXTURES / "arf_auth_failure.eml").read_bytes())

    assert report.kind == "dmarc_failure"
    assert report.failure is not None
    assert report.failure.source_ip == "203.0.113.50"


def test_abuse_report_is_not_a_dmarc_report() -> None:
    report = parse_dmarc((FIXTURES / "arf_abuse.eml").read_bytes())

    assert report.kind == "invalid"
    assert "abuse" in report.reason


def test_email_without_report_is_invalid() -> None:
    report = parse_dmarc((FIXTURES / "plain_letter.eml").read_bytes())

    assert report.kind == "invalid"
    assert "no report attachment" in report.reason
