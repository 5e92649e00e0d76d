"""Bounce classification over invented fixtures of each format family, plus hostile input."""

from __future__ import annotations

from pathlib import Path

import pytest

from plaudit.messaging.deliverability import BounceResult, parse_bounce

FIXTURES = Path(__file__).parent / "fixtures" / "mail"


def mixed_line_endings(data: bytes) -> bytes:
    """Rotate CRLF, CR and LF line by line."""
    endings = (b"\r\n", b"\r", b"\n")
    lines = data.split(b"\n")
    return b"".join(line + endings[index % 3] for index, line in enumerate(lines))


def parse_fixture(name: str) -> BounceResult:
    return parse_bounce((FIXTURES / name).read_bytes())


# file, kind, final, status, recipient
CASES = [
    ("dsn_postfix_user_unknown.eml", "hard_bounce", True, "5.1.1", "ana.lucia@example.net"),
    ("dsn_delayed.eml", "soft_bounce", False, "4.4.1", "marco@example.org"),
    ("dsn_mailbox_full.eml", "soft_bounce", True, "5.2.2", "priya@example.net"),
    ("dsn_policy_block.eml", "policy_block", True, "5.7.1", "tom@example.org"),
    ("dsn_two_recipients.eml", "hard_bounce", True, "5.1.1", "gone@example.org"),
    ("exim_failed.eml", "hard_bounce", True, "5.1.1", "sofia@example.net"),
    ("exim_delayed.eml", "soft_bounce", False, "4.0.0", "lena@example.net"),
    ("qmail_failure.eml", "hard_bounce", True, "5.1.1", "jamal@example.org"),
    ("sendmail_bare_550.eml", "hard_bounce", True, "5.1.1", "chen@old.example.net"),
    ("exchange_ndr.eml", "hard_bounce", True, "5.1.10", "olivia@contoso.example.com"),
    ("domino_failure.eml", "hard_bounce", True, "5.1.1", "erik.holm@lotus.example.net"),
    ("gmail_failure.eml", "hard_bounce", True, "5.1.1", "clara.m@example.net"),
    ("yahoo_failure.eml", "soft_bounce", True, "5.2.2", "rosa.b@yahoo.example.com"),
    ("ses_dsn.eml", "policy_block", True, "5.7.1", "felix@example.org"),
    ("groupwise_ndr.eml", "hard_bounce", True, "5.1.1", "yusuf@gw.example.net"),
    ("autoreply_english.eml", "not_bounce", None, None, None),
    ("autoreply_german.eml", "not_bounce", None, None, None),
    ("autoreply_spanish.eml", "not_bounce", None, None, None),
    ("challenge_response.eml", "not_bounce", None, None, None),
    ("plain_letter.eml", "not_bounce", None, None, None),
]


@pytest.mark.parametrize(("name", "kind", "final", "status", "recipient"), CASES)
def test_fixture_classification(
    name: str, kind: str, final: bool | None, status: str | None, recipient: str | None
) -> None:
    result = parse_fixture(name)

    assert result.kind == kind, result.reason
    assert result.final is final
    assert result.status == status
    assert result.recipient == recipient
    assert result.reason


@pytest.mark.parametrize(
    ("name", "message_id"),
    [
        ("dsn_postfix_user_unknown.eml", "<request.7f3a9c.step1@mail.example.com>"),
        ("dsn_delayed.eml", "<request.11aa.step2@mail.example.com>"),
        ("exim_failed.eml", "<request.22bb.step1@mail.example.com>"),
        ("qmail_failure.eml", "<request.33cc.step1@mail.example.com>"),
    ],
)
def test_original_message_id_found(name: str, message_id: str) -> None:
    assert parse_fixture(name).original_message_id == message_id


def test_dsn_keeps_reported_and_effective_status() -> None:
    result = parse_fixture("dsn_postfix_user_unknown.eml")

    (detail,) = result.recipients
    assert detail.reported_status == "5.0.0"
    assert detail.status == "5.1.1"
    assert detail.action == "failed"
    assert detail.remote_mta == "mail.example.net"
    assert result.reporting_mta == "mx.example.net"


def test_dsn_lists_every_recipient() -> None:
    result = parse_fixture("dsn_two_recipients.eml")

    assert [detail.recipient for detail in result.recipients] == [
        "waiting@example.org",
        "gone@example.org",
    ]
    assert [detail.final for detail in result.recipients] == [False, True]


@pytest.mark.parametrize(
    "convert",
    [
        pytest.param(lambda data: data.replace(b"\n", b"\r\n"), id="crlf"),
        pytest.param(lambda data: data.replace(b"\n", b"\r"), id="bare-cr"),
        pytest.param(mixed_line_endings, id="mixed"),
    ],
)
@pytest.mark.parametrize("name", ["dsn_postfix_user_unknown.eml", "exim_failed.eml"])
def test_line_endings_do_not_matter(name: str, convert: object) -> None:
    original = (FIXTURES / name).read_bytes()
    assert callable(convert)

    result = parse_bounce(convert(original))

    assert result.kind == "hard_bounce"
    assert result.status == "5.1.1"
    assert result.recipient == parse_fixture(name).recipient


@pytest.mark.parametrize(
    ("diagnostic", "kind", "status"),
    [
        ("550 5.1.1 <a@example.net>... User unknown", "hard_bounce", "5.1.1"),
        (
            "550-5.1.1 The email account that you tried to reach does not exist",
            "hard_bounce",
            "5.1.1",
        ),
        ("Sorry, no mailbox here by that name. (#5.1.1)", "hard_bounce", "5.1.1"),
        ("550 User unknown", "hard_bounce", "5.1.1"),
        ("552 Mailbox is full", "soft_bounce", "5.2.2"),
        ("550 5.2.2 mailbox full", "soft_bounce", "5.2.2"),
        ("552 5.3.4 Message size exceeds fixed limit", "soft_bounce", "5.3.4"),
        ("554 5.7.1 Message rejected as spam", "policy_block", "5.7.1"),
        ("550 Rejected: listed on a DNS blocklist", "policy_block", "5.7.1"),
        ("451 4.7.1 Greylisted, try again later", "soft_bounce", "4.7.1"),
    ],
)
def test_diagnostic_codes_in_plain_notice(diagnostic: str, kind: str, status: str) -> None:
    message = (
        "From: MAILER-DAEMON@mx.example.net\n"
        "To: bounces@mail.example.com\n"
        "Subject: Undelivered Mail Returned to Sender\n\n"
        "Delivery to the following recipient failed permanently:\n\n"
        "    guest@example.net\n\n"
        f"The remote server said: {diagnostic}\n"
    ).encode()

    result = parse_bounce(message)

    assert result.kind == kind, result.reason
    assert result.status == status
    assert result.recipient == "guest@example.net"


def test_unknown_charset_is_read_anyway() -> None:
    data = (FIXTURES / "dsn_postfix_user_unknown.eml").read_bytes()
    data = data.replace(b"charset=us-ascii", b"charset=x-no-such-charset-9")
    data = data.replace(b"This is the mail system", b"Ceci est le syst\xe8me")

    result = parse_bounce(data)

    assert result.kind == "hard_bounce"


def test_undecodable_subject_does_not_crash() -> None:
    data = (
        b"From: MAILER-DAEMON@mx.example.net\n"
        b"Subject: =?x-unknown?B?!!!not-base64?= \xff\xfe Undeliverable\n\n"
        b"Delivery has failed: 550 5.1.1 <ghost@example.net> user unknown\n"
    )

    result = parse_bounce(data)

    assert result.kind == "hard_bounce"
    assert result.recipient == "ghost@example.net"


def test_truncated_mime_is_unknown_with_reason() -> None:
    data = (
        b"From: MAILER-DAEMON@mx.example.net\n"
        b"To: bounces@mail.example.com\n"
        b"Subject: Notification\n"
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=gone\n\n"
        b"This is a MIME-encapsulated message that was cut off in transit"
    )

    result = parse_bounce(data)

    assert result.kind == "unknown"
    assert "truncated" in result.reason


def test_truncated_dsn_keeps_what_was_read() -> None:
    data = (FIXTURES / "dsn_postfix_user_unknown.eml").read_bytes()
    cut = data[: data.index(b"Remote-MTA")]

    result = parse_bounce(cut)

    assert result.kind == "hard_bounce"
    assert result.recipient == "ana.lucia@example.net"


def test_dsn_without_action_is_unknown() -> None:
    data = (
        b"From: MAILER-DAEMON@mx.example.org\n"
        b"To: bounces@mail.example.com\n"
        b"Subject: Undelivered Mail Returned to Sender\n"
        b"MIME-Version: 1.0\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
        b"--B\nContent-Type: text/plain\n\nThis is the mail system.\n\n"
        b"--B\nContent-Type: message/delivery-status\n\n"
        b"Reporting-MTA: dns; mx.example.org\n\n"
        b"Final-Recipient: rfc822; bob@"
    )

    result = parse_bounce(data)

    assert result.kind == "unknown"
    assert result.final is None
    assert result.status is None
    assert "no action, status or cause" in result.reason


def test_deeply_nested_rfc822_does_not_crash() -> None:
    inner = (FIXTURES / "dsn_postfix_user_unknown.eml").read_bytes()
    for depth in range(60):
        inner = (
            b"From: forwarder@example.org\nSubject: Fwd: level %d\nMIME-Version: 1.0\n"
            b"Content-Type: message/rfc822\n\n" % depth
        ) + inner

    result = parse_bounce(inner)

    assert result.kind in {"not_bounce", "unknown"}
    assert result.reason


def test_forwarded_bounce_is_not_bounce() -> None:
    data = (
        b"From: colleague@example.com\nTo: studio@example.com\nSubject: Fwd: look at this\n"
        b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=fw\n\n"
        b"--fw\nContent-Type: text/plain\n\nCan you check this one?\n\n"
        b"--fw\nContent-Type: message/rfc822\n\n"
        + (FIXTURES / "dsn_postfix_user_unknown.eml").read_bytes()
        + b"\n--fw--\n"
    )

    result = parse_bounce(data)

    assert result.kind == "not_bounce"


@pytest.mark.parametrize(
    "data",
    [b"", b"\n\n\n", b"\x00\x01\x02\xff" * 100, b"Subject: x\n\n" + b"\xff" * 5000, b"garbage"],
)
def test_junk_input_never_raises(data: bytes) -> None:
    result = parse_bounce(data)

    assert result.kind in {"unknown", "not_bounce"}
    assert result.reason


def test_oversized_input_is_rejected_unread() -> None:
    result = parse_bounce(b"x" * (16 * 1024 * 1024 + 1))

    assert result.kind == "unknown"
    assert "limit" in result.reason


def test_arf_report_is_a_complaint() -> None:
    result = parse_fixture("arf_abuse.eml")

    assert result.kind == "complaint"
    assert result.recipient == "noah@isp.example.net"
    assert result.original_message_id == "<request.44dd.step1@mail.example.com>"


def test_parser_bug_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(message: object) -> str:
        raise KeyError("boom")

    monkeypatch.setattr("plaudit.messaging.deliverability.heuristics.readable_text", broken)

    result = parse_fixture("exim_failed.eml")

    assert result.kind == "unknown"
    assert "KeyError" in result.reason
