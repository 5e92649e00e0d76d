"""Provider bodies mapped to Plaudit's inbound event types, with fixtures written here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from plaudit.inbound.events import map_events
from plaudit.inbound.mapping import MalformedPayload, MappingError, NotDeliveryEvent
from plaudit.inbound.testing import pubsub_body


def body(data: object) -> bytes:
    return json.dumps(data).encode()


def types(provider: str, data: bytes, **options: str) -> list[str]:
    return [event.type for event in map_events(provider, data, received_at=100.0, **options)]


def test_sendgrid_batch_skips_unknown_events() -> None:
    batch = body(
        [
            {"email": "a@example.com", "event": "delivered", "timestamp": 10, "sg_event_id": "1"},
            {"email": "a@example.com", "event": "group_resubscribe", "timestamp": 11},
            {"email": "a@example.com", "event": "bounce", "timestamp": 12, "status": "5.1.1"},
        ]
    )
    assert types("sendgrid", batch) == ["message.delivered", "message.hard_bounce"]


def test_sendgrid_only_unknown_events_rejected() -> None:
    batch = body([{"email": "a@example.com", "event": "group_resubscribe", "timestamp": 1}])
    with pytest.raises(NotDeliveryEvent, match="no delivery event"):
        map_events("sendgrid", batch, received_at=0.0)


def test_sendgrid_blocked_is_soft() -> None:
    batch = body(
        [
            {
                "email": "a@example.com",
                "event": "bounce",
                "type": "blocked",
                "timestamp": 1,
                "status": "4.2.2",
            }
        ]
    )
    assert types("sendgrid", batch) == ["message.soft_bounce"]


def test_mailgun_temporary_failure_deferred() -> None:
    data = body(
        {
            "event-data": {
                "id": "x",
                "event": "failed",
                "severity": "temporary",
                "timestamp": 5.0,
                "recipient": "b@example.com",
                "delivery-status": {"message": "452 4.2.2 mailbox full"},
            }
        }
    )
    events = map_events("mailgun", data, received_at=0.0)
    assert events[0].type == "message.deferred"
    assert events[0].status == "4.2.2"


def test_postmark_reactivation_rejected() -> None:
    data = body({"RecordType": "SubscriptionChange", "SuppressSending": False})
    with pytest.raises(NotDeliveryEvent, match="re-activates"):
        map_events("postmark", data, received_at=0.0)


def test_ses_notification_in_envelope() -> None:
    inner = {
        "notificationType": "Bounce",
        "mail": {"messageId": "m1"},
        "bounce": {
            "bounceType": "Permanent",
            "timestamp": "2026-01-01T00:00:00.000Z",
            "feedbackId": "f1",
            "bouncedRecipients": [
                {"emailAddress": "x@example.com", "status": "5.1.1"},
                {"emailAddress": "y@example.com", "status": "5.7.1"},
            ],
        },
    }
    data = body({"Type": "Notification", "MessageId": "sns-1", "Message": json.dumps(inner)})
    events = map_events("ses", data, received_at=0.0)
    assert [event.type for event in events] == ["message.hard_bounce", "message.policy_block"]
    assert events[0].message_id == "m1"
    assert events[0].provider_event_id != events[1].provider_event_id


def test_ses_received_mail_rejected() -> None:
    data = body({"notificationType": "Received", "mail": {}})
    with pytest.raises(NotDeliveryEvent, match="incoming mail"):
        map_events("ses", data, received_at=0.0)


def test_twilio_stop_is_unsubscribe() -> None:
    data = b"MessageSid=SM1&SmsStatus=received&From=%2B15550100&Body=STOP"
    events = map_events("twilio", data, received_at=50.0)
    assert events[0].type == "message.unsubscribe"
    assert events[0].recipient == "+15550100"
    assert events[0].occurred_at == 50.0


def test_twilio_opted_out_error_is_unsubscribe() -> None:
    data = b"MessageSid=SM2&MessageStatus=failed&To=%2B15550100&ErrorCode=21610"
    events = map_events("twilio", data, received_at=0.0)
    assert events[0].type == "message.unsubscribe"


def test_twilio_queued_not_recorded() -> None:
    with pytest.raises(NotDeliveryEvent, match="queued"):
        map_events("twilio", b"MessageSid=SM1&MessageStatus=queued", received_at=0.0)


def test_resend_bounce_uses_delivery_id() -> None:
    data = body(
        {
            "type": "email.bounced",
            "created_at": "2026-01-01T00:00:00.000Z",
            "data": {"email_id": "e1", "to": ["z@example.com"], "bounce": {"type": "Permanent"}},
        }
    )
    events = map_events("resend", data, received_at=0.0, delivery_id="msg_9")
    assert events[0].type == "message.hard_bounce"
    assert events[0].provider_event_id == "msg_9"


def test_google_updated_review_is_push() -> None:
    data = pubsub_body(
        "7",
        {"type": "UPDATED_REVIEW", "location": "accounts/1/locations/2"},
        published="2026-01-01T00:00:00Z",
    )
    events = map_events("google", data, received_at=0.0)
    assert events[0].type == "platform.push"
    assert events[0].profile == "accounts/1/locations/2"


def test_google_other_notification_rejected() -> None:
    data = pubsub_body("8", {"type": "NEW_QUESTION"}, published="2026-01-01T00:00:00Z")
    with pytest.raises(NotDeliveryEvent, match="NEW_QUESTION"):
        map_events("google", data, received_at=0.0)


def test_facebook_feed_change_rejected() -> None:
    data = body({"object": "page", "entry": [{"id": "1", "changes": [{"field": "feed"}]}]})
    with pytest.raises(NotDeliveryEvent, match="ratings"):
        map_events("facebook", data, received_at=0.0)


@pytest.mark.parametrize(
    "provider", ["sendgrid", "mailgun", "postmark", "ses", "resend", "facebook", "google"]
)
def test_invalid_json_malformed(provider: str) -> None:
    with pytest.raises(MalformedPayload):
        map_events(provider, b"\xff{", received_at=0.0)


def test_unknown_provider_raises() -> None:
    with pytest.raises(MappingError, match="unknown provider"):
        map_events("sparkpost", b"{}", received_at=0.0)


def test_inspect_prints_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "batch.json"
    path.write_bytes(
        body([{"email": "a@example.com", "event": "open", "timestamp": 3, "sg_event_id": "o1"}])
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "plaudit",
            "inspect",
            "webhook",
            "--provider",
            "sendgrid",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.splitlines()[0])
    assert record == {
        "type": "message.opened",
        "provider_event_id": "o1",
        "occurred_at": 3.0,
        "recipient": "a@example.com",
    }


def test_inspect_rejection_exits_nonzero(tmp_path: Path) -> None:
    path = tmp_path / "received.json"
    path.write_bytes(body({"notificationType": "Received", "mail": {}}))
    result = subprocess.run(
        [sys.executable, "-m", "plaudit", "inspect", "webhook", "--provider", "ses", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "incoming mail" in result.stderr
    assert result.stdout == ""
