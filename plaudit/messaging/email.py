"""Review-request e-mail: building the MIME message and sending it over SMTP.

aiosmtplib runs on asyncio; each send opens a trio-asyncio loop around it, so
the rest of Plaudit stays on Trio.  SMTP replies are sorted by class:
4xx and connection failures are temporary (the job is retried with the same
Message-ID), 5xx is permanent (recorded as a bounce, never retried).
"""

from __future__ import annotations

import email.utils
import logging
import ssl
from email.message import EmailMessage
from typing import TYPE_CHECKING, Final, final

import msgspec

from plaudit.config.model import SmtpConfig, VendorConfig
from plaudit.errors import PlauditError
from plaudit.messaging.templates import RenderedMessage

if TYPE_CHECKING:
    import aiosmtplib

log = logging.getLogger(__name__)

# RFC 8058: the value receivers POST to the List-Unsubscribe https URI.
ONE_CLICK: Final = "List-Unsubscribe=One-Click"


class SendError(PlauditError):
    """An SMTP send failed.

    ``permanent`` is True only when the server rejected the recipients or the
    message with a 5xx reply, which is a bounce.  Other failures, including a
    5xx reply to AUTH or MAIL FROM (a problem of the [smtp] settings, not of
    the couple's address), are retried.
    """

    def __init__(self, message: str, *, permanent: bool, code: int | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code
        # Enhanced status code such as "5.1.1", when the reply carried one.
        self.status: str | None = None


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
    failed: int


@final
class SmtpSender:
    """Sends messages through one SMTP server; one connection per message."""

    def __init__(self, config: SmtpConfig, *, tls_context: ssl.SSLContext | None = None) -> None:
        self.config = config
        self._tls_context = tls_context
        self._sent = 0
        self._failed = 0

    def __repr__(self) -> str:
        return (
            f"<SmtpSender {self.config.host}:{self.config.port} {self.config.security} "
            f"sent={self._sent} failed={self._failed}>"
        )

    def statistics(self) -> SenderStatistics:
        return SenderStatistics(sent=self._sent, failed=self._failed)

    async def send(self, message: EmailMessage) -> None:
        """Send ``message``; raises SendError, permanent for 5xx replies."""
        # Imported on first send: an idle daemon need not load asyncio's SMTP stack.
        import aiosmtplib
        import trio_asyncio

        # The error is caught on the asyncio side and raised here, because
        # trio-asyncio's nurseries would wrap it in an ExceptionGroup.
        async with trio_asyncio.open_loop():
            failure = await trio_asyncio.aio_as_trio(self._send_asyncio)(message)
        if failure is None:
            self._sent += 1
            return

        self._failed += 1
        if isinstance(failure, aiosmtplib.SMTPRecipientsRefused):
            # Every recipient refused; the first reply stands for all of them.
            raise _response_error(failure.recipients[0]) from failure
        if isinstance(failure, aiosmtplib.SMTPRecipientRefused | aiosmtplib.SMTPDataError):
            raise _response_error(failure) from failure
        if isinstance(failure, aiosmtplib.SMTPResponseException):
            raise SendError(
                f"SMTP server {self.config.host}:{self.config.port} replied {failure.code} "
                f"{failure.message}; check the [smtp] settings (will retry)",
                permanent=False,
                code=failure.code,
            ) from failure
        raise SendError(
            f"SMTP to {self.config.host}:{self.config.port} failed: {failure}; will retry",
            permanent=False,
        ) from failure

    async def _send_asyncio(self, message: EmailMessage) -> Exception | None:
        import aiosmtplib

        config = self.config
        try:
            await aiosmtplib.send(
                message,
                hostname=config.host,
                port=config.port,
                username=config.username or None,
                password=config.password or None,
                use_tls=config.security == "tls",
                start_tls=config.security == "starttls",
                tls_context=self._tls_context,
                timeout=config.timeout,
            )
        except (aiosmtplib.SMTPException, OSError) as error:
            return error
        return None


def _response_error(error: aiosmtplib.SMTPResponseException) -> SendError:
    code = error.code
    permanent = 500 <= code < 600
    # aiosmtplib reports a refused recipient with the server's reply text,
    # which starts with the enhanced status code when the server sends one.
    reply = str(error.message)
    send_error = SendError(f"SMTP server replied {code} {reply}", permanent=permanent, code=code)
    first = reply.split(" ", 1)[0]
    if first.count(".") == 2 and first[0] in "245":
        send_error.status = first
    return send_error
