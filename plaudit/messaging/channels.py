"""SMS and web push delivery of review-request steps, behind one small interface.

The notifier decides each step in ``plaudit.actors.notifier.decide``.  The
pure helpers here supply the channel-specific parts of that decision: who
the recipients are, which consent is needed, and when a text may go out
(quiet hours).  :class:`Channels` then sends an SMS or push step and
returns the journal effects that record it.

A send never happens twice for one request and recipient: before sending,
a ``channel_sends`` row is written in its own transaction.  When Twilio
accepted a text but the response was lost, the row stays ``unknown`` until
the status callback names the message (see ``plaudit.messaging.sms_events``),
and the retried job finds it accepted instead of texting again.  When no
callback came either, the retried job looks the text up on Twilio first
(see ``plaudit.messaging.sms_lookup``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final, Literal, final

import msgspec

from plaudit.config.model import Config
from plaudit.config.paths import read_secret
from plaudit.errors import ConfigError, PlatformError, PlauditError
from plaudit.journal import AsyncJournal, Tx
from plaudit.messaging import request_events
from plaudit.messaging.channel_sends import (
    UNKNOWN_OUTCOME_WAIT,
    begin_send,
    mark_accepted,
    record_request_sent,
    reply_event_id,
    set_request_state,
    set_send_state,
)
from plaudit.messaging.couples import Couple
from plaudit.messaging.deliverability.store import record_event
from plaudit.messaging.deliverability.suppression import MessageEvent, SuppressionPolicy
from plaudit.messaging.push import (
    InvalidSubscription,
    PushError,
    PushSender,
    PushSubscription,
    active_subscriptions,
    load_vapid_key,
    remove_subscription,
)
from plaudit.messaging.quiet_hours import next_allowed, recipient_zone
from plaudit.messaging.sms import SmsError, TwilioClient
from plaudit.messaging.sms_lookup import check_earlier_send
from plaudit.metrics import CHANNEL_MESSAGES, REVIEW_REQUESTS

log = logging.getLogger(__name__)

Channel = Literal["email", "sms", "push"]
SMS_REPLY_JOB: Final = "sms.reply"
SMS_PROVIDER: Final = "twilio"
PUSH_PROVIDER: Final = "webpush"

Effects = Callable[[Tx], None]


def missing_consent(channel: str, *, consent_email: bool, consent_sms: bool) -> str | None:
    """Return why the couple may not be contacted on ``channel``, or None when they may.

    Push needs no flag: a stored subscription is the couple's own opt-in.
    """
    if channel == "email" and not consent_email:
        return "no e-mail consent"
    if channel == "sms" and not consent_sms:
        return "no SMS consent"
    return None


def missing_address(channel: str) -> str:
    """Return the reason a couple without an address on ``channel`` is skipped."""
    missing = {"email": "e-mail address", "sms": "phone number", "push": "push subscription"}
    return f"no {missing.get(channel, channel + ' address')}"


def send_time(channel: str, *, now: float, timezone: str) -> float:
    """Return when a step due at ``now`` may go out: later only for SMS in quiet hours."""
    if channel != "sms":
        return now
    try:
        zone = recipient_zone(timezone, "UTC")
    except ValueError:
        # NOTE: import and check-config reject unknown zones, so this needs tzdata to drop
        # one; quiet hours then follow UTC.
        zone = recipient_zone("UTC", "UTC")
    return next_allowed(now, zone)


def channel_recipients(tx: Tx, channel: str, couple: Couple, couple_id: int) -> list[str]:
    """Return the couple's addresses on ``channel``: e-mails, the phone, or push endpoints."""
    if channel == "email":
        return list(couple.emails)
    if channel == "sms":
        return [couple.phone] if couple.phone else []
    return [subscription.endpoint for subscription in active_subscriptions(tx, couple_id)]


def defer_request(tx: Tx, request_id: int, run_at: float) -> None:
    """Move a request to ``run_at`` with a new send job; the current job then completes."""
    tx.execute(
        "UPDATE requests SET scheduled_at = ?, updated_at = ? WHERE id = ?",
        (run_at, tx.now, request_id),
    )
    # Keyed by the target time, so deciding again in the same quiet period adds nothing.
    tx.enqueue(
        kind="request.send",
        owner="notifier",
        key=f"request:{request_id}:at:{int(run_at)}",
        payload={"request": request_id},
        run_at=run_at,
    )
    REVIEW_REQUESTS.labels(channel="sms", outcome="deferred").inc()


@final
class StepMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One rendered step to send on a channel other than e-mail."""

    request_id: int
    couple_id: int
    channel: str
    recipients: list[str]
    title: str
    text: str


@final
class ChannelsStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counts of the SMS and push sends of a :class:`Channels` since it started."""

    channels: list[str]
    sms_sent: int
    sms_skipped_as_sent: int
    push_sent: int
    push_removed: int


@final
class Channels:
    """The SMS and push senders built from ``[sms]`` and ``[push]``; either may be absent.

    A reload replaces the senders through :meth:`adopt`; the counters carry on.
    """

    def __init__(
        self,
        *,
        sms: TwilioClient | None,
        push: PushSender | None,
        policy: SuppressionPolicy,
        help_text: str = "",
    ) -> None:
        self.sms = sms
        self.push = push
        self.policy = policy
        self.help_text = help_text
        self._sms_sent = 0
        self._sms_skipped = 0
        self._push_sent = 0
        self._push_removed = 0

    def __repr__(self) -> str:
        return (
            f"<Channels names={sorted(self.names)} sms_sent={self._sms_sent} "
            f"push_sent={self._push_sent}>"
        )

    def statistics(self) -> ChannelsStatistics:
        return ChannelsStatistics(
            channels=sorted(self.names),
            sms_sent=self._sms_sent,
            sms_skipped_as_sent=self._sms_skipped,
            push_sent=self._push_sent,
            push_removed=self._push_removed,
        )

    def adopt(self, fresh: Channels) -> None:
        """Send with the senders, policy and HELP text of ``fresh`` from the next step on.

        A send already running finishes with the sender it started with.
        """
        # NOTE: the replaced senders' HTTP connections are not closed, because a
        # running send may still use them; they close when garbage-collected.
        self.sms = fresh.sms
        self.push = fresh.push
        self.policy = fresh.policy
        self.help_text = fresh.help_text
        log.info("notifier.channels_reconfigured", extra={"channels": sorted(self.names)})

    @property
    def names(self) -> frozenset[str]:
        """The channels that can send: e-mail always, SMS and push when configured."""
        names = {"email"}
        if self.sms is not None:
            names.add("sms")
        if self.push is not None:
            names.add("push")
        return frozenset(names)

    async def deliver(
        self, journal: AsyncJournal, message: StepMessage, *, on_sent: Effects
    ) -> Effects:
        """Send one SMS or push step; return the effects that record it with the job.

        ``on_sent`` runs inside those effects when at least one recipient got
        the step (the notifier schedules the next step there).  Raises
        PlatformError for a failure the journal should retry.
        """
        if message.channel == "sms":
            return await self._deliver_sms(journal, message, on_sent)
        if message.channel == "push":
            return await self._deliver_push(journal, message, on_sent)
        raise PlatformError(
            f"request {message.request_id} has channel {message.channel!r}, which this "
            "sender does not handle",
            retryable=False,
        )

    async def _deliver_sms(
        self, journal: AsyncJournal, message: StepMessage, on_sent: Effects
    ) -> Effects:
        if self.sms is None:
            raise PlatformError("SMS steps need an [sms] table; add it", retryable=False)
        client = self.sms
        # decide() suppresses a step without a number, so there is exactly one here.
        number = message.recipients[0]
        check = await journal.transaction(
            lambda tx: begin_send(tx, message.request_id, "sms", number)
        )
        if check.action == "lookup":
            check = await check_earlier_send(
                journal,
                client,
                request_id=message.request_id,
                number=number,
                text=message.text,
                since=check.since,
            )
        if check.action == "wait":
            raise PlatformError(
                f"an earlier attempt to text request {message.request_id} has no outcome yet; "
                f"waiting {check.wait:.0f} s for Twilio's status callback before sending again",
                retryable=True,
                retry_after=check.wait,
            )
        if check.action == "skip":
            # Twilio accepted this text before (the response or the commit was lost).
            self._sms_skipped += 1
            log.info(
                "notifier.sms_already_accepted",
                extra={"request": message.request_id, "sid": check.provider_id},
            )
            sid = check.provider_id
        else:
            try:
                accepted = await client.send(number, message.text)
            except SmsError as error:
                return await self._sms_failed(journal, message, number, error)
            sid = accepted.sid
            self._sms_sent += 1

        def record(tx: Tx) -> None:
            mark_accepted(tx, message.request_id, number, sid)
            record_request_sent(tx, message.request_id, SMS_PROVIDER)
            event = MessageEvent(
                address=number, kind="accepted", at=tx.now, provider=SMS_PROVIDER, message_id=sid
            )
            record_event(tx, event, policy=self.policy)
            request_events.emit_sent(
                tx, message.request_id, recipients=[number], provider=SMS_PROVIDER, message_id=sid
            )
            REVIEW_REQUESTS.labels(channel="sms", outcome="sent").inc()
            CHANNEL_MESSAGES.labels(channel="sms", outcome="sent").inc()
            on_sent(tx)

        return record

    async def _sms_failed(
        self, journal: AsyncJournal, message: StepMessage, number: str, error: SmsError
    ) -> Effects:
        if error.outcome == "unknown":
            problem = str(error)
            await journal.transaction(
                lambda tx: set_send_state(tx, message.request_id, number, "unknown", problem)
            )
            REVIEW_REQUESTS.labels(channel="sms", outcome="retried").inc()
            log.warning(
                "notifier.sms_outcome_unknown",
                extra={"request": message.request_id, "error": problem},
            )
            raise PlatformError(
                problem, retryable=True, retry_after=UNKNOWN_OUTCOME_WAIT
            ) from error
        if error.outcome == "retryable":
            # Nothing was sent, so the next attempt need not wait for a status callback.
            problem = str(error)
            await journal.transaction(
                lambda tx: set_send_state(tx, message.request_id, number, "unsent", problem)
            )
            REVIEW_REQUESTS.labels(channel="sms", outcome="retried").inc()
            raise error

        def record(tx: Tx) -> None:
            set_send_state(tx, message.request_id, number, "failed", str(error))
            set_request_state(tx, message.request_id, "bounced", str(error))
            if error.suppress is not None:
                kind: Literal["unsubscribe", "hard_bounce"] = (
                    "unsubscribe" if error.suppress == "unsubscribe" else "hard_bounce"
                )
                # A Twilio error code is not an RFC 3463 status, so 5.1.1 represents
                # "this number cannot receive texts" and suppresses it at once.
                event = MessageEvent(
                    address=number,
                    kind=kind,
                    at=tx.now,
                    status="5.1.1" if kind == "hard_bounce" else str(error.code),
                    provider=SMS_PROVIDER,
                )
                record_event(tx, event, policy=self.policy)
            request_events.emit_send_rejected(
                tx,
                message.request_id,
                recipient=number,
                provider=SMS_PROVIDER,
                status=None if error.code is None else str(error.code),
            )
            REVIEW_REQUESTS.labels(channel="sms", outcome="bounced").inc()
            opted_out = error.suppress == "unsubscribe"
            CHANNEL_MESSAGES.labels(
                channel="sms", outcome="opted_out" if opted_out else "failed"
            ).inc()
            log.warning(
                "notifier.sms_rejected",
                extra={"request": message.request_id, "code": error.code, "error": str(error)},
            )

        return record

    async def _deliver_push(
        self, journal: AsyncJournal, message: StepMessage, on_sent: Effects
    ) -> Effects:
        if self.push is None:
            raise PlatformError("push steps need a [push] table; add it", retryable=False)
        sender = self.push
        subscriptions = await journal.transaction(
            lambda tx: [
                subscription
                for subscription in active_subscriptions(tx, message.couple_id)
                if subscription.endpoint in message.recipients
            ]
        )
        accepted: dict[str, str] = {}
        gone: dict[str, str] = {}
        # Endpoint -> the push service's HTTP status, None when the subscription was invalid.
        gone_status: dict[str, int | None] = {}
        retryable: PushError | None = None
        payload = {"title": message.title, "body": message.text}
        for subscription in subscriptions:
            outcome = await self._push_one(sender, subscription, payload, message.request_id)
            if isinstance(outcome, str):
                accepted[subscription.endpoint] = outcome
            elif outcome.gone or not outcome.retryable:
                gone[subscription.endpoint] = str(outcome)
                gone_status[subscription.endpoint] = outcome.status
            else:
                retryable = outcome
        if retryable is not None and not accepted:
            raise retryable

        def record(tx: Tx) -> None:
            for endpoint, reason in gone.items():
                remove_subscription(tx, endpoint, reason="gone")
                # 404 and 410 mean the browser dropped the subscription.
                removed = gone_status.get(endpoint) in (404, 410)
                CHANNEL_MESSAGES.labels(
                    channel="push", outcome="opted_out" if removed else "failed"
                ).inc()
                log.info(
                    "notifier.push_removed", extra={"request": message.request_id, "reason": reason}
                )
            for endpoint, location in accepted.items():
                mark_accepted(tx, message.request_id, endpoint, location, channel="push")
            request_events.emit_push_outcomes(
                tx, message.request_id, accepted=list(accepted), gone=gone_status
            )
            if accepted:
                record_request_sent(tx, message.request_id, PUSH_PROVIDER)
                REVIEW_REQUESTS.labels(channel="push", outcome="sent").inc()
                CHANNEL_MESSAGES.labels(channel="push", outcome="sent").inc(len(accepted))
                on_sent(tx)
            else:
                set_request_state(tx, message.request_id, "bounced", "; ".join(gone.values()))
                REVIEW_REQUESTS.labels(channel="push", outcome="bounced").inc()

        self._push_sent += len(accepted)
        self._push_removed += len(gone)
        return record

    async def _push_one(
        self,
        sender: PushSender,
        subscription: PushSubscription,
        payload: dict[str, str],
        request_id: int,
    ) -> str | PushError:
        try:
            result = await sender.send(subscription, payload, topic=f"request-{request_id}")
        except InvalidSubscription as error:
            return PushError(str(error), retryable=False, gone=True)
        except PushError as error:
            return error
        return result.location or "accepted"

    async def reply(self, payload: dict[str, object]) -> Effects:
        """Send ``[sms] help_text`` in reply to an inbound HELP; raises PlatformError to retry.

        The reply follows the couple's own text, so quiet hours do not hold it
        back.  The returned effects record the reply's SID, so its status
        callbacks are never taken for a review request's.
        """
        to = payload.get("to")
        if not isinstance(to, str) or not to:
            raise PlatformError(f"sms.reply job has no 'to' number: {payload!r}", retryable=False)
        if self.sms is None or not self.help_text:
            raise PlatformError(
                "a HELP text arrived but [sms] help_text is not set; set it to the vendor's "
                "name and contact line",
                retryable=False,
            )
        try:
            accepted = await self.sms.send(to, self.help_text)
        except SmsError as error:
            if error.outcome == "unknown":
                # NOTE: a lost response may repeat the HELP reply, and a second copy is harmless.
                raise PlatformError(str(error), retryable=True) from error
            raise
        log.info("notifier.sms_help_replied", extra={"number_suffix": to[-4:]})

        def record(tx: Tx) -> None:
            event = MessageEvent(
                address=to,
                kind="accepted",
                at=tx.now,
                provider=SMS_PROVIDER,
                message_id=accepted.sid,
            )
            record_event(
                tx, event, policy=self.policy, provider_event_id=reply_event_id(accepted.sid)
            )

        return record


def build_channels(config: Config, policy: SuppressionPolicy) -> Channels:
    """Build the senders of ``[sms]`` and ``[push]``; raises ConfigError or PlauditError."""
    sms = None
    if config.sms is not None:
        token = read_secret("", config.sms.auth_token_file, key="sms.auth_token")
        sms = TwilioClient(config.sms, token)
    push = None
    if config.push is not None:
        try:
            vapid = load_vapid_key(config.push.vapid_private_key_file)
        except PlauditError as error:
            raise ConfigError("push.vapid_private_key_file", [str(error)]) from error
        push = PushSender(config.push, vapid)
    help_text = config.sms.help_text if config.sms is not None else ""
    return Channels(sms=sms, push=push, policy=policy, help_text=help_text)
