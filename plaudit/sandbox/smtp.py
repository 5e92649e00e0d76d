"""A loopback SMTP sink: records every message it accepts and fails on a script.

It speaks the subset of SMTP (RFC 5321) that a submission client uses:
EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP and QUIT, plus STARTTLS (RFC 3207)
or TLS from the first byte when given a certificate, and AUTH PLAIN
(RFC 4954) when given credentials.
Each DATA transaction takes the next scripted outcome, then ``ok`` once the
script is used up:

- ``ok``: accept (250).
- ``temporary``: reply 451 4.3.0 to the message.
- ``reject``: reply 550 5.1.1 to RCPT (the address does not exist).
- ``temporary_rcpt``: reply 450 4.2.1 to RCPT (the mailbox is busy).
- ``policy_rcpt``: reply 550 5.7.1 to RCPT (the receiver rejects the sender).
- ``disconnect_rcpt``: close the connection at RCPT, before any message data.
- ``reject_data``: reply ``data_reply`` (a 5xx) after the message.
- ``disconnect``: close the connection after the message, without a reply.
  The message is kept in ``dropped``: a real server may have queued it.
- ``slow``: wait ``slow_seconds`` before accepting.

``refusals`` maps single addresses to the reply RCPT gets for them whatever
the script lists, so one address of an envelope can be refused while the
others are accepted.

``reply_style`` shapes the 250 reply to an accepted message the way a
provider's submission server does, so a test can check that Plaudit keeps
the provider's id for the message:

- ``plain``: ``250 2.0.0 accepted``, no id.
- ``ses``: ``250 Ok <id>`` with an Amazon SES style id.
- ``queued``: ``250 Ok: queued as <id>`` with a SendGrid style queue id.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import secrets
import ssl
import uuid
from collections.abc import Iterable
from email.message import EmailMessage
from typing import Final, Literal, final, get_args

import msgspec
import trio

Outcome = Literal[
    "ok",
    "temporary",
    "reject",
    "temporary_rcpt",
    "policy_rcpt",
    "disconnect_rcpt",
    "reject_data",
    "disconnect",
    "slow",
]
OUTCOMES: Final[tuple[Outcome, ...]] = get_args(Outcome)
# Replies to RCPT for the outcomes that refuse every recipient.
_RCPT_REPLIES: Final[dict[Outcome, bytes]] = {
    "reject": b"550 5.1.1 mailbox does not exist\r\n",
    "temporary_rcpt": b"450 4.2.1 mailbox busy, try again later\r\n",
    "policy_rcpt": b"550 5.7.1 message refused by the receiver's policy\r\n",
}
ReplyStyle = Literal["plain", "ses", "queued"]
# Far above a review request; larger messages are rejected with 552.
MAX_MESSAGE_BYTES: Final = 1024 * 1024
MAX_LINE_BYTES: Final = 1000


@final
class ReceivedMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One accepted message: the envelope and the raw RFC 5322 bytes."""

    sender: str
    recipients: list[str]
    data: bytes
    # The id the 250 reply named, as ``reply_style`` chose it; None for plain replies.
    provider_id: str | None = None

    def parsed(self) -> EmailMessage:
        message = email.message_from_bytes(self.data, policy=email.policy.default)
        if not isinstance(message, EmailMessage):
            raise TypeError("the default policy always builds an EmailMessage")
        return message


@final
class SmtpSink:
    """An SMTP server on loopback for tests and ``plaudit demo``."""

    def __init__(
        self,
        *,
        script: Iterable[Outcome] = (),
        slow_seconds: float = 5.0,
        tls_context: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        credentials: tuple[str, str] | None = None,
        reply_style: ReplyStyle = "plain",
        refusals: dict[str, str] | None = None,
        data_reply: str = "554 5.7.1 message content rejected",
    ) -> None:
        self.messages: list[ReceivedMessage] = []
        # Messages whose connection was dropped before the reply to DATA.
        self.dropped: list[ReceivedMessage] = []
        # Lower-cased address -> reply line such as "550 5.1.1 no such user".
        self.refusals = {address.lower(): reply for address, reply in (refusals or {}).items()}
        self.data_reply = data_reply
        self.script: list[Outcome] = list(script)
        self.slow_seconds = slow_seconds
        # With a context, STARTTLS is offered, or TLS starts at once when implicit_tls.
        self.tls_context = tls_context
        self.implicit_tls = implicit_tls
        # (username, password) that AUTH PLAIN accepts; None offers no AUTH.
        self.credentials = credentials
        self.authenticated: list[str] = []
        self.reply_style: ReplyStyle = reply_style
        self.port = 0
        self._transactions = 0
        # Messages whose data arrived in full, counted before the reply to DATA.
        self._data_received = 0

    def __repr__(self) -> str:
        return f"<SmtpSink port={self.port} received={len(self.messages)}>"

    def statistics(self) -> dict[str, int]:
        return {
            "received": len(self.messages),
            "dropped": len(self.dropped),
            "transactions": self._transactions,
            "data_received": self._data_received,
        }

    async def serve(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``host`` (a loopback address) and ``port``, 0 for an ephemeral one.

        The port actually bound is reported through ``task_status``.
        """
        listeners = await trio.open_tcp_listeners(port, host=host)
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._session, listeners)
            task_status.started(self.port)

    def _next_outcome(self) -> Outcome:
        self._transactions += 1
        return self.script.pop(0) if self.script else "ok"

    async def _session(self, socket_stream: trio.SocketStream) -> None:
        stream: trio.abc.Stream = socket_stream
        try:
            if self.implicit_tls:
                stream = await self._start_tls(stream)
            await stream.send_all(b"220 sandbox.invalid ESMTP plaudit sandbox\r\n")
            await self._dialogue(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, _Disconnect):
            pass
        finally:
            await socket_stream.aclose()

    async def _start_tls(self, stream: trio.abc.Stream) -> trio.SSLStream[trio.abc.Stream]:
        if self.tls_context is None:
            raise _Disconnect
        tls = trio.SSLStream(stream, self.tls_context, server_side=True)
        await tls.do_handshake()
        return tls

    def _extensions(self, *, encrypted: bool) -> bytes:
        lines = ["sandbox.invalid", "8BITMIME"]
        if self.tls_context is not None and not encrypted:
            lines.append("STARTTLS")
        if self.credentials is not None:
            lines.append("AUTH PLAIN")
        reply = "".join(f"250-{line}\r\n" for line in lines[:-1]) + f"250 {lines[-1]}\r\n"
        return reply.encode()

    async def _dialogue(self, stream: trio.abc.Stream) -> None:
        lines = _LineReader(stream)
        encrypted = isinstance(stream, trio.SSLStream)
        sender: str | None = None
        recipients: list[str] = []
        outcome: Outcome | None = None
        while True:
            line = await lines.read()
            verb = line[:4].upper()
            if verb in ("EHLO", "HELO"):
                await stream.send_all(self._extensions(encrypted=encrypted))
            elif line.upper() == "STARTTLS" and self.tls_context is not None and not encrypted:
                await stream.send_all(b"220 2.0.0 ready to start TLS\r\n")
                # RFC 3207: the client starts over with EHLO on the new stream.
                await self._dialogue(await self._start_tls(stream))
                return
            elif verb == "AUTH":
                await stream.send_all(self._authenticate(line))
            elif verb == "MAIL" and self.credentials is not None and not self.authenticated:
                await stream.send_all(b"530 5.7.0 authentication required\r\n")
            elif verb == "MAIL":
                sender, recipients, outcome = _address(line), [], self._next_outcome()
                await stream.send_all(b"250 2.1.0 OK\r\n")
            elif verb == "RCPT":
                await stream.send_all(self._rcpt_reply(outcome, _address(line), recipients))
            elif verb == "DATA" and sender is not None and recipients:
                await stream.send_all(b"354 end with <CRLF>.<CRLF>\r\n")
                data = await lines.read_data()
                self._data_received += 1
                await self._finish(stream, outcome, sender, recipients, data)
                sender, recipients, outcome = None, [], None
            elif verb == "RSET":
                sender, recipients, outcome = None, [], None
                await stream.send_all(b"250 OK\r\n")
            elif verb == "NOOP":
                await stream.send_all(b"250 OK\r\n")
            elif verb == "QUIT":
                await stream.send_all(b"221 bye\r\n")
                return
            else:
                await stream.send_all(b"503 5.5.1 bad sequence of commands\r\n")

    def _rcpt_reply(self, outcome: Outcome | None, address: str, recipients: list[str]) -> bytes:
        refusal = self.refusals.get(address.lower())
        if refusal is not None:
            return f"{refusal}\r\n".encode()
        if outcome == "disconnect_rcpt":
            raise _Disconnect
        if outcome is not None and outcome in _RCPT_REPLIES:
            return _RCPT_REPLIES[outcome]
        recipients.append(address)
        return b"250 2.1.5 OK\r\n"

    async def _finish(
        self,
        stream: trio.abc.Stream,
        outcome: Outcome | None,
        sender: str,
        recipients: list[str],
        data: bytes,
    ) -> None:
        if outcome == "disconnect":
            self.dropped.append(ReceivedMessage(sender=sender, recipients=recipients, data=data))
            raise _Disconnect
        if outcome == "reject_data":
            await stream.send_all(f"{self.data_reply}\r\n".encode())
            return
        if outcome == "temporary":
            await stream.send_all(b"451 4.3.0 try again later\r\n")
            return
        if len(data) > MAX_MESSAGE_BYTES:
            await stream.send_all(b"552 5.3.4 message too big\r\n")
            return
        if outcome == "slow":
            await trio.sleep(self.slow_seconds)
        provider_id = _provider_id(self.reply_style)
        self.messages.append(
            ReceivedMessage(
                sender=sender, recipients=recipients, data=data, provider_id=provider_id
            )
        )
        await stream.send_all(_accepted_reply(self.reply_style, provider_id))

    def _authenticate(self, line: str) -> bytes:
        parts = line.split()
        if self.credentials is None or len(parts) != 3 or parts[1].upper() != "PLAIN":
            return b"504 5.5.4 only AUTH PLAIN with an initial response is supported\r\n"
        try:
            _authzid, username, password = base64.b64decode(parts[2]).decode().split("\0")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return b"501 5.5.2 cannot decode the response\r\n"
        if (username, password) != self.credentials:
            return b"535 5.7.8 authentication credentials invalid\r\n"
        self.authenticated.append(username)
        return b"235 2.7.0 authentication successful\r\n"


class _Disconnect(Exception):
    pass


def _provider_id(style: ReplyStyle) -> str | None:
    if style == "ses":
        # 16 hex digits, a UUID and a six-digit suffix, as SES message ids look.
        return f"{secrets.token_hex(8)}-{uuid.uuid4()}-000000"
    if style == "queued":
        return f"{secrets.token_hex(6)[:11]}.{secrets.token_hex(2)[:3]}.{secrets.token_hex(3)}"
    return None


def _accepted_reply(style: ReplyStyle, provider_id: str | None) -> bytes:
    if style == "ses":
        return f"250 Ok {provider_id}\r\n".encode()
    if style == "queued":
        return f"250 Ok: queued as {provider_id}\r\n".encode()
    return b"250 2.0.0 accepted\r\n"


def _address(line: str) -> str:
    start, end = line.find("<"), line.find(">")
    return line[start + 1 : end] if 0 <= start < end else ""


@final
class _LineReader:
    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def _line(self) -> bytes:
        while b"\r\n" not in self._buffer:
            if len(self._buffer) > MAX_MESSAGE_BYTES + MAX_LINE_BYTES:
                raise _Disconnect
            chunk = await self._stream.receive_some(65536)
            if not chunk:
                raise _Disconnect
            self._buffer += chunk
        end = self._buffer.index(b"\r\n")
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        return line

    async def read(self) -> str:
        return (await self._line()).decode("utf-8", errors="replace")

    async def read_data(self) -> bytes:
        """Read the message up to the lone dot, undoing dot-stuffing."""
        lines: list[bytes] = []
        size = 0
        while True:
            line = await self._line()
            if line == b".":
                return b"\r\n".join(lines) + b"\r\n"
            size += len(line)
            if size <= MAX_MESSAGE_BYTES:
                lines.append(line[1:] if line.startswith(b".") else line)
