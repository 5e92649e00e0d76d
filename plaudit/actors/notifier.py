"""The notifier actor: sends each scheduled review request, and repeats only a send
that may not have happened, with the same Message-ID.

Each ``request.send`` job runs in three steps:

1. In one transaction, :func:`decide` looks at the request, the couple and
   the suppression list.  For a send, the request's Message-ID is fixed and
   committed before any SMTP traffic, so a crash after the server accepted
   the message resends the same Message-ID, which receivers deduplicate.
2. The template is rendered; an error marks the request failed and nothing
   is sent.
3. The message goes out; the result commits with the job: sent (and the next
   step scheduled), or bounced for a 5xx reply.  A 4xx reply or a lost
   connection is retried by the journal with backoff.
"""

from __future__ import annotations

import logging
import secrets
from datetime import date
from typing import Any, Final, Literal, final

import msgspec

from plaudit.actors.base import Actor, Effects
from plaudit.config.model import CampaignConfig, Config, VendorConfig
from plaudit.errors import PlatformError
from plaudit.journal import AsyncJournal, Job, Tx
from plaudit.messaging.campaigns import SEND_JOB, schedule_new_couples, schedule_step, stop_couple
from plaudit.messaging.couples import Couple, load_couple
from plaudit.messaging.deliverability.store import record_event, suppression_of
from plaudit.messaging.deliverability.suppression import MessageEvent, SuppressionPolicy
from plaudit.messaging.email import (
    SendError,
    SmtpSender,
    build_message,
    message_id_for,
    sender_domain,
)
from plaudit.messaging.templates import MessageTemplate, TemplateError
from plaudit.metrics import REVIEW_REQUESTS

log = logging.getLogger(__name__)

# A failed request (a template error) is not done: once the template is
# fixed, `plaudit ctl retry JOB` sends it.
DONE_STATES: Final = frozenset({"sent", "bounced", "suppressed", "stopped"})
PROVIDER: Final = "smtp"


@final
class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The facts the decision step reads about one request."""

    state: str
    channel: str
    addresses: list[str]
    # Suppressed address -> suppression reason.
    suppressed: dict[str, str]
    consent_email: bool
    review_detected: bool


@final
class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """The decision for one request: send to ``recipients``, or end it with ``reason``."""

    action: Literal["send", "skip", "suppress", "stop"]
    recipients: list[str] = msgspec.field(default_factory=list)
    reason: str = ""


def decide(snapshot: Snapshot) -> Decision:
    """Decide one request step; pure, so every stop condition is testable alone."""
    if snapshot.state in DONE_STATES:
        return Decision(action="skip", reason=f"already {snapshot.state}")
    if snapshot.channel != "email":
        # TODO: SMS (Twilio) and web push; until then their steps are stopped.
        return Decision(action="stop", reason=f"channel {snapshot.channel} is not available")
    if snapshot.review_detected:
        return Decision(action="stop", reason="review")
    if not snapshot.consent_email:
        return Decision(action="suppress", reason="no e-mail consent")

    recipients = [address for address in snapshot.addresses if address not in snapshot.suppressed]
    if not recipients:
        reasons = sorted(set(snapshot.suppressed.values()))
        return Decision(action="suppress", reason=",".join(reasons))
    return Decision(action="send", recipients=recipients)


def review_detected(tx: Tx, couple_id: int) -> bool:
    """Return True when a stored review is a confirmed match for the couple.

    TODO: ask the reviewer-to-couple matching once it exists; until then no
    review stops a campaign.
    """
    return False


@final
class _Prepared(msgspec.Struct, frozen=True, kw_only=True):
    request_id: int
    couple_id: int
    campaign: str
    step: int
    decision: Decision
    couple: Couple | None = None
    message_id: str = ""
    token: str = ""


@final
class NotifierActor(Actor):
    """Sends review-request e-mail for the campaigns in the configuration."""

    kinds = (SEND_JOB,)

    # NOTE: templates and campaigns are read once here, so a reload that
    # changes them takes effect only after a restart.
    def __init__(
        self,
        journal: AsyncJournal,
        config: Config,
        sender: SmtpSender,
        *,
        lease_seconds: float,
        poll_interval: float = 1.0,
    ) -> None:
        super().__init__(
            "notifier", journal, lease_seconds=lease_seconds, poll_interval=poll_interval
        )
        if config.vendor is None:
            raise ValueError("the notifier needs a [vendor] table; add one to the config")
        self.config = config
        self.vendor: VendorConfig = config.vendor
        self.sender = sender
        self.campaigns = {campaign.name: campaign for campaign in config.campaigns}
        self.templates = {
            (campaign.name, number): MessageTemplate(
                f"{campaign.name} step {number + 1}",
                subject=step.subject,
                text=step.text,
                html=step.html,
            )
            for campaign in config.campaigns
            for number, step in enumerate(campaign.steps)
        }
        self.policy = SuppressionPolicy(
            soft_bounce_limit=config.deliverability.soft_bounce_limit,
            soft_bounce_window_seconds=config.deliverability.soft_bounce_window,
        )

    async def on_start(self) -> None:
        """Schedule first steps for couples imported while campaigns were missing."""
        await self.journal.transaction(lambda tx: schedule_new_couples(tx, self.config))

    async def handle(self, job: Job) -> Effects | None:
        request_id = job.payload.get("request")
        if not isinstance(request_id, int):
            raise PlatformError(f"job {job.id} has no request id; it cannot run", retryable=False)

        prepared = await self.journal.transaction(lambda tx: self._prepare(tx, request_id))
        if prepared is None or prepared.decision.action != "send" or prepared.couple is None:
            return None

        try:
            rendered = self._template(prepared).render(self._variables(prepared))
        except TemplateError as error:
            problem = str(error)
            await self.journal.transaction(
                lambda tx: _set_state(tx, request_id, "failed", error=problem)
            )
            # Logged here because the journal records only the PlatformError text.
            log.error("notifier.template_failed", extra={"request": request_id, "error": problem})  # noqa: TRY400
            raise PlatformError(problem, retryable=False) from error

        message = build_message(
            rendered,
            vendor=self.vendor,
            to=prepared.decision.recipients,
            message_id=prepared.message_id,
            unsubscribe_token=prepared.token,
        )
        try:
            await self.sender.send(message)
        except SendError as error:
            if not error.permanent:
                REVIEW_REQUESTS.labels(channel="email", outcome="retried").inc()
                log.warning(
                    "notifier.send_retry", extra={"request": request_id, "error": str(error)}
                )
                raise PlatformError(str(error), retryable=True) from error
            bounce = error
            return lambda tx: self._record_bounce(tx, prepared, bounce)
        return lambda tx: self._record_sent(tx, prepared)

    def _prepare(self, tx: Tx, request_id: int) -> _Prepared | None:
        row = tx.execute(
            "SELECT couple_id, campaign, step, channel, state, message_id, unsubscribe_token"
            " FROM requests WHERE id = ?",
            (request_id,),
        ).fetchone()
        if row is None:
            return None
        couple_id, campaign, step, channel, state, message_id, token = row
        couple = load_couple(tx, couple_id)
        if couple is None:
            return None

        snapshot = Snapshot(
            state=state,
            channel=channel,
            addresses=couple.emails,
            suppressed=_suppressed(tx, couple.emails),
            consent_email=couple.consent_email,
            review_detected=self._stops_on_review(campaign) and review_detected(tx, couple_id),
        )
        decision = decide(snapshot)
        if decision.action in ("suppress", "stop"):
            _set_state(
                tx,
                request_id,
                "suppressed" if decision.action == "suppress" else "stopped",
                error=decision.reason,
            )
            stop_couple(tx, couple_id, reason=decision.reason)
            REVIEW_REQUESTS.labels(channel=channel, outcome=decision.action + "ed").inc()
            log.info(
                "notifier.request_ended",
                extra={"request": request_id, "action": decision.action, "reason": decision.reason},
            )
        if decision.action != "send":
            return _Prepared(
                request_id=request_id,
                couple_id=couple_id,
                campaign=campaign,
                step=step,
                decision=decision,
            )

        # Fixed once and committed before sending: every attempt repeats it.
        message_id = message_id or message_id_for(request_id, domain=sender_domain(self.vendor))
        token = token or secrets.token_urlsafe(24)
        tx.execute(
            "UPDATE requests SET state = 'sending', message_id = ?, unsubscribe_token = ?,"
            " provider = ?, updated_at = ? WHERE id = ?",
            (message_id, token, PROVIDER, tx.now, request_id),
        )
        return _Prepared(
            request_id=request_id,
            couple_id=couple_id,
            campaign=campaign,
            step=step,
            decision=decision,
            couple=couple,
            message_id=message_id,
            token=token,
        )

    def _stops_on_review(self, name: str) -> bool:
        campaign = self.campaigns.get(name)
        return campaign is None or "review" in campaign.stop_on

    def _campaign(self, prepared: _Prepared) -> CampaignConfig:
        campaign = self.campaigns.get(prepared.campaign)
        if campaign is None or prepared.step >= len(campaign.steps):
            raise TemplateError(
                f"campaign {prepared.campaign!r} step {prepared.step + 1} is no longer in the "
                "config; restore it or retry the job after a reload"
            )
        return campaign

    def _template(self, prepared: _Prepared) -> MessageTemplate:
        self._campaign(prepared)
        return self.templates[(prepared.campaign, prepared.step)]

    def _variables(self, prepared: _Prepared) -> dict[str, Any]:
        couple = prepared.couple
        if couple is None:
            raise TemplateError("no couple to render for; this is a bug in the notifier")
        step = self._campaign(prepared).steps[prepared.step]
        platforms = step.platforms or list(self.vendor.review_links)
        # The same links for every couple, whatever their expected sentiment.
        links = [
            {"platform": platform, "url": self.vendor.review_links[platform]}
            for platform in platforms
            if platform in self.vendor.review_links and platform.lower() != "yelp"
        ]
        day = date.fromisoformat(couple.wedding_date)
        unsubscribe = (
            f"{self.vendor.unsubscribe_url.rstrip('/')}/{prepared.token}"
            if self.vendor.unsubscribe_url
            else f"mailto:{self.vendor.unsubscribe_mailto}?subject=unsubscribe-{prepared.token}"
        )
        return {
            "couple_names": " & ".join(couple.names),
            "first_names": [name.split()[0] for name in couple.names if name.split()],
            "wedding_date": f"{day:%B} {day.day}, {day.year}",
            "venue": couple.venue,
            "vendor": self.vendor.name,
            "vendor_address": self.vendor.postal_address,
            "review_links": links,
            "unsubscribe_link": unsubscribe,
        }

    def _record_sent(self, tx: Tx, prepared: _Prepared) -> None:
        tx.execute(
            "UPDATE requests SET state = 'sent', sent_at = ?, last_error = NULL, updated_at = ?"
            " WHERE id = ?",
            (tx.now, tx.now, prepared.request_id),
        )
        for address in prepared.decision.recipients:
            event = MessageEvent(
                address=address,
                kind="sent",
                at=tx.now,
                provider=PROVIDER,
                message_id=prepared.message_id,
            )
            record_event(tx, event, policy=self.policy)
        REVIEW_REQUESTS.labels(channel="email", outcome="sent").inc()
        log.info("notifier.sent", extra={"request": prepared.request_id})

        campaign = self.campaigns[prepared.campaign]
        following = prepared.step + 1
        if following < len(campaign.steps):
            run_at = tx.now + campaign.steps[following].delay_days * 86400.0
            schedule_step(
                tx, couple_id=prepared.couple_id, campaign=campaign, step=following, run_at=run_at
            )

    def _record_bounce(self, tx: Tx, prepared: _Prepared, error: SendError) -> None:
        _set_state(tx, prepared.request_id, "bounced", error=str(error))
        for address in prepared.decision.recipients:
            event = MessageEvent(
                address=address,
                kind="hard_bounce",
                at=tx.now,
                status=error.status,
                provider=PROVIDER,
                message_id=prepared.message_id,
            )
            decision = record_event(tx, event, policy=self.policy)
            if decision is not None and decision.suppress:
                stop_couple(tx, prepared.couple_id, reason="hard_bounce")
        REVIEW_REQUESTS.labels(channel="email", outcome="bounced").inc()
        log.warning(
            "notifier.bounced",
            extra={"request": prepared.request_id, "code": error.code, "status": error.status},
        )


def _suppressed(tx: Tx, addresses: list[str]) -> dict[str, str]:
    found = {}
    for address in addresses:
        suppression = suppression_of(tx, address)
        if suppression is not None:
            found[address] = suppression.reason
    return found


def _set_state(tx: Tx, request_id: int, state: str, *, error: str | None = None) -> None:
    tx.execute(
        "UPDATE requests SET state = ?, last_error = ?, updated_at = ? WHERE id = ?",
        (state, error, tx.now, request_id),
    )


def build_notifier(config: Config, journal: AsyncJournal) -> NotifierActor | None:
    """Return the notifier for ``config``, or None when no campaign sends e-mail."""
    if config.vendor is None or config.smtp is None or not config.campaigns:
        return None
    return NotifierActor(
        journal, config, SmtpSender(config.smtp), lease_seconds=config.journal.lease_seconds
    )
