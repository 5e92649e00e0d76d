"""Journal writes that record how a review-request step ended.

:class:`StepRecords` marks a request sent, bounced, unconfirmed, suppressed
or stopped, and schedules the campaign's next step, each inside the caller's
transaction.  The notifier actor in :mod:`plaudit.actors.notifier` builds one
with every config it applies.
"""

from __future__ import annotations

import logging
from typing import Final, final

import msgspec

from plaudit.actors.notifier_decision import Decision
from plaudit.config.model import CampaignConfig
from plaudit.journal import Tx
from plaudit.messaging import request_events
from plaudit.messaging.campaigns import schedule_step, stop_couple
from plaudit.messaging.couples import Couple
from plaudit.messaging.deliverability.store import record_event
from plaudit.messaging.deliverability.suppression import MessageEvent, SuppressionPolicy
from plaudit.messaging.email import SendError, SendReceipt
from plaudit.messaging.receipts import record_receipt
from plaudit.messaging.submission import record_bounce, record_refusals, record_unconfirmed
from plaudit.metrics import REVIEW_REQUESTS
from plaudit.personalisation.service import Personaliser, Plan

# Logs under the name of the actor's module, so log lines keep their logger name.
log = logging.getLogger("plaudit.actors.notifier")

PROVIDER: Final = "smtp"


@final
class Prepared(msgspec.Struct, frozen=True, kw_only=True):
    """A request step as the decision transaction left it, for the send and its record."""

    request_id: int
    couple_id: int
    channel: str = "email"
    campaign: str
    step: int
    decision: Decision
    couple: Couple | None = None
    message_id: str = ""
    token: str = ""
    # Variant, send time and opening line; None when the step left the config.
    plan: Plan | None = None


@final
class StepRecords:
    """Records step outcomes with one config's campaigns, suppression policy and personaliser."""

    def __init__(
        self,
        campaigns: dict[str, CampaignConfig],
        policy: SuppressionPolicy,
        personaliser: Personaliser,
    ) -> None:
        self.campaigns = campaigns
        self.policy = policy
        self.personaliser = personaliser

    def __repr__(self) -> str:
        return f"<StepRecords campaigns={len(self.campaigns)}>"

    def end_request(self, tx: Tx, prepared: Prepared, *, channel: str) -> None:
        """Mark a request suppressed or stopped, following its decision, and log it."""
        decision = prepared.decision
        request_id = prepared.request_id
        set_state(
            tx,
            request_id,
            "suppressed" if decision.action == "suppress" else "stopped",
            error=decision.reason,
        )
        if decision.couple_wide:
            stop_couple(tx, prepared.couple_id, reason=decision.reason)
        else:
            self.schedule_following(tx, prepared.campaign, prepared.step, prepared.couple_id)
        REVIEW_REQUESTS.labels(channel=channel, outcome=decision.action + "ed").inc()
        log.info(
            "notifier.request_ended",
            extra={"request": request_id, "action": decision.action, "reason": decision.reason},
        )

    def mark_sent(self, tx: Tx, prepared: Prepared, receipt: SendReceipt | None = None) -> None:
        """Record an e-mail step the server accepted, with its receipt when there is one."""
        tx.execute(
            "UPDATE requests SET state = 'sent', sent_at = ?, last_error = NULL,"
            " submitting_at = NULL, updated_at = ? WHERE id = ?",
            (tx.now, tx.now, prepared.request_id),
        )
        accepted = prepared.decision.recipients
        if receipt is not None and receipt.accepted:
            accepted = receipt.accepted
            record_refusals(tx, receipt.refused, message_id=prepared.message_id, policy=self.policy)
        for address in accepted:
            event = MessageEvent(
                address=address,
                kind="accepted",
                at=tx.now,
                provider=PROVIDER,
                message_id=prepared.message_id,
            )
            record_event(tx, event, policy=self.policy)
        request_events.emit_sent(
            tx,
            prepared.request_id,
            recipients=accepted,
            provider=PROVIDER,
            message_id=prepared.message_id,
        )
        record_receipt(tx, prepared.message_id, receipt)
        REVIEW_REQUESTS.labels(channel="email", outcome="sent").inc()
        self.step_sent(tx, prepared)

    def step_sent(self, tx: Tx, prepared: Prepared) -> None:
        """Record a sent step on any channel and schedule the campaign's next one."""
        log.info("notifier.sent", extra={"request": prepared.request_id})
        self.personaliser.record_sent(tx, prepared.request_id)
        self.schedule_following(tx, prepared.campaign, prepared.step, prepared.couple_id)

    def schedule_following(self, tx: Tx, name: str, step: int, couple_id: int) -> None:
        """Schedule the step after ``step`` of campaign ``name``, if the campaign has one."""
        campaign = self.campaigns.get(name)
        following = step + 1
        if campaign is not None and following < len(campaign.steps):
            run_at = tx.now + campaign.steps[following].delay_days * 86400.0
            schedule_step(tx, couple_id=couple_id, campaign=campaign, step=following, run_at=run_at)

    def mark_bounced(self, tx: Tx, prepared: Prepared, error: SendError) -> None:
        """Record an e-mail step the server refused with a 5xx reply."""
        campaign = self.campaigns.get(prepared.campaign)
        outcome = record_bounce(
            tx,
            error,
            request_id=prepared.request_id,
            couple_id=prepared.couple_id,
            recipients=prepared.decision.recipients,
            message_id=prepared.message_id,
            policy=self.policy,
            stop_on=campaign.stop_on if campaign is not None else (),
        )
        if outcome.continues:
            self.schedule_following(tx, prepared.campaign, prepared.step, prepared.couple_id)
        REVIEW_REQUESTS.labels(channel="email", outcome="bounced").inc()
        log.warning(
            "notifier.bounced",
            extra={
                "request": prepared.request_id,
                "code": error.code,
                "status": error.status,
                "state": outcome.state,
                "stopped": outcome.stop,
            },
        )

    def mark_unconfirmed(self, tx: Tx, prepared: Prepared, reason: str) -> None:
        """Record an e-mail step whose outcome after DATA is unknown as sent and unconfirmed."""
        record_unconfirmed(tx, prepared.request_id, reason=reason)
        REVIEW_REQUESTS.labels(channel="email", outcome="unconfirmed").inc()
        self.step_sent(tx, prepared)


def set_state(tx: Tx, request_id: int, state: str, *, error: str | None = None) -> None:
    """Set a request's state and last error."""
    tx.execute(
        "UPDATE requests SET state = ?, last_error = ?, updated_at = ? WHERE id = ?",
        (state, error, tx.now, request_id),
    )
