"""RFC 5965 feedback reports and non-standard feedback-loop complaints."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from plaudit.messaging.deliverability import parse_arf

FIXTURES = Path(__file__).parent / "fixtures" / "mail"


def test_abuse_report_fields() -> None:
    report = parse_arf((FIXTURES / "arf_abuse.eml").read_bytes())

    assert report.kind == "complaint"
    assert report.source == "arf"
    assert report.feedback_type == "abuse"
    assert report.user_agent == "ExampleFeedback/2.1"
    assert report.version == "1"
    assert report.original_mail_from == "bounces@mail.example.com"
    assert report.original_rcpt_to == ("noah@isp.example.net",)
    assert report.arrival_date == "Fri, 20 Jun 2025 13:55:01 +0000"
    assert report.reported_domain == ("mail.example.com",)
    assert report.source_ip == "192.0.2.44"
    assert report.original_message_id == "<request.44dd.step1@mail.example.com>"
    assert report.original_to == "noah@isp.example.net"
    assert report.recipient == "noah@isp.example.net"


def test_auth_failure_is_dmarc_failure() -> None:
    report = parse_arf((FIXTURES / "arf_auth_failure.eml").read_bytes())

    assert report.kind == "dmarc_failure"
    assert report.feedback_type == "auth-failure"
    assert report.auth_failure == "dmarc"
    assert report.original_message_id == "<forged.1@attacker.example.net>"


@pytest.mark.parametrize(
    ("feedback_type", "kind"),
    [
        ("abuse", "complaint"),
        ("fraud", "complaint"),
        ("virus", "complaint"),
        ("other", "complaint"),
        ("opt-out", "complaint"),
        ("not-spam", "not_bounce"),
        ("auth-failure", "dmarc_failure"),
        ("dmarc", "dmarc_failure"),
        ("something-new", "complaint"),
    ],
)
def test_feedback_type_decides_kind(feedback_type: str, kind: str) -> None:
    data = (FIXTURES / "arf_abuse.eml").read_bytes()
    data = data.replace(b"Feedback-Type: abuse", f"Feedback-Type: {feedback_type}".encode())

    report = parse_arf(data)

    assert report.kind == kind
    assert report.feedback_type == feedback_type


def test_jmrp_complaint_without_report_part() -> None:
    report = parse_arf((FIXTURES / "jmrp_complaint.eml").read_bytes())

    assert report.kind == "complaint"
    assert report.source == "jmrp"
    assert report.recipient == "amira@hotmail.example.com"
    assert report.original_message_id == "<request.55ee.step1@mail.example.com>"


def test_base64_report_part_is_decoded() -> None:
    fields = (
        b"Feedback-Type: abuse\r\nUser-Agent: Encoded/1.0\r\nVersion: 1\r\n"
        b"Original-Rcpt-To: <kim@example.net>\r\n"
    )
    data = (
        b"From: fbl@example.net\nSubject: report\nMIME-Version: 1.0\n"
        b"Content-Type: multipart/report; report-type=feedback-report; boundary=b\n\n"
        b"--b\nContent-Type: text/plain\n\nReport\n\n"
        b"--b\nContent-Type: message/feedback-report\nContent-Transfer-Encoding: base64\n\n"
        + base64.encodebytes(fields)
        + b"\n--b--\n"
    )

    report = parse_arf(data)

    assert report.kind == "complaint"
    assert report.user_agent == "Encoded/1.0"
    assert report.recipient == "kim@example.net"


@pytest.mark.parametrize(
    "name", ["plain_letter.eml", "dsn_postfix_user_unknown.eml", "autoreply_english.eml"]
)
def test_other_mail_is_not_a_report(name: str) -> None:
    report = parse_arf((FIXTURES / name).read_bytes())

    assert report.kind == "unknown"
    assert report.reason


@pytest.mark.parametrize("data", [b"", b"\xff\xfe\x00", b"Content-Type: multipart/report\n\n--"])
def test_junk_never_raises(data: bytes) -> None:
    report = parse_arf(data)

    assert report.kind == "unknown"
