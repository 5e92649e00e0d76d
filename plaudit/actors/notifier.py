"""The notifier actor: sends each scheduled review request at most once.

Each ``request.send`` job runs in three steps:

1. In one transaction, :func:`decide` looks at the request, the couple and
   the suppression list.  For a send, the request's Message-ID is fixed and
   committed before any SMTP traffic.
2. The template is rendered; an error marks the request failed and nothing
   is sent.
3. The message goes out.  Right before the DATA command a marker is
   committed in its own transaction (plaudit.messaging.submission).  The
   result commits with the job: sent (and the next step scheduled), or a
   bounce for a 5xx reply.  A 4xx reply or a failure before DATA is retried
   by the journal with backoff.  When the outcome after DATA is unknown (a
   lost connection, or a crash before the result was committed), the step
   is marked sent and unconfirmed instead of being sent a second time.

The decision step is in :mod:`plaudit.actors.notifier_decision`, and the
journal writes of each outcome are in :mod:`plaudit.actors.notifier_records`.
This module re-exports their public names.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any, final

import msgspec
import trio

from plaudit.actors.base import Actor, ChildContext, Effects
from plaudit.actors.notifier_decision import DONE_STATES, Decision, Snapshot, decide
from plaudit.actors.notifier_records import PROVIDER, Prepared, StepRecords, set_state
from plaudit.alerts import ALERT_JOB
from plaudit.config.model import CampaignConfig, Config, VendorConfig
from plaudit.errors import PlatformError
from plaudit.journal import AsyncJournal, Job, Tx
from plaudit.matching.store import review_detected as matched_review
from plaudit.messaging.campaigns import SEND_JOB, schedule_new_couples
from plaudit.messaging.channels import (
    SMS_REPLY_JOB,
    Channels,
    StepMessage,
    build_channels,
    channel_recipients,
    defer_request,
)
from plaudit.messaging.couples import Couple, load_couple
from plaudit.messaging.deliverability.store import suppression_of
from plaudit.messaging.deliverability.suppression import SuppressionPolicy
from plaudit.messaging.email import (
    SendError,
    SmtpSender,
    build_message,
    message_id_for,
    sender_domain,
)
from plaudit.messaging.operator_alerts import AlertMailer
from plaudit.messaging.preview import request_variables
from plaudit.messaging.submission import (
    clear_submitting,
    mark_submitting,
    record_refusals,
    submission_pending,
)
from plaudit.messaging.templates import MessageTemplate, TemplateError
from plaudit.messaging.unsubscribe import UnsubscribeTokens
from plaudit.metrics import REVIEW_REQUESTS
from plaudit.personalisation.ahead import DraftQueue
from plaudit.personalisation.channel_choice import AUTO
from plaudit.personalisation.service import build_personaliser

__all__ = [
    "DONE_STATES",
    "PROVIDER",
    "Decision",
    "NotifierActor",
    "Snapshot",
    "build_notifier",
    "decide",
    "review_detected",
    "runs_notifier",
]

log = logging.getLogger(__name__)


def review_detected(tx: Tx, couple_id: int) -> bool:
    """Return True when a stored review is a confirmed match for the couple.

    The match is confirmed automatically when the evidence is clear (see
    plaudit.matching.scoring) or by the operator with ``plaudit ctl review match``.
    """
    return matched_review(tx, couple_id)


@final
class NotifierActor(Actor):
    """Sends review-request e-mail for the campaigns in the configuration."""

    kinds = (SEND_JOB, ALERT_JOB, SMS_REPLY_JOB)

    def __init__(
        self,
        journal: AsyncJournal,
        config: Config,
        sender: SmtpSender | None,
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
        # Alert texts use the notifier's current Twilio client, which a reload replaces.
        self.alerts.sms_source = lambda: self.channels.sms
        self._apply_config(config)
        # SMS and push senders; build_notifier replaces these with the configured ones.
        self.channels = Channels(sms=None, push=None, policy=self.policy)
        self.drafts = DraftQueue()

    def reconfigure(self, config: Config) -> None:
        """Use the campaigns, templates, vendor and SMS and push senders of a reloaded config.

        Raises ValueError, TemplateError or PlauditError, and keeps the running
        config, when ``config`` has no [vendor] table, a template does not
        parse, or an [sms] or [push] secret file cannot be read.
        """
        channels = build_channels(config, self.policy)
        self._apply_config(config)
        channels.policy = self.policy
        self.channels.adopt(channels)
        if config.smtp is None:
            self.sender = None
        elif self.sender is None or config.smtp != self.sender.config:
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
        self.records = StepRecords(campaigns, policy, personaliser)

    async def start(self, ctx: ChildContext) -> None:
        """Run the drafting-ahead worker beside the claim loop."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.drafts.run, self.journal, lambda: self.personaliser)
            await super().start(ctx)
            nursery.cancel_scope.cancel()

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
            # Queued for drafting ahead when deferred, else a wait of at most send_wait.
            plan = await self.personaliser.complete_draft(
                self.journal, prepared.couple, prepared.plan, drafts=self.drafts
            )
            prepared = msgspec.structs.replace(prepared, plan=plan)
        if prepared is None or prepared.decision.action != "send" or prepared.couple is None:
            return None

        try:
            rendered = self._template(prepared).render(self._variables(prepared))
        except TemplateError as error:
            problem = str(error)
            await self.journal.transaction(
                lambda tx: set_state(tx, request_id, "failed", error=problem)
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
                self.journal, step_message, on_sent=lambda tx: self.records.step_sent(tx, prepared)
            )

        message = build_message(
            rendered,
            vendor=self.vendor,
            to=prepared.decision.recipients,
            message_id=prepared.message_id,
            unsubscribe_token=prepared.token,
        )
        if self.sender is None:
            raise PlatformError(
                f"request {request_id} is an e-mail step but the config has no [smtp] table; "
                "add it and reload",
                retryable=True,
            )
        try:
            receipt = await self.sender.send(
                message,
                before_data=lambda: self.journal.transaction(
                    lambda tx: mark_submitting(tx, request_id)
                ),
            )
        except SendError as error:
            if error.unconfirmed:
                lost = str(error)
                return lambda tx: self.records.mark_unconfirmed(tx, prepared, lost)
            if error.after_marker and not error.permanent:
                # The server replied to DATA, so it did not take the message.
                await self.journal.transaction(lambda tx: clear_submitting(tx, request_id))
            refused = [refusal for refusal in error.refused if refusal.permanent]
            if refused and not error.permanent:
                # Bounces whatever the retry brings; a suppressed address is left out of it.
                await self.journal.transaction(
                    lambda tx: record_refusals(
                        tx, refused, message_id=prepared.message_id, policy=self.policy
                    )
                )
            if not error.permanent:
                REVIEW_REQUESTS.labels(channel="email", outcome="retried").inc()
                log.warning(
                    "notifier.send_retry", extra={"request": request_id, "error": str(error)}
                )
                raise PlatformError(str(error), retryable=True) from error
            bounce = error
            return lambda tx: self.records.mark_bounced(tx, prepared, bounce)
        return lambda tx: self.records.mark_sent(tx, prepared, receipt)

    def _prepare(self, tx: Tx, request_id: int) -> Prepared | None:
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
        if submission_pending(tx, request_id):
            # An earlier attempt reached DATA and its outcome was never recorded.
            unknown = Prepared(
                request_id=request_id,
                couple_id=couple_id,
                campaign=campaign,
                step=step,
                decision=Decision(action="skip", reason="submission unconfirmed"),
            )
            self.records.mark_unconfirmed(tx, unknown, "the daemon stopped during the submission")
            return unknown

        if channel == AUTO and state not in DONE_STATES:
            channel = self._choose_channel(
                tx, request_id, couple_id, couple, campaign=campaign, step=step
            )
        addresses = channel_recipients(tx, channel, couple, couple_id)
        snapshot = Snapshot(
            state=state,
            channel=channel,
            addresses=addresses,
            suppressed=_suppressed(tx, addresses),
            consent_email=couple.consent_email,
            review_detected=self._stops_on_review(campaign) and review_detected(tx, couple_id),
            stop_on_complaint=self._stops_on(campaign, "complaint"),
            channels=self.channels.names,
            consent_sms=couple.consent_sms,
            now=tx.now,
            timezone=couple.timezone or self.vendor.timezone,
        )
        decision = decide(snapshot)
        if decision.action == "defer":
            defer_request(tx, request_id, decision.run_at)
        if decision.action != "send":
            ended = Prepared(
                request_id=request_id,
                couple_id=couple_id,
                campaign=campaign,
                step=step,
                decision=decision,
            )
            if decision.action in ("suppress", "stop"):
                self.records.end_request(tx, ended, channel=channel)
            return ended

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
            return Prepared(
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
        return Prepared(
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

    def _choose_channel(
        self, tx: Tx, request_id: int, couple_id: int, couple: Couple, *, campaign: str, step: int
    ) -> str:
        """Resolve a step with channel auto among the channels the couple can receive now."""

        def reaches(channel: str) -> bool:
            addresses = channel_recipients(tx, channel, couple, couple_id)
            # The same rules as a step that names the channel; review and
            # complaint stops apply to every channel alike, so they are left out.
            probe = Snapshot(
                state="scheduled",
                channel=channel,
                addresses=addresses,
                suppressed=_suppressed(tx, addresses),
                consent_email=couple.consent_email,
                review_detected=False,
                channels=self.channels.names,
                consent_sms=couple.consent_sms,
                now=tx.now,
                timezone=couple.timezone or self.vendor.timezone,
            )
            return decide(probe).action in ("send", "defer")

        return self.personaliser.choose_channel(
            tx,
            request_id=request_id,
            couple_id=couple_id,
            campaign=campaign,
            step=step,
            reaches=reaches,
        )

    def _stops_on_review(self, name: str) -> bool:
        campaign = self.campaigns.get(name)
        return campaign is None or "review" in campaign.stop_on

    def _stops_on(self, name: str, reason: str) -> bool:
        campaign = self.campaigns.get(name)
        return campaign is not None and reason in campaign.stop_on

    def _campaign(self, prepared: Prepared) -> CampaignConfig:
        campaign = self.campaigns.get(prepared.campaign)
        if campaign is None or prepared.step >= len(campaign.steps):
            raise TemplateError(
                f"campaign {prepared.campaign!r} step {prepared.step + 1} is no longer in the "
                "config; restore it or retry the job after a reload"
            )
        return campaign

    def _template(self, prepared: Prepared) -> MessageTemplate:
        self._campaign(prepared)
        if prepared.plan is not None:
            variant = self.personaliser.template(prepared.campaign, prepared.step, prepared.plan)
            if variant is not None:
                return variant
        return self.templates[(prepared.campaign, prepared.step)]

    def _variables(self, prepared: Prepared) -> dict[str, Any]:
        couple = prepared.couple
        if couple is None:
            raise TemplateError("no couple to render for; this is a bug in the notifier")
        step = self._campaign(prepared).steps[prepared.step]
        variables = request_variables(self.vendor, step, couple, token=prepared.token)
        return self.personaliser.variables(variables, prepared.plan)


def _suppressed(tx: Tx, addresses: list[str]) -> dict[str, str]:
    found = {}
    for address in addresses:
        suppression = suppression_of(tx, address)
        if suppression is not None:
            found[address] = suppression.reason
    return found


def runs_notifier(config: Config) -> bool:
    """Return True when ``config`` has campaigns the notifier can send."""
    if config.vendor is None or not config.campaigns:
        return False
    emails = any(
        step.channel == "email" for campaign in config.campaigns for step in campaign.steps
    )
    return config.smtp is not None or not emails


def build_notifier(config: Config, journal: AsyncJournal) -> NotifierActor | None:
    """Return the notifier for ``config``, or None without [vendor] or campaigns.

    ``[smtp]`` is needed only when a campaign has an e-mail step; without it
    operator alerts are listed, not mailed.
    """
    if not runs_notifier(config):
        return None
    sender = None if config.smtp is None else SmtpSender(config.smtp)
    actor = NotifierActor(journal, config, sender, lease_seconds=config.journal.lease_seconds)
    actor.channels = build_channels(config, actor.policy)
    return actor
