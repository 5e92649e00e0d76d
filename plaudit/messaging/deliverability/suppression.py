"""Suppression policy: which addresses stop receiving review requests, decided from events.

Pure functions over an address's event history, so the notifier's shell can
call them inside the journal transaction that records the new event.

- A hard bounce with an address-level code (5.1.x) or a complaint suppresses
  the address at once; an unsubscribe does too.
- Soft bounces, and hard bounces whose code is not 5.1.x (5.0.0, 5.4.4 ...),
  suppress only after ``soft_bounce_limit`` of them within
  ``soft_bounce_window_seconds`` with no delivery in between.
- A policy block (5.7.x) means the receiver rejects the sender, not the
  address: it raises a sender-reputation alert and never suppresses.
- Delay warnings (``deferred``) change nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal, final

import msgspec

EventKind = Literal[
    "accepted",
    "delivered",
    "deferred",
    "hard_bounce",
    "soft_bounce",
    "policy_block",
    "complaint",
    "unsubscribe",
    "opened",
    "clicked",
]
SuppressionReason = Literal["hard_bounce", "complaint", "unsubscribe", "repeated_soft_bounce"]


@final
class MessageEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One deliverability event for one recipient address."""

    address: str
    kind: EventKind
    # Unix time in seconds.
    at: float
    status: str | None = None
    provider: str | None = None
    message_id: str | None = None
    # The clicked link of a click event, as the provider reported it.
    url: str | None = None


@final
class SuppressionPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How many failures without a hard cause suppress an address, and over what window."""

    soft_bounce_limit: int = 3
    soft_bounce_window_seconds: float = 14 * 86400.0

    def __post_init__(self) -> None:
        if self.soft_bounce_limit < 1:
            raise ValueError(
                f"soft_bounce_limit {self.soft_bounce_limit} is invalid: use 1 or more"
            )
        if self.soft_bounce_window_seconds <= 0:
            raise ValueError(
                f"soft_bounce_window_seconds {self.soft_bounce_window_seconds} is invalid: "
                "use a positive number of seconds"
            )


@final
class ReputationAlert(msgspec.Struct, frozen=True, kw_only=True):
    """A receiver rejected the sender by policy; operators should look at reputation."""

    address: str
    status: str | None
    provider: str | None
    at: float


@final
class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of one new event for its address."""

    address: str
    suppress: bool
    reason: SuppressionReason | None = None
    alert: ReputationAlert | None = None
    # Failures without a hard cause counted in the window, the new event included.
    soft_failures: int = 0


def normalize_address(address: str) -> str:
    """Return the address as suppression keys store it: trimmed and lower-cased."""
    return address.strip().lower()


def is_address_level(status: str | None) -> bool:
    """Return True for RFC 3463 codes about the address itself (5.1.x)."""
    return status is not None and status.startswith("5.1.")


def rejection_kind(status: str | None) -> EventKind:
    """Classify a 5xx rejection at submission: 5.7.x rejects the sender, others the address."""
    if status is not None and status.startswith("5.7."):
        return "policy_block"
    return "hard_bounce"


def decide(
    history: Sequence[MessageEvent], event: MessageEvent, policy: SuppressionPolicy
) -> Decision:
    """Decide whether ``event`` suppresses its address, given the address's earlier events."""
    address = normalize_address(event.address)
    if event.kind == "complaint":
        return Decision(address=address, suppress=True, reason="complaint")
    if event.kind == "unsubscribe":
        return Decision(address=address, suppress=True, reason="unsubscribe")
    if event.kind == "hard_bounce" and is_address_level(event.status):
        return Decision(address=address, suppress=True, reason="hard_bounce")
    if event.kind == "policy_block":
        alert = ReputationAlert(
            address=address, status=event.status, provider=event.provider, at=event.at
        )
        return Decision(address=address, suppress=False, alert=alert)
    if event.kind not in {"soft_bounce", "hard_bounce"}:
        return Decision(address=address, suppress=False)

    failures = 1 + _recent_soft_failures(history, address, event.at, policy)
    if failures >= policy.soft_bounce_limit:
        return Decision(
            address=address, suppress=True, reason="repeated_soft_bounce", soft_failures=failures
        )
    return Decision(address=address, suppress=False, soft_failures=failures)


def _recent_soft_failures(
    history: Sequence[MessageEvent], address: str, now: float, policy: SuppressionPolicy
) -> int:
    count = 0
    start = now - policy.soft_bounce_window_seconds
    for earlier in sorted(history, key=lambda item: item.at):
        if normalize_address(earlier.address) != address or not start <= earlier.at <= now:
            continue
        if earlier.kind == "delivered":
            # A delivery proves the mailbox works; earlier failures no longer count.
            count = 0
        elif earlier.kind in {"soft_bounce", "hard_bounce"}:
            count += 1
    return count


def replay(
    events: Iterable[MessageEvent], policy: SuppressionPolicy
) -> tuple[dict[str, Decision], list[ReputationAlert]]:
    """Replay events in time order; return the suppressing decision per address and all alerts."""
    suppressed: dict[str, Decision] = {}
    alerts: list[ReputationAlert] = []
    histories: dict[str, list[MessageEvent]] = {}
    for event in sorted(events, key=lambda item: item.at):
        history = histories.setdefault(normalize_address(event.address), [])
        decision = decide(history, event, policy)
        history.append(event)
        if decision.alert is not None:
            alerts.append(decision.alert)
        if decision.suppress and decision.address not in suppressed:
            suppressed[decision.address] = decision
    return suppressed, alerts
