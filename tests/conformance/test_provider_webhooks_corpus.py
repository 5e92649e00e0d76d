"""Every provider webhook payload in the corpus maps to Plaudit events or is rejected."""

from __future__ import annotations

from pathlib import Path

import pytest

from plaudit.inbound.events import map_events
from plaudit.inbound.mapping import InboundEvent, MalformedPayload, NotDeliveryEvent

pytestmark = pytest.mark.conformance

# File name prefixes of the corpus and the provider whose format each file is in.
PROVIDER_OF = {
    "fxrelay_": "ses",
    "mailcoach-mailgun_": "mailgun",
    "mailcoach-postmark_": "postmark",
    "mailcoach-sendgrid_": "sendgrid",
    "mailcoach-sendinblue_": "brevo",
    "mailcoach-ses_": "ses",
    "sisimai_json-amazonses-": "ses",
    "sisimai_json-sendgrid-": "sendgrid",
}
# Files that hold no event about a sent message, and the words their rejection must contain.
REJECTED = {
    "fxrelay_dmarc_failed_email_sns_body.json": "incoming mail",
    "fxrelay_spamVerdict_FAIL_email_sns_body.json": "incoming mail",
    # The upstream stub has a placeholder date and no ts_epoch.
    "mailcoach-sendinblue_complaintWebhookContent.json": "not a time",
}
DELIVERY_TYPES = {
    "message.accepted",
    "message.delivered",
    "message.deferred",
    "message.hard_bounce",
    "message.soft_bounce",
    "message.policy_block",
    "message.complaint",
    "message.unsubscribe",
    "message.opened",
    "message.clicked",
}


def provider_of(name: str) -> str:
    for prefix, provider in PROVIDER_OF.items():
        if name.startswith(prefix):
            return provider
    raise AssertionError(f"no provider known for corpus file {name}; add its prefix")


def payloads(corpus: Path) -> list[Path]:
    return sorted((corpus / "provider-webhooks").glob("*.json"))


def check_event(name: str, event: InboundEvent) -> None:
    assert event.provider_event_id, name
    assert event.occurred_at > 0, name
    if event.type == "subscription.confirmation":
        return
    assert event.type in DELIVERY_TYPES, (name, event.type)
    assert event.recipient, name


def test_every_payload_maps_or_is_rejected(
    corpus_dir: Path, conformance_summary: dict[str, list[str]]
) -> None:
    files = payloads(corpus_dir)
    assert files, "the corpus has no provider-webhooks payloads"
    lines = conformance_summary.setdefault("provider webhooks", [])
    for path in files:
        body = path.read_bytes()
        provider = provider_of(path.name)
        if path.name in REJECTED:
            with pytest.raises((NotDeliveryEvent, MalformedPayload)) as error:
                map_events(provider, body, received_at=0.0)
            assert REJECTED[path.name] in str(error.value), path.name
            lines.append(f"{path.name}: rejected: {error.value}")
            continue
        events = map_events(provider, body, received_at=0.0)
        assert events, path.name
        for event in events:
            check_event(path.name, event)
        lines.append(f"{path.name}: {', '.join(event.type for event in events)}")


def test_mapping_is_repeatable(corpus_dir: Path) -> None:
    for path in payloads(corpus_dir):
        if path.name in REJECTED:
            continue
        provider = provider_of(path.name)
        first = map_events(provider, path.read_bytes(), received_at=0.0)
        second = map_events(provider, path.read_bytes(), received_at=0.0)
        assert [e.provider_event_id for e in first] == [e.provider_event_id for e in second]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mailcoach-ses_bounceWebhookContent.json", ["message.hard_bounce"]),
        ("mailcoach-ses_subscriptionConfirmation.json", ["subscription.confirmation"]),
        ("mailcoach-postmark_softBounceWebhookContent.json", ["message.soft_bounce"]),
        ("mailcoach-mailgun_complaintWebhookContent.json", ["message.complaint"]),
        ("sisimai_json-sendgrid-14.json", ["message.policy_block"]),
        ("sisimai_json-amazonses-04.json", ["message.delivered"]),
    ],
)
def test_known_payload_types(corpus_dir: Path, name: str, expected: list[str]) -> None:
    path = corpus_dir / "provider-webhooks" / name
    events = map_events(provider_of(name), path.read_bytes(), received_at=0.0)
    assert [event.type for event in events] == expected


def test_postmark_suppression_changes_differ(corpus_dir: Path) -> None:
    folder = corpus_dir / "provider-webhooks"
    ids = {
        map_events("postmark", (folder / name).read_bytes(), received_at=0.0)[0].provider_event_id
        for name in (
            "mailcoach-postmark_bounceViaSubscriptionChangeWebhookContent.json",
            "mailcoach-postmark_complaintViaSubscriptionChangeWebhookContent.json",
        )
    }
    assert len(ids) == 2
