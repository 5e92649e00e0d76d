"""Real provider payloads yield the original Message-ID where they carry one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from plaudit.inbound.message_ids import postmark_message_id, sendgrid_message_id, ses_message_id

pytestmark = pytest.mark.conformance


def payloads(corpus_dir: Path, prefixes: tuple[str, ...]) -> list[tuple[str, Any]]:
    folder = corpus_dir / "provider-webhooks"
    found = []
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith(prefixes):
            found.append((path.name, json.loads(path.read_text(encoding="utf-8"))))
    return found


def ses_mail(body: dict[str, Any]) -> dict[str, Any] | None:
    """Return the ``mail`` object of a bare SES notification or one inside an SNS envelope."""
    message: object = body
    if isinstance(body.get("Message"), str):
        try:
            message = json.loads(body["Message"])
        except json.JSONDecodeError:
            # A subscription handshake carries a plain-text Message.
            return None
    mail = message.get("mail") if isinstance(message, dict) else None
    return mail if isinstance(mail, dict) else None


def test_ses_header_message_id_preferred(corpus_dir: Path) -> None:
    checked = 0
    for name, body in payloads(
        corpus_dir, ("fxrelay_", "mailcoach-ses_", "sisimai_json-amazonses-")
    ):
        mail = ses_mail(body)
        if mail is None:
            continue
        headers = {
            str(header["name"]).lower(): header["value"] for header in mail.get("headers", [])
        }
        expected = headers.get("message-id", mail.get("messageId"))
        if "message-id" not in headers and "@" in str(
            mail.get("commonHeaders", {}).get("messageId", "")
        ):
            expected = mail["commonHeaders"]["messageId"]

        assert ses_message_id(mail) == expected, name
        checked += 1

    assert checked > 0


def test_sendgrid_smtp_id_preferred(corpus_dir: Path) -> None:
    checked = 0
    for name, body in payloads(corpus_dir, ("mailcoach-sendgrid_", "sisimai_json-sendgrid-")):
        for item in body if isinstance(body, list) else [body]:
            expected = item.get("smtp-id") or item.get("sg_message_id")

            assert sendgrid_message_id(item) == expected, name
            checked += 1

    assert checked > 0


def test_postmark_without_tracking_metadata(corpus_dir: Path) -> None:
    checked = 0
    for name, body in payloads(corpus_dir, ("mailcoach-postmark_",)):
        assert postmark_message_id(body) == body.get("MessageID"), name
        checked += 1

    assert checked > 0
