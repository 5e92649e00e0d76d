"""Review-request e-mail: building the MIME message and sending it over SMTP.

aiosmtplib runs on asyncio; each send opens a trio-asyncio loop around it, so
the rest of Plaudit stays on Trio.  SMTP replies are sorted by class:
4xx and connection failures before DATA are temporary (the job is retried
with the same Message-ID), 5xx is permanent (recorded as a bounce, never
retried).  A recipient refused at RCPT while another is accepted is reported
in the :class:`SendReceipt`, not raised.

The window between the DATA command and the server's final reply is
ambiguous: when the connection is lost there, the server may have accepted
the message.  ``SmtpSender.send`` calls ``before_data`` right before DATA so
the caller can record that a submission started, and raises a SendError with
``unconfirmed`` set for a loss in that window, so the caller never sends the
message a second time.

Failures known to come before DATA (a lost connection, a timeout, or a 4xx
reply to the greeting, MAIL FROM or RCPT) are retried within ``send`` by the
``[smtp.retry]`` policy; :func:`classify_send_error` decides which.  After
DATA nothing is retried within the call.
"""

from __future__ import annotations

import email.utils
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from typing import TYPE_CHECKING, Final, Literal, final

import msgspec
import trio

from plaudit.config.model import SmtpConfig, VendorConfig
from plaudit.errors import PlauditError
from plaudit.messaging.message_aliases import provider_id_from_reply, tracking_headers
from plaudit.messaging.templates import RenderedMessage
from plaudit.reliability.retry import Failure, retry_call

if TYPE_CHECKING:
    import aiosmtplib

log = logging.getLogger(__name__)

# RFC 8058: the value receivers POST to the List-Unsubscribe https URI.
ONE_CLICK: Final = "List-Unsubscribe=One-Click"


@final
class Refusal(msgspec.Struct, frozen=True, kw_only=True):
    """A server's reply rejecting one recipient at RCPT."""

    address: str
    code: int
    # RFC 3463 enhanced status code such as "5.1.1", when the reply carried one.
    status: str | None
    reply: str

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600


class SendError(PlauditError):
    """An SMTP send failed.

    ``permanent`` is True only when the server rejected the recipients or the
    message with a 5xx reply, which is a bounce.  Other failures, including a
    5xx reply to AUTH or MAIL FROM (a problem of the [smtp] settings, not of
    the couple's address), are retried.  ``unconfirmed`` is True when the
    connection was lost after the DATA command, so the server may have
    accepted the message: sending it again could deliver it twice.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        code: int | None = None,
        status: str | None = None,
        refused: list[Refusal] | None = None,
        rejected: list[str] | None = None,
        unconfirmed: bool = False,
        after_marker: bool = False,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code
        # Enhanced status code such as "5.1.1", when the reply carried one.
        self.status = status
        # Recipients refused at RCPT, each with its own reply.
        self.refused: list[Refusal] = refused or []
        # Recipients accepted at RCPT whose message the reply to DATA rejected.
        self.rejected: list[str] = rejected or []
        self.unconfirmed = unconfirmed
        # True when ``before_data`` ran, so the caller's submission marker is set.
        self.after_marker = after_marker


def message_id_for(request_id: int, *, domain: str) -> str:
    """Return the Message-ID of a request step: the same on every attempt."""
    return f"<request-{request_id}@{domain}>"


def sender_domain(vendor: VendorConfig) -> str:
    """Return the domain of the vendor's From address, for Message-IDs."""
    return vendor.from_address.rpartition("@")[2] or "localhost"


def build_message(
    rendered: RenderedMessage,
    *,
    vendor: VendorConfig,
    to: list[str],
    message_id: str,
    unsubscribe_token: str,
) -> EmailMessage:
    """Build a multipart text and HTML message with RFC 8058 unsubscribe headers.

    The vendor's postal address is appended to both bodies unless the
    template already contains it, so no message goes out without it.
    """
    message = EmailMessage()
    message["From"] = email.utils.formataddr((vendor.name, vendor.from_address))
    message["To"] = ", ".join(to)
    if vendor.reply_to:
        message["Reply-To"] = vendor.reply_to
    message["Subject"] = rendered.subject
    message["Message-ID"] = message_id
    message["Date"] = email.utils.formatdate(localtime=False)
    for name, value in tracking_headers(message_id).items():
        message[name] = value

    unsubscribe = unsubscribe_targets(vendor, unsubscribe_token)
    if unsubscribe:
        message["List-Unsubscribe"] = ", ".join(f"<{target}>" for target in unsubscribe)
    if vendor.unsubscribe_url:
        message["List-Unsubscribe-Post"] = ONE_CLICK

    message.set_content(_with_address(rendered.text, vendor.postal_address))
    if rendered.html:
        footer = f"<p>{_escape(vendor.postal_address)}</p>"
        html = rendered.html
        if _escape(vendor.postal_address) not in html:
            html = f"{html}\n{footer}"
        message.add_alternative(html, subtype="html")
    return message


def unsubscribe_targets(vendor: VendorConfig, token: str) -> list[str]:
    """Return the https and mailto unsubscribe URIs for one request."""
    targets = []
    if vendor.unsubscribe_url:
        targets.append(f"{vendor.unsubscribe_url.rstrip('/')}/{token}")
    if vendor.unsubscribe_mailto:
        targets.append(f"mailto:{vendor.unsubscribe_mailto}?subject=unsubscribe-{token}")
    return targets


def _with_address(text: str, address: str) -> str:
    if address in text:
        return text
    return f"{text.rstrip()}\n\n--\n{address}\n"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@final
class SenderStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Messages an SmtpSender has sent, and attempts that failed."""

    sent: int
    # Failed attempts, each in-call retry included.
    failed: int
    # Attempts repeated within a send after a failure before DATA.
    retries: int = 0


@final
class SendReceipt(msgspec.Struct, frozen=True, kw_only=True):
    """The server's 250 reply to an accepted message, and the recipients it covers."""

    reply: str
    # The provider's own id for the message when the reply names one (SES, SendGrid).
    provider_id: str | None
    # Recipients the server accepted at RCPT, and those it refused there.
    accepted: list[str] = msgspec.field(default_factory=list)
    refused: list[Refusal] = msgspec.field(default_factory=list)


@final
class SmtpSender:
    """Sends messages through one SMTP server; one connection per message."""

    def __init__(
        self,
        config: SmtpConfig,
        *,
        tls_context: ssl.SSLContext | None = None,
        sleep: Callable[[float], Awaitable[None]] = trio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._tls_context = tls_context
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._sent = 0
        self._failed = 0
        self._retries = 0

    def __repr__(self) -> str:
        return (
            f"<SmtpSender {self.config.host}:{self.config.port} {self.config.security} "
            f"sent={self._sent} failed={self._failed}>"
        )

    def statistics(self) -> SenderStatistics:
        return SenderStatistics(sent=self._sent, failed=self._failed, retries=self._retries)

    async def send(
        self,
        message: EmailMessage,
        *,
        before_data: Callable[[], Awaitable[object]] | None = None,
    ) -> SendReceipt:
        """Send ``message`` to the addresses in its To header and return the server's reply.

        ``before_data`` runs on Trio after at least one recipient was
        accepted and before the DATA command.  An exception from it ends the
        attempt without sending and is raised here.  Failures before DATA are
        retried by ``config.retry`` (see :func:`classify_send_error`).
        Raises SendError, which is permanent for 5xx replies and unconfirmed
        for a connection lost after DATA.
        """

        def count(_error: Exception, _attempt: int, _delay: float) -> None:
            self._retries += 1

        return await retry_call(
            lambda: self._send_once(message, before_data),
            policy=self.config.retry,
            what=f"SMTP to {self.config.host}:{self.config.port}",
            classify=classify_send_error,
            rng=self._rng,
            sleep=self._sleep,
            on_retry=count,
            # Cancelling an attempt after DATA would lose its outcome; the
            # per-command timeout of aiosmtplib bounds each attempt instead.
            cancel_slow_attempts=False,
        )

    async def _send_once(
        self, message: EmailMessage, before_data: Callable[[], Awaitable[object]] | None
    ) -> SendReceipt:
        # Imported on first send: an idle daemon need not load asyncio's SMTP stack.
        import trio_asyncio

        # Errors are caught on the asyncio side and raised here, because
        # trio-asyncio's nurseries would wrap them in an ExceptionGroup.
        async with trio_asyncio.open_loop():
            attempt = await trio_asyncio.aio_as_trio(self._send_asyncio)(message, before_data)
        if attempt.callback_error is not None:
            self._failed += 1
            raise attempt.callback_error
        if attempt.failure is None and attempt.accepted:
            self._sent += 1
            return SendReceipt(
                reply=attempt.reply,
                provider_id=provider_id_from_reply(attempt.reply),
                accepted=attempt.accepted,
                refused=attempt.refused,
            )
        self._failed += 1
        raise self._send_error(attempt)

    def _send_error(self, attempt: _Attempt) -> SendError:
        import aiosmtplib

        where = f"{self.config.host}:{self.config.port}"
        failure = attempt.failure
        if failure is None:
            return _refused_error(attempt.refused)
        if attempt.stage == "data" and isinstance(failure, aiosmtplib.SMTPDataError):
            # An explicit reply to DATA: the server did not take the message.
            error = _response_error(failure, rejected=attempt.accepted)
            error.refused = attempt.refused
            error.after_marker = True
        elif attempt.stage == "data":
            error = SendError(
                f"SMTP to {where} failed after the DATA command: {failure}; the server may have "
                "accepted the message, so it is not sent again",
                permanent=False,
                unconfirmed=True,
                after_marker=True,
            )
        elif isinstance(failure, aiosmtplib.SMTPResponseException):
            error = SendError(
                f"SMTP server {where} replied {failure.code} {failure.message}; check the [smtp] "
                "settings (will retry)",
                permanent=False,
                code=failure.code,
            )
        else:
            error = SendError(f"SMTP to {where} failed: {failure}; will retry", permanent=False)
        error.__cause__ = failure
        return error

    async def _send_asyncio(
        self, message: EmailMessage, before_data: Callable[[], Awaitable[object]] | None
    ) -> _Attempt:
        import aiosmtplib
        import trio_asyncio
        from aiosmtplib.email import extract_recipients, extract_sender, flatten_message

        config = self.config
        attempt = _Attempt()
        client = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            username=config.username or None,
            password=config.password or None,
            use_tls=config.security == "tls",
            start_tls=config.security == "starttls",
            tls_context=self._tls_context,
            timeout=config.timeout,
        )
        try:
            await client.connect()
            await client.mail(extract_sender(message) or "")
            for address in extract_recipients(message):
                try:
                    await client.rcpt(address)
                except aiosmtplib.SMTPRecipientRefused as refused:
                    attempt.refused.append(_refusal(address, refused))
                else:
                    attempt.accepted.append(address)
            if not attempt.accepted:
                return attempt
            if before_data is not None:
                try:
                    await trio_asyncio.trio_as_aio(before_data)()
                except Exception as error:  # raised again on the Trio side
                    attempt.callback_error = error
                    return attempt
            attempt.stage = "data"
            response = await client.data(flatten_message(message))
            attempt.reply = response.message
        except (aiosmtplib.SMTPException, OSError) as error:
            attempt.failure = error
        finally:
            await _close(client)
        return attempt


@final
class _Attempt:
    """The progress of one SMTP connection, filled on the asyncio side and read on Trio."""

    def __init__(self) -> None:
        # "envelope" until the DATA command is sent, then "data".
        self.stage: Literal["envelope", "data"] = "envelope"
        self.accepted: list[str] = []
        self.refused: list[Refusal] = []
        self.reply = ""
        self.failure: Exception | None = None
        self.callback_error: Exception | None = None


async def _close(client: aiosmtplib.SMTP) -> None:
    import aiosmtplib

    if not client.is_connected:
        return
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        # The message's fate is settled by now; a failed QUIT changes nothing.
        client.close()


def classify_send_error(error: Exception) -> Failure | None:
    """Describe a failed send for the in-call retry; None for errors that are not a SendError.

    Retryable only when the failure is known to come before DATA and says
    nothing against the message or its addresses: a connection failure or
    timeout, or a 4xx reply before DATA with no recipient refused for good.
    A 5xx reply to AUTH or MAIL FROM is a settings problem that repeating at
    once does not fix, so the job-level retry takes it.
    """
    if not isinstance(error, SendError):
        return None

    before_data = not (error.permanent or error.unconfirmed or error.after_marker)
    temporary = error.code is None or 400 <= error.code < 500
    bounced = any(refusal.permanent for refusal in error.refused)
    return Failure(retryable=before_data and temporary and not bounced, status=error.code)


def _status_of(reply: str) -> str | None:
    # aiosmtplib keeps the server's reply text, which starts with the
    # enhanced status code when the server sends one.
    first = reply.split(" ", 1)[0]
    if first.count(".") == 2 and first[0] in "245":
        return first
    return None


def _refusal(address: str, error: aiosmtplib.SMTPResponseException) -> Refusal:
    reply = str(error.message)
    return Refusal(address=address, code=error.code, status=_status_of(reply), reply=reply)


def _refused_error(refused: list[Refusal]) -> SendError:
    """Return the error for a message whose every recipient was refused at RCPT."""
    if not refused:
        return SendError(
            "the message has no recipients in its To header; nothing was sent", permanent=True
        )
    first = refused[0]
    # Retried while any refusal is temporary; the permanent ones are bounces either way.
    permanent = all(refusal.permanent for refusal in refused)
    return SendError(
        f"SMTP server rejected every recipient: {first.code} {first.reply}",
        permanent=permanent,
        code=first.code,
        status=first.status,
        refused=refused,
    )


def _response_error(error: aiosmtplib.SMTPResponseException, *, rejected: list[str]) -> SendError:
    code = error.code
    reply = str(error.message)
    return SendError(
        f"SMTP server replied {code} {reply}",
        permanent=500 <= code < 600,
        code=code,
        status=_status_of(reply),
        rejected=rejected,
    )
