"""Suppression decisions over event histories."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from plaudit.journal import Journal
from plaudit.messaging.deliverability.store import lift_suppression, record_event, suppression_of
from plaudit.messaging.deliverability.suppression import (
    MessageEvent,
    SuppressionPolicy,
    decide,
    replay,
)
from plaudit.metrics import REGISTRY

POLICY = SuppressionPolicy(soft_bounce_limit=3, soft_bounce_window_seconds=7 * 86400)
DAY = 86400.0


def event(
    kind: str, at: float = 0.0, *, status: str | None = None, address: str = "a@example.net"
) -> MessageEvent:
    return msgspec.convert(
        {"address": address, "kind": kind, "at": at, "status": status, "provider": "smtp"},
        MessageEvent,
    )


@pytest.mark.parametrize(
    ("kind", "status", "suppress", "reason"),
    [
        ("hard_bounce", "5.1.1", True, "hard_bounce"),
        ("hard_bounce", "5.1.10", True, "hard_bounce"),
        ("complaint", None, True, "complaint"),
        ("unsubscribe", None, True, "unsubscribe"),
        ("hard_bounce", "5.0.0", False, None),
        ("soft_bounce", "5.2.2", False, None),
        ("policy_block", "5.7.1", False, None),
        ("deferred", "4.4.1", False, None),
        ("delivered", None, False, None),
    ],
)
def test_single_event_decision(kind: str, status: str | None, suppress: bool, reason: str | None):
    decision = decide([], event(kind, status=status), POLICY)

    assert decision.suppress is suppress
    assert decision.reason == reason


def test_policy_block_raises_alert_not_suppression() -> None:
    decision = decide([], event("policy_block", 5.0, status="5.7.1"), POLICY)

    assert decision.suppress is False
    assert decision.alert is not None
    assert decision.alert.status == "5.7.1"
    assert decision.alert.provider == "smtp"


def test_soft_bounces_suppress_at_limit_within_window() -> None:
    history = [event("soft_bounce", 0), event("soft_bounce", DAY)]

    decision = decide(history, event("soft_bounce", 2 * DAY), POLICY)

    assert decision.suppress is True
    assert decision.reason == "repeated_soft_bounce"
    assert decision.soft_failures == 3


def test_soft_bounces_outside_window_do_not_count() -> None:
    history = [event("soft_bounce", 0), event("soft_bounce", DAY)]

    decision = decide(history, event("soft_bounce", 10 * DAY), POLICY)

    assert decision.suppress is False
    assert decision.soft_failures == 1


def test_delivery_resets_soft_bounce_count() -> None:
    history = [event("soft_bounce", 0), event("soft_bounce", DAY), event("delivered", 1.5 * DAY)]

    decision = decide(history, event("soft_bounce", 2 * DAY), POLICY)

    assert decision.suppress is False
    assert decision.soft_failures == 1


def test_generic_hard_bounces_count_as_soft() -> None:
    history = [event("hard_bounce", 0, status="5.0.0"), event("soft_bounce", DAY)]

    decision = decide(history, event("hard_bounce", 2 * DAY, status="5.4.4"), POLICY)

    assert decision.suppress is True
    assert decision.reason == "repeated_soft_bounce"


def test_other_addresses_do_not_count() -> None:
    history = [event("soft_bounce", 0, address="b@example.net")] * 5

    decision = decide(history, event("soft_bounce", DAY), POLICY)

    assert decision.suppress is False


def test_address_case_is_ignored() -> None:
    history = [event("soft_bounce", 0, address="Guest@Example.NET")] * 2

    decision = decide(history, event("soft_bounce", DAY, address="guest@example.net"), POLICY)

    assert decision.suppress is True
    assert decision.address == "guest@example.net"


def test_replay_lists_first_suppression_and_alerts() -> None:
    events = [
        event("policy_block", 3, status="5.7.1", address="c@example.org"),
        event("hard_bounce", 2, status="5.1.1", address="b@example.org"),
        event("complaint", 5, address="b@example.org"),
        event("delivered", 1, address="a@example.org"),
    ]

    suppressed, alerts = replay(events, POLICY)

    assert set(suppressed) == {"b@example.org"}
    assert suppressed["b@example.org"].reason == "hard_bounce"
    assert [alert.address for alert in alerts] == ["c@example.org"]


@pytest.mark.parametrize("fields", [{"soft_bounce_limit": 0}, {"soft_bounce_window_seconds": 0}])
def test_invalid_policy_is_rejected(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="invalid"):
        SuppressionPolicy(**fields)  # type: ignore[arg-type]


class FakeClock:
    """A journal clock that moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 1_767_225_600.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    opened = Journal.open(tmp_path / "journal.sqlite3", clock=FakeClock())
    yield opened
    opened.close()


def test_store_suppresses_hard_bounce(journal: Journal) -> None:
    bounce = event("hard_bounce", 10.0, status="5.1.1", address="Gone@Example.NET")

    with journal.transaction() as tx:
        decision = record_event(tx, bounce, policy=POLICY, provider_event_id="ses-1")
    with journal.transaction() as tx:
        found = suppression_of(tx, "gone@example.net")

    assert decision is not None
    assert decision.suppress is True
    assert found is not None
    assert found.reason == "hard_bounce"
    assert found.status == "5.1.1"


def test_store_ignores_repeated_provider_event(journal: Journal) -> None:
    bounce = event("soft_bounce", 10.0, status="4.2.2")

    with journal.transaction() as tx:
        first = record_event(tx, bounce, policy=POLICY, provider_event_id="evt-7")
        second = record_event(tx, bounce, policy=POLICY, provider_event_id="evt-7")

    assert first is not None
    assert second is None
    assert journal.query("SELECT COUNT(*) FROM message_events")[0][0] == 1


def test_store_counts_soft_bounces_across_transactions(journal: Journal) -> None:
    for index in range(3):
        with journal.transaction() as tx:
            decision = record_event(
                tx, event("soft_bounce", index * DAY), policy=POLICY, provider_event_id=f"e{index}"
            )

    assert decision is not None
    assert decision.reason == "repeated_soft_bounce"
    with journal.transaction() as tx:
        assert suppression_of(tx, "a@example.net") is not None
        assert lift_suppression(tx, "a@example.net") is True
        assert suppression_of(tx, "a@example.net") is None
        assert lift_suppression(tx, "a@example.net") is False


def test_store_policy_block_leaves_address_sendable(journal: Journal) -> None:
    with journal.transaction() as tx:
        decision = record_event(tx, event("policy_block", 1.0, status="5.7.1"), policy=POLICY)
        found = suppression_of(tx, "a@example.net")

    assert decision is not None
    assert decision.alert is not None
    assert found is None


def test_store_rolls_back_with_transaction(journal: Journal) -> None:
    with pytest.raises(RuntimeError), journal.transaction() as tx:
        record_event(tx, event("complaint", 1.0), policy=POLICY)
        raise RuntimeError("abort")

    assert journal.query("SELECT COUNT(*) FROM suppressions")[0][0] == 0
    assert journal.query("SELECT COUNT(*) FROM message_events")[0][0] == 0


def test_store_counts_events_and_suppressions(journal: Journal) -> None:
    def sample(name: str, labels: dict[str, str]) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    events_before = sample(
        "plaudit_message_events_total", {"provider": "smtp", "kind": "complaint"}
    )
    suppressions_before = sample("plaudit_suppressions_total", {"reason": "complaint"})

    with journal.transaction() as tx:
        record_event(tx, event("complaint", 1.0), policy=POLICY)

    events_after = sample("plaudit_message_events_total", {"provider": "smtp", "kind": "complaint"})
    assert events_after == events_before + 1
    assert sample("plaudit_suppressions_total", {"reason": "complaint"}) == suppressions_before + 1
