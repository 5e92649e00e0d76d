"""Web Push (RFC 8030) with VAPID (RFC 8292) and aes128gcm payload encryption (RFC 8291).

``http_ece`` encrypts the payload with a fresh P-256 key per message and
the browser's ``p256dh`` key and ``auth`` secret.  ``py_vapid`` signs the
VAPID token.  The request itself goes out through httpx to the
subscription's endpoint, after the same address guard that outbound
webhooks use, since the endpoint URL comes from a browser.

A push service responds 201 to an accepted message.  404 and 410 mean the
subscription is gone for good, so it is removed.  429 and 5xx are retried,
and any other status is a permanent failure of this message.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal, final

import httpx
import msgspec

from plaudit.config.model import PushConfig
from plaudit.errors import PlatformError, PlauditError
from plaudit.journal.tx import Tx
from plaudit.messaging.http_body import read_limited
from plaudit.reliability.retry import Verdict, call_with_retry, classify_status, parse_retry_after
from plaudit.webhooks.ssrf import ForbiddenTargetError, ResolutionError, resolve_target

if TYPE_CHECKING:
    # http_ece, py_vapid and cryptography's elliptic curves take about 8 MB,
    # so the functions below import them on first use: a daemon without
    # [push] never loads them.
    import py_vapid

log = logging.getLogger(__name__)

# A push message body is at most 4096 bytes (RFC 8291).  The aes128gcm header
# takes 86 of them (65 for the key id), the tag 16 and the padding delimiter 1.
MAX_PLAINTEXT_BYTES: Final = 4096 - 86 - 16 - 1
# RFC 8292 section 2: a token must expire within 24 hours; 12 hours leaves room for clock skew.
TOKEN_SECONDS: Final = 12 * 3600
GONE_STATUSES: Final = frozenset({404, 410})


class PushError(PlatformError):
    """A push failed; ``gone`` is True when the subscription no longer exists."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        gone: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, retryable=retryable, status=status, retry_after=retry_after)
        self.gone = gone


class InvalidSubscription(PlauditError):
    """A subscription's endpoint or keys are not valid; the browser must subscribe again."""


@final
class PushSubscription(msgspec.Struct, frozen=True, kw_only=True):
    """A browser's push subscription, as ``PushSubscription.toJSON()`` gives it."""

    endpoint: str
    # base64url without padding, as browsers encode them.
    p256dh: str
    auth: str


@final
class PushAccepted(msgspec.Struct, frozen=True, kw_only=True):
    """The push service's response to an accepted message: status and the message URL."""

    status: int
    location: str


@final
class PushStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of a :class:`PushSender` since it was created."""

    accepted: int
    gone: int
    failed: int


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding; raises ValueError on invalid text."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"{text[:20]!r}... is not base64url") from error


def validate_subscription(subscription: PushSubscription, *, allow_http: bool) -> None:
    """Raise InvalidSubscription naming the field that is wrong."""
    parsed = urllib.parse.urlsplit(subscription.endpoint)
    schemes = ("https", "http") if allow_http else ("https",)
    if parsed.scheme not in schemes or not parsed.hostname:
        raise InvalidSubscription(
            f"push endpoint {subscription.endpoint!r} is not an https URL; "
            "store the endpoint the browser returned"
        )
    if parsed.username is not None or parsed.password is not None:
        raise InvalidSubscription(
            "push endpoint contains user credentials, which no push service issues; "
            "store the endpoint the browser returned"
        )
    try:
        key = b64url_decode(subscription.p256dh)
        auth = b64url_decode(subscription.auth)
    except ValueError as error:
        raise InvalidSubscription(f"push subscription keys: {error}") from error
    if len(key) != 65 or key[0] != 4:
        raise InvalidSubscription(
            f"p256dh is {len(key)} bytes; expected a 65-byte uncompressed P-256 point"
        )
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), key)
    except ValueError as error:
        raise InvalidSubscription("p256dh is not a point on the P-256 curve") from error
    if len(auth) != 16:
        raise InvalidSubscription(f"auth is {len(auth)} bytes; expected 16")


def encrypt_payload(subscription: PushSubscription, payload: bytes) -> bytes:
    """Encrypt ``payload`` for the subscription with aes128gcm and a one-time sender key."""
    if len(payload) > MAX_PLAINTEXT_BYTES:
        raise ValueError(
            f"push payload is {len(payload)} bytes; shorten the template to at most "
            f"{MAX_PLAINTEXT_BYTES} bytes"
        )
    import http_ece
    from cryptography.hazmat.primitives.asymmetric import ec

    sender_key = ec.generate_private_key(ec.SECP256R1())
    encrypted: bytes = http_ece.encrypt(
        payload,
        private_key=sender_key,
        dh=b64url_decode(subscription.p256dh),
        auth_secret=b64url_decode(subscription.auth),
        version="aes128gcm",
    )
    return encrypted


def load_vapid_key(path: str) -> py_vapid.Vapid02:
    """Read the VAPID private key from a PEM file; raises PlauditError naming the file."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise PlauditError(
            f"cannot read push.vapid_private_key_file {path}: {error.strerror or error}; "
            "fix the path or create a key"
        ) from error
    import py_vapid

    try:
        return py_vapid.Vapid02.from_pem(data)
    except (ValueError, TypeError) as error:
        raise PlauditError(
            f"push.vapid_private_key_file {path} is not a PEM P-256 private key; "
            "create one with `openssl ecparam -name prime256v1 -genkey -noout`"
        ) from error


def vapid_public_key(vapid: py_vapid.Vapid02) -> str:
    """Return the application server key that browsers pass to ``subscribe()``, base64url."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = vapid.public_key
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise PlauditError("the VAPID key is not an elliptic-curve key")
    raw = key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@final
class PushSender:
    """Encrypts and sends Web Push messages; see the module docstring."""

    def __init__(
        self,
        config: PushConfig,
        vapid: py_vapid.Vapid02,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self._vapid = vapid
        self._client = httpx.AsyncClient(
            timeout=config.timeout, transport=transport, follow_redirects=False
        )
        self._accepted = 0
        self._gone = 0
        self._failed = 0

    def __repr__(self) -> str:
        return f"<PushSender accepted={self._accepted} gone={self._gone} failed={self._failed}>"

    def statistics(self) -> PushStatistics:
        return PushStatistics(accepted=self._accepted, gone=self._gone, failed=self._failed)

    async def aclose(self) -> None:
        await self._client.aclose()

    def headers(self, endpoint: str, *, now: float) -> dict[str, str]:
        """Return the VAPID and Web Push headers for one message to ``endpoint``."""
        parsed = urllib.parse.urlsplit(endpoint)
        claims = {
            "aud": f"{parsed.scheme}://{parsed.netloc}",
            "exp": int(now) + TOKEN_SECONDS,
            "sub": self.config.subject,
        }
        import py_vapid

        try:
            signed: dict[str, str] = self._vapid.sign(claims)
        except py_vapid.VapidException as error:
            # py_vapid accepts only "scheme://host[:port]" audiences, so no IPv6 literal.
            raise PushError(
                f"cannot sign a VAPID token for {claims['aud']!r}: {error}; check [push] subject "
                "and the endpoint",
                retryable=False,
            ) from error
        return {
            "authorization": signed["Authorization"],
            "content-encoding": "aes128gcm",
            "content-type": "application/octet-stream",
            "ttl": str(self.config.ttl),
            "urgency": "normal",
        }

    async def send(
        self, subscription: PushSubscription, message: dict[str, str], *, topic: str
    ) -> PushAccepted:
        """Encrypt ``message`` as JSON and send it; raises PushError or InvalidSubscription.

        ``topic`` (at most 32 base64url characters) lets the push service
        replace an undelivered earlier copy of the same message (RFC 8030
        section 5.4).
        """
        validate_subscription(subscription, allow_http=self.config.allow_private_endpoints)
        try:
            body = encrypt_payload(subscription, json.dumps(message).encode())
        except ValueError as error:
            # Too long a message fails for every subscription alike, so it is not retried.
            raise PushError(str(error), retryable=False) from error
        try:
            result = await call_with_retry(
                lambda: self._attempt(subscription.endpoint, body, topic),
                policy=self.config.retry,
                what="Web Push send",
            )
        except PushError as error:
            if error.gone:
                self._gone += 1
            else:
                self._failed += 1
            raise
        self._accepted += 1
        return result

    async def _attempt(self, endpoint: str, body: bytes, topic: str) -> PushAccepted:
        try:
            target = await resolve_target(
                endpoint, allow_private=self.config.allow_private_endpoints
            )
        except ForbiddenTargetError as error:
            raise PushError(f"push endpoint rejected: {error}", retryable=False) from error
        except ResolutionError as error:
            raise PushError(str(error), retryable=True) from error

        headers = self.headers(endpoint, now=time.time())
        headers["host"] = target.host_header
        headers["topic"] = topic
        extensions = {"sni_hostname": target.sni_hostname} if target.sni_hostname else {}
        try:
            async with self._client.stream(
                "POST", target.url, content=body, headers=headers, extensions=extensions
            ) as response:
                text = (await read_limited(response))[:200].decode("utf-8", errors="replace")
        except httpx.HTTPError as error:
            # NOTE: a retry after a lost response may deliver the message twice; the
            # Topic header only replaces a copy that is still undelivered.
            raise PushError(
                f"push to {target.host_header} failed ({error!r}); retrying", retryable=True
            ) from error
        return _accepted_or_raise(response, text, target.host_header)


def _accepted_or_raise(response: httpx.Response, text: str, host: str) -> PushAccepted:
    status = response.status_code
    if status in GONE_STATUSES:
        raise PushError(
            f"push service {host} responded {status}: the subscription is gone; removing it",
            retryable=False,
            status=status,
            gone=True,
        )
    verdict = classify_status(status)
    if verdict is Verdict.SUCCESS:
        return PushAccepted(status=status, location=response.headers.get("location", ""))
    detail = f"push service {host} responded {status}: {text!r}"
    if verdict is Verdict.RETRY:
        retry_after = parse_retry_after(
            response.headers.get("retry-after"), now=time.time(), limit=3600.0
        )
        raise PushError(
            detail + "; retrying", retryable=True, status=status, retry_after=retry_after
        )
    raise PushError(
        detail + "; check [push] subject and the VAPID key",
        retryable=False,
        status=status,
    )


PushRemoval = Literal["gone", "invalid"]


def add_subscription(tx: Tx, couple_id: int, subscription: PushSubscription) -> int:
    """Store a subscription for the couple, or re-activate a removed one; return its id."""
    row = tx.execute(
        "INSERT INTO push_subscriptions (couple_id, endpoint, p256dh, auth, created_at)"
        " VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (endpoint) DO UPDATE SET couple_id = excluded.couple_id,"
        " p256dh = excluded.p256dh, auth = excluded.auth, removed_at = NULL,"
        " removed_reason = NULL"
        " RETURNING id",
        (couple_id, subscription.endpoint, subscription.p256dh, subscription.auth, tx.now),
    ).fetchone()
    return int(row[0])


def active_subscriptions(tx: Tx, couple_id: int) -> list[PushSubscription]:
    """Return the couple's subscriptions that the push service has not reported gone."""
    rows = tx.execute(
        "SELECT endpoint, p256dh, auth FROM push_subscriptions"
        " WHERE couple_id = ? AND removed_at IS NULL ORDER BY id",
        (couple_id,),
    ).fetchall()
    return [PushSubscription(endpoint=row[0], p256dh=row[1], auth=row[2]) for row in rows]


def remove_subscription(tx: Tx, endpoint: str, *, reason: PushRemoval) -> bool:
    """Mark the subscription removed; return False when it was not active."""
    cursor = tx.execute(
        "UPDATE push_subscriptions SET removed_at = ?, removed_reason = ?"
        " WHERE endpoint = ? AND removed_at IS NULL",
        (tx.now, reason, endpoint),
    )
    return cursor.rowcount > 0
