"""One-click unsubscribe (RFC 8058): link tokens, the opt-out and its web page.

A token is ``{request id}.{MAC}``, where the MAC is an HMAC-SHA256 over the
request id and the couple id, keyed with 32 random bytes kept in
``unsubscribe.key`` in the state directory.  Without the key, a token for
another couple's request cannot be made, and checking one needs only the
request row.  Tokens issued before the key existed were random strings
stored on the request row; those are still honoured by lookup.

``GET /unsubscribe/{token}`` only shows a page with a confirmation button,
because mail scanners and link previews follow links.  ``POST`` with the body
``List-Unsubscribe=One-Click`` (what mailbox providers send, and what the
page's form sends) suppresses every address of the couple, so the next send
is skipped, and cancels the couple's scheduled steps in campaigns that stop
on ``unsubscribe``.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import hmac
import html
import logging
import os
import re
import secrets
import urllib.parse
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Final, final

import msgspec

from plaudit.config.model import Config
from plaudit.errors import ConfigError, JournalError, PlauditError
from plaudit.journal import AsyncJournal, Tx
from plaudit.messaging.consent import ConsentSource, record_consent
from plaudit.messaging.couples import load_couple
from plaudit.messaging.deliverability.store import record_event, suppression_of
from plaudit.messaging.deliverability.suppression import MessageEvent, SuppressionPolicy
from plaudit.metrics import UNSUBSCRIBE_REQUESTS

log = logging.getLogger(__name__)

KEY_FILE: Final = "unsubscribe.key"
KEY_BYTES: Final = 32
# 128 bits of MAC: forging a token means guessing this.
MAC_BYTES: Final = 16
PATH_PREFIX: Final = "/unsubscribe/"
# RFC 8058 section 3.1: the only key/value pair a one-click POST carries.
ONE_CLICK_KEY: Final = "List-Unsubscribe"
ONE_CLICK_VALUE: Final = "One-Click"
# A one-click body is 26 bytes; a multipart one a few hundred.
MAX_BODY_BYTES: Final = 8 * 1024
TEXT_HTML: Final = "text/html; charset=utf-8"
# Longer strings are rejected unread; stored random tokens are 32 characters.
_MAX_TOKEN_CHARS: Final = 128
# SQLite integers are 64-bit signed; a larger id cannot exist.
_MAX_REQUEST_ID: Final = 2**63 - 1
_SIGNED_TOKEN = re.compile(r"(\d{1,19})\.([A-Za-z0-9_-]{22})")
_RANDOM_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")


class UnsubscribeKeyError(PlauditError):
    """The unsubscribe key file cannot be read or created."""


def load_or_create_key(state_dir: Path) -> bytes:
    """Return the key in ``state_dir/unsubscribe.key``, creating it (mode 0600) if absent.

    Raises UnsubscribeKeyError when the file cannot be read or written or has
    the wrong length.  Replacing the file makes every link already sent invalid.
    """
    path = state_dir / KEY_FILE
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key(path)
    except OSError as error:
        raise UnsubscribeKeyError(
            f"cannot create {path}: {error.strerror}; check that the state directory is writable"
        ) from error
    key = secrets.token_bytes(KEY_BYTES)
    with os.fdopen(descriptor, "wb") as file:
        file.write(key)
        file.flush()
        os.fsync(file.fileno())
    log.info("unsubscribe.key_created", extra={"path": str(path)})
    return key


def _read_key(path: Path) -> bytes:
    try:
        key = path.read_bytes()
    except OSError as error:
        raise UnsubscribeKeyError(
            f"cannot read {path}: {error.strerror}; check its owner and mode"
        ) from error
    if len(key) != KEY_BYTES:
        raise UnsubscribeKeyError(
            f"{path} has {len(key)} bytes, expected {KEY_BYTES}; delete it to create a new key "
            "(links in messages already sent then stop working)"
        )
    return key


@final
class UnsubscribeTokens:
    """Makes and checks the signed tokens of unsubscribe links."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < KEY_BYTES:
            raise ValueError(f"an unsubscribe key needs {KEY_BYTES} bytes, got {len(key)}")
        self._key = key

    def __repr__(self) -> str:
        return "<UnsubscribeTokens key=***>"

    def token_for(self, request_id: int, couple_id: int) -> str:
        """Return the token of ``request_id``'s links; the same on every call."""
        mac = base64.urlsafe_b64encode(self._mac(request_id, couple_id)).rstrip(b"=")
        return f"{request_id}.{mac.decode('ascii')}"

    def matches(self, token: str, couple_id: int) -> bool:
        """Return True when ``token`` was made for its request id and ``couple_id``."""
        found = _SIGNED_TOKEN.fullmatch(token)
        if found is None:
            return False
        expected = self.token_for(int(found.group(1)), couple_id)
        return hmac.compare_digest(expected.encode("ascii"), token.encode("ascii"))

    def _mac(self, request_id: int, couple_id: int) -> bytes:
        message = f"plaudit-unsubscribe-v1\0{request_id}\0{couple_id}".encode("ascii")
        return hmac.new(self._key, message, hashlib.sha256).digest()[:MAC_BYTES]


@final
class Unsubscribed(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of one accepted unsubscribe."""

    request_id: int
    couple_id: int
    # Addresses newly put on the suppression list; empty when all already were.
    suppressed: list[str]
    # Scheduled requests cancelled.
    stopped: int


def find_request(tx: Tx, tokens: UnsubscribeTokens, token: str) -> tuple[int, int] | None:
    """Return ``(request id, couple id)`` for a valid token, None for any other string."""
    if len(token) > _MAX_TOKEN_CHARS:
        return None
    signed = _SIGNED_TOKEN.fullmatch(token)
    if signed is not None and int(signed.group(1)) <= _MAX_REQUEST_ID:
        request_id = int(signed.group(1))
        row = tx.execute("SELECT couple_id FROM requests WHERE id = ?", (request_id,)).fetchone()
        if row is not None and tokens.matches(token, int(row[0])):
            return request_id, int(row[0])
    if _RANDOM_TOKEN.fullmatch(token) is None:
        return None
    row = tx.execute(
        "SELECT id, couple_id FROM requests WHERE unsubscribe_token = ?", (token,)
    ).fetchone()
    return None if row is None else (int(row[0]), int(row[1]))


def unsubscribe(
    tx: Tx,
    request_id: int,
    couple_id: int,
    *,
    stop_campaigns: Collection[str],
    policy: SuppressionPolicy,
) -> Unsubscribed:
    """Suppress the couple's addresses and cancel steps of ``stop_campaigns``.

    Repeating it changes nothing: suppressed addresses stay as they are and
    the event is stored once per request and address.
    """
    row = tx.execute(
        "SELECT message_id, provider FROM requests WHERE id = ?", (request_id,)
    ).fetchone()
    message_id, provider = (row[0], row[1]) if row is not None else (None, None)
    couple = load_couple(tx, couple_id)
    addresses = couple.emails if couple is not None else []

    suppressed = []
    for address in addresses:
        if suppression_of(tx, address) is not None:
            continue
        event = MessageEvent(
            address=address,
            kind="unsubscribe",
            at=tx.now,
            provider=provider or "smtp",
            message_id=message_id,
        )
        decision = record_event(
            tx, event, policy=policy, provider_event_id=f"unsubscribe:{request_id}:{address}"
        )
        if decision is not None and decision.suppress:
            suppressed.append(address)
    if couple is not None:
        source = ConsentSource(kind="web_form", detail=f"unsubscribe link of request {request_id}")
        record_consent(tx, couple_id, "email", granted=False, source=source, explicit=True)

    stopped = 0
    for campaign in sorted(stop_campaigns):
        cursor = tx.execute(
            "UPDATE requests SET state = 'stopped', last_error = 'stopped: unsubscribe',"
            " updated_at = ? WHERE couple_id = ? AND campaign = ? AND state = 'scheduled'",
            (tx.now, couple_id, campaign),
        )
        stopped += cursor.rowcount
    return Unsubscribed(
        request_id=request_id, couple_id=couple_id, suppressed=suppressed, stopped=stopped
    )


def is_one_click(content_type: str, body: bytes) -> bool:
    """Return True when ``body`` carries ``List-Unsubscribe=One-Click``.

    RFC 8058 allows ``application/x-www-form-urlencoded`` and
    ``multipart/form-data``; a body without a content type is read as the former.
    """
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "multipart/form-data":
        return _multipart_one_click(content_type, body)
    if media not in ("", "application/x-www-form-urlencoded"):
        return False
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return False
    fields = urllib.parse.parse_qsl(text.strip(), keep_blank_values=True)
    return (ONE_CLICK_KEY, ONE_CLICK_VALUE) in fields


def _multipart_one_click(content_type: str, body: bytes) -> bool:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        return False
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") != ONE_CLICK_KEY:
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes) and payload.strip() == ONE_CLICK_VALUE.encode():
            return True
    return False


@final
class PageAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """An HTTP response of the unsubscribe route."""

    status: int
    outcome: str
    content_type: str
    text: str


@final
class UnsubscribeStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Unsubscribes accepted and requests rejected by the pages since start."""

    unsubscribed: int
    rejected: int


@final
class UnsubscribePages:
    """Serves ``/unsubscribe/{token}``: a confirmation page, and the opt-out on POST."""

    def __init__(
        self,
        journal: AsyncJournal,
        tokens: UnsubscribeTokens,
        settings: Callable[[], Config],
    ) -> None:
        self._journal = journal
        self._tokens = tokens
        # The daemon's current config, so a reload changes vendor name and campaigns.
        self._settings = settings
        self._unsubscribed = 0
        self._rejected = 0

    def __repr__(self) -> str:
        return f"<UnsubscribePages unsubscribed={self._unsubscribed} rejected={self._rejected}>"

    def statistics(self) -> UnsubscribeStatistics:
        return UnsubscribeStatistics(unsubscribed=self._unsubscribed, rejected=self._rejected)

    async def answer(self, method: str, path: str, content_type: str, body: bytes) -> PageAnswer:
        """Return the response to one request for a path under ``/unsubscribe/``."""
        token = path.removeprefix(PATH_PREFIX)
        answer = await self._answer(method, token, content_type, body)
        UNSUBSCRIBE_REQUESTS.labels(outcome=answer.outcome).inc()
        if answer.status >= 400:
            self._rejected += 1
        return answer

    async def _answer(self, method: str, token: str, content_type: str, body: bytes) -> PageAnswer:
        if method not in ("GET", "POST"):
            return _text(405, "method_not_allowed", "method not allowed; use GET or POST\n")
        if method == "POST" and not is_one_click(content_type, body):
            return _text(
                400,
                "malformed",
                f"the body must be {ONE_CLICK_KEY}={ONE_CLICK_VALUE} (RFC 8058)\n",
            )
        try:
            found = await self._journal.transaction(
                lambda tx: find_request(tx, self._tokens, token)
            )
            if found is None:
                return self._page(404, "not_found", _INVALID_LINK)
            if method == "GET":
                return self._page(200, "confirm", _confirm_form())
            outcome = await self._journal.transaction(lambda tx: self._unsubscribe(tx, *found))
        except JournalError:
            log.exception("unsubscribe.store_failed")
            return _text(503, "unavailable", "cannot record the request now; try again later\n")
        self._unsubscribed += 1
        log.info(
            "unsubscribe.accepted",
            extra={
                "request": outcome.request_id,
                "couple": outcome.couple_id,
                "suppressed": len(outcome.suppressed),
                "stopped": outcome.stopped,
            },
        )
        return self._page(200, "unsubscribed", _DONE)

    def _unsubscribe(self, tx: Tx, request_id: int, couple_id: int) -> Unsubscribed:
        config = self._settings()
        campaigns = [c.name for c in config.campaigns if "unsubscribe" in c.stop_on]
        policy = SuppressionPolicy(
            soft_bounce_limit=config.deliverability.soft_bounce_limit,
            soft_bounce_window_seconds=config.deliverability.soft_bounce_window,
        )
        return unsubscribe(tx, request_id, couple_id, stop_campaigns=campaigns, policy=policy)

    def _page(self, status: int, outcome: str, body: str) -> PageAnswer:
        vendor = self._settings().vendor
        name = html.escape(vendor.name) if vendor is not None else "Unsubscribe"
        page = (
            '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="robots" content="noindex">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{name}</title></head>\n<body><h1>{name}</h1>\n{body}\n</body></html>\n"
        )
        return PageAnswer(status=status, outcome=outcome, content_type=TEXT_HTML, text=page)


_INVALID_LINK: Final = (
    "<p>This unsubscribe link is not valid. Please use the link in your latest e-mail.</p>"
)
_DONE: Final = "<p>You are unsubscribed and will receive no more review requests.</p>"


def _confirm_form() -> str:
    # No action attribute: the form posts to the page's own URL, whatever
    # prefix a reverse proxy puts in front of the listener.
    return (
        "<p>Stop receiving review requests at this address?</p>\n"
        '<form method="post">'
        f'<input type="hidden" name="{ONE_CLICK_KEY}" value="{ONE_CLICK_VALUE}">'
        '<button type="submit">Unsubscribe</button></form>'
    )


def _text(status: int, outcome: str, text: str) -> PageAnswer:
    return PageAnswer(
        status=status, outcome=outcome, content_type="text/plain; charset=utf-8", text=text
    )


def daemon_tokens(config: Config, state_dir: Path, *, config_path: str) -> UnsubscribeTokens | None:
    """Return the daemon's token maker, or None when the config sends no e-mail.

    Raises ConfigError when the key file cannot be read or created.
    """
    if config.vendor is None:
        return None
    try:
        return UnsubscribeTokens(load_or_create_key(state_dir))
    except UnsubscribeKeyError as error:
        raise ConfigError(config_path, [f"daemon.state_dir: {error}"]) from error
