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
- ``disconnect``: close the connection after the message, without a reply.
- ``slow``: wait ``slow_seconds`` before accepting.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import ssl
from collections.abc import Iterable
from email.message import EmailMessage
from typing import Final, Literal, final

import msgspec
import trio

Outcome = Literal["ok", "temporary", "reject", "disconnect", "slow"]
# Far above a review request; larger messages are rejected with 552.
MAX_MESSAGE_BYTES: Final = 1024 * 1024
MAX_LINE_BYTES: Final = 1000


@final
class ReceivedMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One accepted message: the envelope and the raw RFC 5322 bytes."""

    sender: str
    recipients: list[str]
    data: bytes

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
    ) -> None:
        self.messages: list[ReceivedMessage] = []
        self.script: list[Outcome] = list(script)
        self.slow_seconds = slow_seconds
        # With a context, STARTTLS is offered, or TLS starts at once when implicit_tls.
        self.tls_context = tls_context
        self.implicit_tls = implicit_tls
        # (username, password) that AUTH PLAIN accepts; None offers no AUTH.
        self.credentials = credentials
        self.authenticated: list[str] = []
        self.port = 0
        self._transactions = 0

    def __repr__(self) -> str:
        return f"<SmtpSink port={self.port} received={len(self.messages)}>"

    def statistics(self) -> dict[str, int]:
        return {"received": len(self.messages), "transactions": self._transactions}

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on 127.0.0.1 with an ephemeral port, reported through ``task_status``."""
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
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
                if outcome == "reject":
                    await stream.send_all(b"550 5.1.1 mailbox does not exist\r\n")
                else:
                    recipients.append(_address(line))
                    await stream.send_all(b"250 2.1.5 OK\r\n")
            elif verb == "DATA" and sender is not None and recipients:
                await stream.send_all(b"354 end with <CRLF>.<CRLF>\r\n")
                data = await lines.read_data()
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

    async def _finish(
        self,
        stream: trio.abc.Stream,
        outcome: Outcome | None,
        sender: str,
        recipients: list[str],
        data: bytes,
    ) -> None:
        if outcome == "disconnect":
            raise _Disconnect
        if outcome == "temporary":
            await stream.send_all(b"451 4.3.0 try again later\r\n")
            return
        if len(data) > MAX_MESSAGE_BYTES:
            await stream.send_all(b"552 5.3.4 message too big\r\n")
            return
        if outcome == "slow":
            await trio.sleep(self.slow_seconds)
        self.messages.append(ReceivedMessage(sender=sender, recipients=recipients, data=data))
        await stream.send_all(b"250 2.0.0 accepted\r\n")

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
