"""Operator alerts by e-mail: the notifier's side of ``alert.send`` jobs.

Each new alert (see :mod:`plaudit.alerts`) enqueues one job.  The notifier
sends it to the ``[operator] email`` addresses through the same SMTP server
as review requests, with a Message-ID fixed by the alert id, so a retried
send is recognisable as the same message.  With no operator address or no
``[smtp]`` table the job completes at once and the alert stays listed by
``plaudit ctl alerts``.
"""

from __future__ import annotations

import email.utils
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING, Final, final

import msgspec

from plaudit.alerts import Alert, get_alert
from plaudit.config.locate import KeyPath
from plaudit.config.model import Config
from plaudit.errors import PlatformError
from plaudit.journal import AsyncJournal, Job
from plaudit.messaging.email import SendError, SmtpSender
from plaudit.metrics import OPERATOR_ALERTS_SENT

if TYPE_CHECKING:
    from plaudit.messaging.sms import TwilioClient

# Texts are short: the summary is cut to this many characters.
MAX_ALERT_TEXT: Final = 300

log = logging.getLogger(__name__)

# Detail values longer than this are cut in the message body.
MAX_DETAIL_CHARS: Final = 500


def alert_sender_address(config: Config) -> str:
    """Return the From address of alert e-mail, or "" when none is configured."""
    if config.operator.from_address:
        return config.operator.from_address
    return config.vendor.from_address if config.vendor is not None else ""


def alert_message_id(alert_id: int, *, sender: str) -> str:
    """Return the Message-ID of an alert's e-mail: the same on every attempt."""
    domain = sender.rpartition("@")[2] or "localhost"
    return f"<alert-{alert_id}@{domain}>"


def build_alert_message(alert: Alert, *, sender: str, to: list[str]) -> EmailMessage:
    """Build the plain-text e-mail for one alert."""
    message = EmailMessage()
    message["From"] = email.utils.formataddr(("Plaudit", sender))
    message["To"] = ", ".join(to)
    message["Subject"] = f"[Plaudit {alert.severity}] {' '.join(alert.summary.split())}"
    message["Message-ID"] = alert_message_id(alert.id, sender=sender)
    message["Date"] = email.utils.formatdate(localtime=False)
    # RFC 3834: an automatic message, so auto-responders must not reply to it.
    message["Auto-Submitted"] = "auto-generated"

    raised = datetime.fromtimestamp(alert.raised_at, UTC).isoformat(timespec="seconds")
    lines = [
        alert.summary,
        "",
        f"severity: {alert.severity}",
        f"source:   {alert.source}",
        f"key:      {alert.key}",
        f"raised:   {raised}",
        f"alert id: {alert.id}",
    ]
    if alert.resolved_at is not None:
        resolved = datetime.fromtimestamp(alert.resolved_at, UTC).isoformat(timespec="seconds")
        lines.append(f"resolved: {resolved} (before this message was sent)")
    for name, value in sorted(alert.detail.items()):
        text = " ".join(str(value).split())
        if len(text) > MAX_DETAIL_CHARS:
            text = text[: MAX_DETAIL_CHARS - 3] + "..."
        lines.append(f"{name}: {text}")
    lines += ["", "List open alerts with: plaudit ctl alerts --open", ""]
    message.set_content("\n".join(lines))
    return message


@final
class AlertMailerStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Alerts an AlertMailer has e-mailed, and alerts it left listed only."""

    sent: int
    listed: int


@final
class AlertMailer:
    """Sends the alerts of ``alert.send`` jobs to the operator with the current config."""

    def __init__(self, config: Config, sender: SmtpSender | None) -> None:
        self.config = config
        self.sender = sender
        # Returns the notifier's current Twilio client, or None without [sms].
        self.sms_source: Callable[[], TwilioClient | None] = lambda: None
        self._sent = 0
        self._listed = 0
        self._texted = 0

    def __repr__(self) -> str:
        return f"<AlertMailer to={len(self.config.operator.email)} sent={self._sent}>"

    def statistics(self) -> AlertMailerStatistics:
        return AlertMailerStatistics(sent=self._sent, listed=self._listed)

    def reconfigure(self, config: Config, sender: SmtpSender | None) -> None:
        """Use the addresses and SMTP server of a reloaded config from the next alert on."""
        self.config = config
        self.sender = sender

    async def deliver(self, journal: AsyncJournal, job: Job) -> None:
        """Send the job's alert; raises PlatformError, retryable unless the server rejected it."""
        alert_id = job.payload.get("alert")
        if isinstance(alert_id, bool) or not isinstance(alert_id, int):
            raise PlatformError(f"job {job.id} has no alert id; it cannot run", retryable=False)
        alert = await journal.transaction(lambda tx: get_alert(tx, alert_id))
        if alert is None:
            log.warning("alert.missing", extra={"alert": alert_id, "job": job.id})
            return

        recipients = self.config.operator.email
        sender = alert_sender_address(self.config)
        texted = await self._text(alert)
        if not recipients or self.sender is None or not sender:
            if texted:
                return
            self._listed += 1
            OPERATOR_ALERTS_SENT.labels(outcome="listed").inc()
            log.info(
                "alert.listed_only",
                extra={
                    "alert": alert.id,
                    "reason": "no [operator] email, [smtp] or sender address configured; "
                    "alerts are only listed by plaudit ctl alerts",
                },
            )
            return

        message = build_alert_message(alert, sender=sender, to=recipients)
        try:
            await self.sender.send(message)
        except SendError as error:
            outcome = "failed" if error.permanent else "retried"
            OPERATOR_ALERTS_SENT.labels(outcome=outcome).inc()
            log.warning(
                "alert.send_failed",
                extra={"alert": alert.id, "error": str(error), "permanent": error.permanent},
            )
            raise PlatformError(
                f"alert {alert.id} e-mail to the operator failed: {error}; "
                "check [operator] email and [smtp]",
                retryable=not error.permanent,
            ) from error
        self._sent += 1
        OPERATOR_ALERTS_SENT.labels(outcome="sent").inc()
        log.info("alert.sent", extra={"alert": alert.id, "recipients": len(recipients)})

    async def _text(self, alert: Alert) -> bool:
        """Text the alert to ``[operator] sms``; return True when at least one text went out.

        A text is sent once, before the e-mail, and never retried: a failed
        text is logged, and the e-mail and `plaudit ctl alerts` still carry
        the alert.  So an e-mail retry never repeats a text.
        """
        numbers = self.config.operator.sms
        client = self.sms_source()
        if not numbers or client is None:
            return False
        body = f"Plaudit {alert.severity} alert: {alert.summary}"[:MAX_ALERT_TEXT]
        sent = 0
        for number in numbers:
            try:
                await client.send(number, body)
            except PlatformError as error:
                OPERATOR_ALERTS_SENT.labels(outcome="text_failed").inc()
                log.warning("alert.text_failed", extra={"alert": alert.id, "error": str(error)})
                continue
            sent += 1
        if sent:
            self._texted += sent
            OPERATOR_ALERTS_SENT.labels(outcome="texted").inc()
            log.info("alert.texted", extra={"alert": alert.id, "numbers": sent})
        return sent > 0


def check_operator(config: Config) -> Iterator[tuple[KeyPath, str]]:
    """Yield config problems of ``[operator]``: invalid addresses, no SMTP or sender."""
    operator = config.operator
    import email_validator

    for index, address in enumerate(operator.email):
        try:
            email_validator.validate_email(address, check_deliverability=False)
        except email_validator.EmailNotValidError as error:
            yield ("operator", "email", index), f"invalid e-mail address {address!r}: {error}"
    if operator.from_address:
        try:
            email_validator.validate_email(operator.from_address, check_deliverability=False)
        except email_validator.EmailNotValidError as error:
            yield (
                ("operator", "from_address"),
                f"invalid e-mail address {operator.from_address!r}: {error}",
            )
    if operator.sms and config.sms is None:
        yield ("operator", "sms"), "alert texts need an [sms] table; add it or remove sms"
    for index, number in enumerate(operator.sms):
        if not number.startswith("+") or not number[1:].isdigit() or not 8 <= len(number) <= 16:
            yield (
                ("operator", "sms", index),
                f"invalid phone number {number!r}: write it in E.164 form, such as +447700900123",
            )
    if not operator.email:
        return
    if config.smtp is None:
        yield ("operator", "email"), "alert e-mail needs an [smtp] table; add it"
    if not alert_sender_address(config):
        yield (
            ("operator", "from_address"),
            "alert e-mail needs a sender; set from_address here or in [vendor]",
        )
