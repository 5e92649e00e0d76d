"""Rolling deliverability rates and their thresholds."""

from __future__ import annotations

import pytest

from plaudit.messaging.deliverability.rates import (
    DAY_SECONDS,
    RateThresholds,
    compute_rates,
    rolling_rates,
)
from plaudit.messaging.deliverability.suppression import EventKind, MessageEvent

NOW = 1_750_000_000.0


def events(
    kind: EventKind,
    count: int,
    *,
    domain: str = "example.net",
    age: float = 60.0,
    provider: str = "smtp",
) -> list[MessageEvent]:
    return [
        MessageEvent(address=f"guest{index}@{domain}", kind=kind, at=NOW - age, provider=provider)
        for index in range(count)
    ]


def test_rates_are_grouped_by_provider_and_domain() -> None:
    history = events("delivered", 10) + events("delivered", 4, domain="example.org")
    history += events("hard_bounce", 1, domain="example.org", provider="ses")

    rates = compute_rates(history, now=NOW, window_seconds=DAY_SECONDS)

    assert [(rate.provider, rate.domain) for rate in rates] == [
        ("ses", "example.org"),
        ("smtp", "example.net"),
        ("smtp", "example.org"),
    ]
    assert rates[1].delivered == 10
    assert rates[1].delivery_rate == 1.0


@pytest.mark.parametrize(
    ("complaints", "level"),
    [(0, "ok"), (1, "alert"), (2, "alert"), (3, "critical"), (5, "critical")],
)
def test_complaint_thresholds(complaints: int, level: str) -> None:
    history = events("delivered", 1000) + events("complaint", complaints)

    (rate,) = compute_rates(history, now=NOW, window_seconds=DAY_SECONDS)

    assert rate.complaint_rate == complaints / 1000
    assert rate.level == level


@pytest.mark.parametrize(("hard", "level"), [(19, "ok"), (20, "alert"), (50, "alert")])
def test_hard_bounce_threshold(hard: int, level: str) -> None:
    history = events("delivered", 1000 - hard) + events("hard_bounce", hard)

    (rate,) = compute_rates(history, now=NOW, window_seconds=DAY_SECONDS)

    assert rate.hard_bounce_rate == hard / 1000
    assert rate.level == level


def test_small_volume_never_alerts() -> None:
    history = events("delivered", 10) + events("complaint", 5) + events("hard_bounce", 5)

    (rate,) = compute_rates(history, now=NOW, window_seconds=DAY_SECONDS)

    assert rate.level == "ok"
    assert rate.alerts == ()
    assert rate.complaints == 5


def test_window_excludes_older_events() -> None:
    history = events("delivered", 5) + events("hard_bounce", 5, age=2 * DAY_SECONDS)

    (rate,) = compute_rates(history, now=NOW, window_seconds=DAY_SECONDS)

    assert rate.hard_bounces == 0
    assert rate.attempts == 5


def test_rolling_windows_shortest_first() -> None:
    history = events("delivered", 5) + events("hard_bounce", 5, age=2 * DAY_SECONDS)

    rates = rolling_rates(history, now=NOW)

    assert [rate.window_seconds for rate in rates] == [
        DAY_SECONDS,
        7 * DAY_SECONDS,
        30 * DAY_SECONDS,
    ]
    assert [rate.hard_bounces for rate in rates] == [0, 5, 5]


def test_sent_counts_when_outcomes_are_missing() -> None:
    history = events("accepted", 200) + events("delivered", 100)

    (rate,) = compute_rates(history, now=NOW, window_seconds=DAY_SECONDS)

    assert rate.attempts == 200
    assert rate.delivery_rate == 0.5


def test_custom_thresholds() -> None:
    history = events("delivered", 10) + events("complaint", 1)
    thresholds = RateThresholds(complaint_alert=0.05, complaint_critical=0.2, min_attempts=1)

    (rate,) = compute_rates(history, now=NOW, window_seconds=DAY_SECONDS, thresholds=thresholds)

    assert rate.level == "alert"
    assert rate.alerts == ("complaint rate 10.00% at or above 5.00%",)


def linked(
    kind: EventKind,
    recipient: str,
    *,
    message_id: str = "<request-1@willow.example>",
    provider: str = "smtp",
    age: float = 60.0,
) -> MessageEvent:
    return MessageEvent(
        address=recipient, kind=kind, at=NOW - age, provider=provider, message_id=message_id
    )


def test_outcome_counts_under_sending_provider() -> None:
    history = [
        linked("accepted", "ana@example.net"),
        linked(
            "delivered",
            "ana@example.net",
            message_id="request-1@willow.example",
            provider="mailgun",
        ),
    ]

    (rate,) = compute_rates(history, now=NOW, window_seconds=DAY_SECONDS)

    assert (rate.provider, rate.attempts, rate.delivered) == ("smtp", 1, 1)
    assert rate.delivery_rate == 1.0
    assert rate.delivery_estimated is False


def test_repeated_acceptance_counts_once() -> None:
    history = [
        linked("accepted", "ana@example.net", age=120.0),
        linked("accepted", "ana@example.net", provider="mailgun"),
        linked("hard_bounce", "ana@example.net", provider="mailgun"),
    ]

    (rate,) = compute_rates(history, now=NOW, window_seconds=DAY_SECONDS)

    assert rate.provider == "smtp"
    assert rate.attempts == 1
    assert rate.hard_bounce_rate == 1.0


def test_each_recipient_of_a_message_counts() -> None:
    history = [linked("accepted", "ana@example.net"), linked("accepted", "ben@example.net")]
    history.append(linked("hard_bounce", "ben@example.net"))

    (rate,) = compute_rates(history, now=NOW, window_seconds=DAY_SECONDS)

    assert rate.attempts == 2
    assert rate.hard_bounce_rate == 0.5


def test_delivery_estimated_without_reports() -> None:
    history = [
        linked("accepted", f"guest{index}@example.net", message_id=f"<request-{index}@w.example>")
        for index in range(4)
    ]
    history.append(linked("hard_bounce", "guest0@example.net", message_id="<request-0@w.example>"))
    history.append(linked("complaint", "guest1@example.net", message_id="<request-1@w.example>"))

    (rate,) = compute_rates(history, now=NOW, window_seconds=DAY_SECONDS)

    assert rate.attempts == 4
    assert rate.delivered == 0
    assert rate.delivery_estimated is True
    assert rate.delivery_rate == 0.75
    assert rate.hard_bounce_rate == 0.25
    assert rate.complaint_rate == pytest.approx(1 / 3)


def test_rejection_at_submission_is_attempt() -> None:
    history = [
        linked("accepted", "ana@example.net"),
        linked("hard_bounce", "ben@example.net", message_id="<request-2@willow.example>"),
    ]

    (rate,) = compute_rates(history, now=NOW, window_seconds=DAY_SECONDS)

    assert rate.attempts == 2
    assert rate.hard_bounce_rate == 0.5


def test_provider_wide_group_keeps_recipients_apart() -> None:
    history = [linked("accepted", "ana@example.net"), linked("accepted", "ben@example.org")]

    (rate,) = compute_rates(history, now=NOW, window_seconds=DAY_SECONDS, by_domain=False)

    assert (rate.domain, rate.attempts) == ("", 2)
