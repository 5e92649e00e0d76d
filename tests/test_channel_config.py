"""check-config for [sms] and [push], Twilio keyword mapping, and push subscription commands."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest

from plaudit.config import load_config
from plaudit.daemon.control_wire import InvalidArgument
from plaudit.errors import ConfigError
from plaudit.inbound.mapping import NotDeliveryEvent
from plaudit.inbound.sms_push_events import map_twilio
from plaudit.journal import Journal
from plaudit.messaging.deliverability.store import record_event, suppression_of
from plaudit.messaging.deliverability.suppression import MessageEvent, SuppressionPolicy
from plaudit.messaging.push_ctl import couple_by_email, parse_subscription
from plaudit.messaging.sms_events import apply_keyword
from plaudit.sandbox.webpush import write_vapid_key

PHONE = "+13125550142"
SID = "AC" + "0" * 31 + "1"


def problems_of(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "plaudit.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value.problems


def valid_tables(folder: Path) -> str:
    token = folder / "token"
    token.write_text("secret")
    token.chmod(0o600)
    write_vapid_key(folder / "vapid.pem")
    return f"""
[sms]
account_sid = "{SID}"
auth_token_file = "{token}"
from_number = "+13125550100"
base_url = "http://127.0.0.1:9"
status_callback_url = "https://hooks.example.com/inbound/twilio"
help_text = "Willow Studio: hello@willow.example"

[push]
vapid_private_key_file = "{folder / "vapid.pem"}"
subject = "mailto:hello@willow.example"

[inbound.twilio]
auth_token_file = "{token}"
public_url = "https://hooks.example.com"
"""


def test_valid_tables_load(tmp_path: Path) -> None:
    path = tmp_path / "plaudit.toml"
    path.write_text(valid_tables(tmp_path), encoding="utf-8")

    config = load_config(path)

    assert config.sms is not None
    assert config.sms.from_number == "+13125550100"
    assert config.push is not None
    assert config.push.ttl == 4 * 86400


def test_invalid_sms_table_listed(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        """
[sms]
account_sid = "AC123"
auth_token_file = "relative/token"
from_number = "3125550100"
base_url = "ftp://127.0.0.1"
status_callback_url = "https://hooks.example.com/twilio"
""",
    )
    text = "\n".join(problems)

    assert "sms.account_sid" in text
    assert "sms.from_number" in text
    assert "sms.base_url" in text
    assert "sms.auth_token_file" in text
    assert "sms.help_text" in text
    assert "[inbound.twilio]" in text


def test_callback_must_match_listener(tmp_path: Path) -> None:
    text = valid_tables(tmp_path).replace(
        "https://hooks.example.com/inbound/twilio", "https://other.example.com/inbound/twilio"
    )

    problems = problems_of(tmp_path, text)

    assert any("https://hooks.example.com/inbound/twilio" in problem for problem in problems)


def test_invalid_push_table_listed(tmp_path: Path) -> None:
    bad_key = tmp_path / "bad.pem"
    bad_key.write_text("not a key")
    problems = problems_of(
        tmp_path,
        f"""
[push]
vapid_private_key_file = "{bad_key}"
subject = "hello@willow.example"
""",
    )
    text = "\n".join(problems)

    assert "push.subject" in text
    assert "not a PEM" in text


def test_sms_step_needs_sms_table(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        """
[[campaigns]]
name = "texts"

[[campaigns.steps]]
channel = "sms"
delay_days = 10
subject = "Thanks"
text = "Thank you"

[[campaigns.steps]]
channel = "push"
delay_days = 1
subject = "Thanks"
text = "Thank you"
""",
    )
    text = "\n".join(problems)

    assert "campaigns[0].steps[0].channel" in text
    assert "[sms]" in text
    assert "campaigns[0].steps[1].channel" in text
    assert "[push]" in text


def twilio_body(**fields: str) -> bytes:
    base = {"MessageSid": "SM" + "1" * 32, "SmsStatus": "received", "From": PHONE}
    base.update(fields)
    return urllib.parse.urlencode(base).encode()


@pytest.mark.parametrize(
    ("body", "event_type", "kind"),
    [
        ("STOP", "message.unsubscribe", "unsubscribe"),
        ("revoke", "message.unsubscribe", "unsubscribe"),
        ("OPT OUT", "message.unsubscribe", "unsubscribe"),
        ("Help", "sms.help", None),
        ("unstop", "sms.opt_in", None),
    ],
)
def test_inbound_keyword_mapped(body: str, event_type: str, kind: str | None) -> None:
    (event,) = map_twilio(twilio_body(Body=body), received_at=100.0)

    assert event.type == event_type
    assert event.kind == kind
    assert event.recipient == PHONE


def test_advanced_opt_out_type_mapped() -> None:
    (event,) = map_twilio(twilio_body(Body="stop it please", OptOutType="STOP"), received_at=1.0)

    assert event.kind == "unsubscribe"


def test_ordinary_reply_not_an_event() -> None:
    with pytest.raises(NotDeliveryEvent, match="not a keyword"):
        map_twilio(twilio_body(Body="We loved the photos!"), received_at=1.0)


def test_start_keeps_bounce_suppression(tmp_path: Path) -> None:
    (start,) = map_twilio(twilio_body(Body="START"), received_at=1.0)
    journal = Journal.open(tmp_path / "journal.sqlite3", lease_seconds=60)
    try:
        with journal.transaction() as tx:
            event = MessageEvent(address=PHONE, kind="hard_bounce", at=1.0, status="5.1.1")
            record_event(tx, event, policy=SuppressionPolicy())
            changed = apply_keyword(tx, start)
            kept = suppression_of(tx, PHONE)
    finally:
        journal.close()

    assert changed is False
    assert kept is not None
    assert kept.reason == "hard_bounce"


def test_subscription_json_parsed() -> None:
    subscription = parse_subscription(
        {"endpoint": "https://push.invalid/1", "keys": {"p256dh": "key", "auth": "secret"}}
    )

    assert subscription.endpoint == "https://push.invalid/1"
    assert subscription.p256dh == "key"
    assert subscription.auth == "secret"


@pytest.mark.parametrize(
    "data",
    [
        None,
        {"endpoint": "https://push.invalid/1"},
        {"endpoint": "https://push.invalid/1", "keys": {"p256dh": "key"}},
        {"endpoint": 5, "keys": {"p256dh": "key", "auth": "secret"}},
    ],
)
def test_subscription_json_rejected(data: object) -> None:
    with pytest.raises(InvalidArgument):
        parse_subscription(data)


def test_couple_found_by_any_address(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "journal.sqlite3", lease_seconds=60)
    try:
        with journal.transaction() as tx:
            tx.execute(
                "INSERT INTO couples (email, names, emails, wedding_date, venue, vendor,"
                " consent_email, consent_sms, created_at, updated_at) VALUES"
                " ('ana@example.com', '[]', '[\"ana@example.com\", \"Ben@Example.com\"]',"
                " '2026-05-02', '', 'v', 1, 0, 0, 0)"
            )
            first = couple_by_email(tx, "ANA@example.com")
            second = couple_by_email(tx, "ben@example.com")
            with pytest.raises(InvalidArgument, match="import the couple"):
                couple_by_email(tx, "cleo@example.com")
    finally:
        journal.close()

    assert first == 1
    assert second == 1


def test_sms_text_needs_opt_out_line(tmp_path: Path) -> None:
    tables = valid_tables(tmp_path)
    step = """
[[campaigns]]
name = "texts"

[[campaigns.steps]]
channel = "sms"
delay_days = 10
subject = "Thanks"
text = "{text}"
"""

    problems = problems_of(tmp_path, tables + step.format(text="Thank you"))
    passing = tmp_path / "passing.toml"
    passing.write_text(tables + step.format(text="Thank you. Reply STOP to opt out."))

    assert any("campaigns[0].steps[0].text" in problem for problem in problems)
    assert load_config(passing).campaigns[0].steps[0].channel == "sms"
