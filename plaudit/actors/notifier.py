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
from typing import Any, Final, Literal, final

import msgspec

from plaudit.actors.base import Actor, Effects
from plaudit.alerts import ALERT_JOB
from plaudit.config.model import CampaignConfig, Config, VendorConfig
from plaudit.errors import PlatformError
from plaudit.journal import AsyncJournal, Job, Tx
from plaudit.matching.store import review_detected as matched_review
from plaudit.messaging.campaigns import SEND_JOB, schedule_new_couples, schedule_step, stop_couple
from plaudit.messaging.channels import (
    SMS_REPLY_JOB,
    Channels,
    StepMessage,
    build_channels,
    channel_recipients,
    defer_request,
    missing_address,
    missing_consent,
    send_time,
)
from plaudit.messaging.couples import Couple, load_couple
from plaudit.messaging.deliverability.store import record_event, suppression_of
from plaudit.messaging.deliverability.suppression import (
    MessageEvent,
    SuppressionPolicy,
    rejection_kind,
)
from plaudit.messaging.email import (
    SendError,
    SmtpSender,
    build_message,
    message_id_for,
    sender_domain,
)
from plaudit.messaging.operator_alerts import AlertMailer
from plaudit.messaging.preview import request_variables
from plaudit.messaging.templates import MessageTemplate, TemplateError
from plaudit.messaging.unsubscribe import UnsubscribeTokens
from plaudit.metrics import REVIEW_REQUESTS
from plaudit.personalisation.service import Plan, build_personaliser

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
    # Channels that can send: e-mail, plus SMS and push when configured.
    channels: frozenset[str] = frozenset({"email"})
    consent_sms: bool = False
    # Unix time of the decision and the recipient's IANA zone, for SMS quiet hours.
    now: float = 0.0
    timezone: str = "UTC"


@final
class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """The decision for one request: send to ``recipients``, or end it with ``reason``."""

    action: Literal["send", "skip", "suppress", "stop", "defer"]
    recipients: list[str] = msgspec.field(default_factory=list)
    reason: str = ""
    # For "defer": the Unix time the step may go out.
    run_at: float = 0.0
    # Whether a suppress or stop also cancels the couple's other scheduled steps.
    # False when only this step's channel is out (no SMS consent, a number that
    # texted STOP, no push subscription): the campaign's next step still follows.
    couple_wide: bool = True


def decide(snapshot: Snapshot) -> Decision:
    """Decide one request step; pure, so every stop condition is testable alone."""
    if snapshot.state in DONE_STATES:
        return Decision(action="skip", reason=f"already {snapshot.state}")
    couple_wide = snapshot.channel == "email"
    if snapshot.review_detected:
        return Decision(action="stop", reason="review")
    if snapshot.channel not in snapshot.channels:
        return Decision(
            action="stop",
            reason=f"channel {snapshot.channel} is not available",
            couple_wide=couple_wide,
        )
    no_consent = missing_consent(
        snapshot.channel, consent_email=snapshot.consent_email, consent_sms=snapshot.consent_sms
    )
    if no_consent is not None:
        return Decision(action="suppress", reason=no_consent, couple_wide=couple_wide)
    if not snapshot.addresses:
        return Decision(
            action="suppress", reason=missing_address(snapshot.channel), couple_wide=couple_wide
        )

    recipients = [address for address in snapshot.addresses if address not in snapshot.suppressed]
    if not recipients:
        reasons = sorted(set(snapshot.suppressed.values()))
        return Decision(action="suppress", reason=",".join(reasons), couple_wide=couple_wide)
    run_at = send_time(snapshot.channel, now=snapshot.now, timezone=snapshot.timezone)
    if run_at > snapshot.now:
        return Decision(action="defer", recipients=recipients, reason="quiet hours", run_at=run_at)
    return Decision(action="send", recipients=recipients)


def review_detected(tx: Tx, couple_id: int) -> bool:
    """Return True when a stored review is a confirmed match for the couple.

    The match is confirmed automatically when the evidence is clear (see
    plaudit.matching.scoring) or by the operator with ``plaudit ctl review match``.
    """
    return matched_review(tx, couple_id)


@final
class _Prepared(msgspec.Struct, frozen=True, kw_only=True):
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
class NotifierActor(Actor):
    """Sends review-request e-mail for the campaigns in the configuration."""

    kinds = (SEND_JOB, ALERT_JOB, SMS_REPLY_JOB)

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
        self.sender = sender
        # Signs unsubscribe links; without it each request gets a random token.
        self.unsubscribe_tokens: UnsubscribeTokens | None = None
        self.alerts = AlertMailer(config, sender)
        self._apply_config(config)
        # SMS and push senders; build_notifier replaces these with the configured ones.
        self.channels = Channels(sms=None, push=None, policy=self.policy)

    def reconfigure(self, config: Config) -> None:
        """Use the campaigns, templates and vendor of a reloaded config from the next job on.

        Raises ValueError or TemplateError, and keeps the running config, when
        ``config`` has no [vendor] table or a template does not parse.
        """
        self._apply_config(config)
        if config.smtp is not None and config.smtp != self.sender.config:
            self.sender = SmtpSender(config.smtp)
        self.alerts.reconfigure(config, self.sender)
        log.info("notifier.reconfigured", extra={"campaigns": len(config.campaigns)})

    def _apply_config(self, config: Config) -> None:
        if config.vendor is None:
            raise ValueError("the notifier needs a [vendor] table; add one to the config")
        vendor: VendorConfig = config.vendor
        campaigns = {campaign.name: campaign for campaign in config.campaigns}
        templates = {
            (campaign.name, number): MessageTemplate(
                f"{campaign.name} step {number + 1}",
                subject=step.subject,
                text=step.text,
                html=step.html,
            )
            for campaign in config.campaigns
            for number, step in enumerate(campaign.steps)
        }
        policy = SuppressionPolicy(
            soft_bounce_limit=config.deliverability.soft_bounce_limit,
            soft_bounce_window_seconds=config.deliverability.soft_bounce_window,
        )
        personaliser = build_personaliser(config)
        # Assigned together after everything parsed, so a bad config changes nothing.
        self.personaliser = personaliser
        self.config = config
        self.vendor = vendor
        self.campaigns = campaigns
        self.templates = templates
        self.policy = policy

    async def on_start(self) -> None:
        """Schedule first steps for couples imported while campaigns were missing."""
        await self.journal.transaction(lambda tx: schedule_new_couples(tx, self.config))

    async def handle(self, job: Job) -> Effects | None:
        if job.kind == ALERT_JOB:
            await self.alerts.deliver(self.journal, job)
            return None
        if job.kind == SMS_REPLY_JOB:
            return await self.channels.reply(job.payload)
        request_id = job.payload.get("request")
        if not isinstance(request_id, int):
            raise PlatformError(f"job {job.id} has no request id; it cannot run", retryable=False)

        prepared = await self.journal.transaction(lambda tx: self._prepare(tx, request_id))
        if prepared is not None and prepared.plan is not None and prepared.couple is not None:
            # Drafted ahead when the send was deferred, else within the send window.
            plan = await self.personaliser.complete_draft(
                self.journal, prepared.couple, prepared.plan
            )
            prepared = msgspec.structs.replace(prepared, plan=plan)
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

        if prepared.channel != "email":
            step_message = StepMessage(
                request_id=request_id,
                couple_id=prepared.couple_id,
                channel=prepared.channel,
                recipients=prepared.decision.recipients,
                title=rendered.subject,
                text=rendered.text,
            )
            return await self.channels.deliver(
                self.journal, step_message, on_sent=lambda tx: self._sent_step(tx, prepared)
            )

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

        addresses = channel_recipients(tx, channel, couple, couple_id)
        snapshot = Snapshot(
            state=state,
            channel=channel,
            addresses=addresses,
            suppressed=_suppressed(tx, addresses),
            consent_email=couple.consent_email,
            review_detected=self._stops_on_review(campaign) and review_detected(tx, couple_id),
            channels=self.channels.names,
            consent_sms=couple.consent_sms,
            now=tx.now,
            timezone=couple.timezone or self.vendor.timezone,
        )
        decision = decide(snapshot)
        if decision.action == "defer":
            defer_request(tx, request_id, decision.run_at)
        if decision.action in ("suppress", "stop"):
            _set_state(
                tx,
                request_id,
                "suppressed" if decision.action == "suppress" else "stopped",
                error=decision.reason,
            )
            if decision.couple_wide:
                stop_couple(tx, couple_id, reason=decision.reason)
            else:
                self._schedule_following(tx, campaign, step, couple_id)
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

        plan = self.personaliser.plan_request(
            tx,
            request_id=request_id,
            couple_id=couple_id,
            couple=couple,
            campaign=campaign,
            step=step,
        )
        if plan is not None and plan.deferred:
            # A later job, enqueued by the plan, sends at the chosen time.
            deferred = Decision(action="skip", reason="deferred to the chosen send time")
            return _Prepared(
                request_id=request_id,
                couple_id=couple_id,
                campaign=campaign,
                step=step,
                decision=deferred,
                couple=couple,
                plan=plan,
            )

        # Fixed once and committed before sending: every attempt repeats it.
        message_id = message_id or message_id_for(request_id, domain=sender_domain(self.vendor))
        if not token and self.unsubscribe_tokens is not None:
            token = self.unsubscribe_tokens.token_for(request_id, couple_id)
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
            channel=channel,
            plan=plan,
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
        if prepared.plan is not None:
            variant = self.personaliser.template(prepared.campaign, prepared.step, prepared.plan)
            if variant is not None:
                return variant
        return self.templates[(prepared.campaign, prepared.step)]

    def _variables(self, prepared: _Prepared) -> dict[str, Any]:
        couple = prepared.couple
        if couple is None:
            raise TemplateError("no couple to render for; this is a bug in the notifier")
        step = self._campaign(prepared).steps[prepared.step]
        variables = request_variables(self.vendor, step, couple, token=prepared.token)
        return self.personaliser.variables(variables, prepared.plan)

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
        self._sent_step(tx, prepared)

    def _sent_step(self, tx: Tx, prepared: _Prepared) -> None:
        """Record a sent step on any channel and schedule the campaign's next one."""
        log.info("notifier.sent", extra={"request": prepared.request_id})
        self.personaliser.record_sent(tx, prepared.request_id)
        self._schedule_following(tx, prepared.campaign, prepared.step, prepared.couple_id)

    def _schedule_following(self, tx: Tx, name: str, step: int, couple_id: int) -> None:
        campaign = self.campaigns.get(name)
        following = step + 1
        if campaign is not None and following < len(campaign.steps):
            run_at = tx.now + campaign.steps[following].delay_days * 86400.0
            schedule_step(tx, couple_id=couple_id, campaign=campaign, step=following, run_at=run_at)

    def _record_bounce(self, tx: Tx, prepared: _Prepared, error: SendError) -> None:
        _set_state(tx, prepared.request_id, "bounced", error=str(error))
        for address in prepared.decision.recipients:
            event = MessageEvent(
                address=address,
                kind=rejection_kind(error.status),
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
    actor = NotifierActor(
        journal, config, SmtpSender(config.smtp), lease_seconds=config.journal.lease_seconds
    )
    actor.channels = build_channels(config, actor.policy)
    return actor
