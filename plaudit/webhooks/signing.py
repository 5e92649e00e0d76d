"""Standard Webhooks signatures: signing outbound deliveries and verifying them.

A delivery carries three headers: ``webhook-id`` (stable per endpoint and
event, so receivers can drop repeats), ``webhook-timestamp`` (Unix seconds)
and ``webhook-signature``, a space-separated list of ``v1,<base64 HMAC-SHA256
of "id.timestamp.body">``, one entry per active secret.  Several secrets sign
at once while a rotation overlaps, so a receiver that has either the old or
the new secret accepts the delivery.

Secrets have the form ``whsec_<base64 key>``; the key is the base64-decoded
remainder.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
from collections.abc import Mapping, Sequence
from secrets import token_bytes
from typing import Final, final

from plaudit.errors import PlauditError

SECRET_PREFIX: Final = "whsec_"
SIGNATURE_VERSION: Final = "v1"
# Receivers reject deliveries whose timestamp is further than this from their
# clock, which bounds how long a captured delivery can be replayed.
DEFAULT_TOLERANCE_SECONDS: Final = 300.0
# Keys shorter than 128 bits are too weak for HMAC-SHA256.  Keys longer than
# its 64-byte block are hashed first, so more bytes add nothing.
MIN_KEY_BYTES: Final = 16
MAX_KEY_BYTES: Final = 64

HEADER_ID: Final = "webhook-id"
HEADER_TIMESTAMP: Final = "webhook-timestamp"
HEADER_SIGNATURE: Final = "webhook-signature"


class InvalidSecretError(PlauditError, ValueError):
    """A webhook secret is not ``whsec_`` followed by base64 of 16 to 64 bytes."""


class VerificationError(PlauditError):
    """A delivery's signature headers are missing, stale or do not match."""


@final
class Secret:
    """One decoded ``whsec_`` signing key; its repr never shows the key."""

    __slots__ = ("_key", "fingerprint")

    def __init__(self, key: bytes) -> None:
        if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
            raise InvalidSecretError(
                f"webhook secret key is {len(key)} bytes; use {MIN_KEY_BYTES} to "
                f"{MAX_KEY_BYTES} random bytes, such as the output of generate_secret()"
            )
        self._key = key
        # The first 8 hex digits of SHA-256(key): enough to tell secrets apart in logs.
        self.fingerprint = hashlib.sha256(key).hexdigest()[:8]

    @classmethod
    def parse(cls, text: str) -> Secret:
        """Decode ``whsec_<base64>``; raise InvalidSecretError naming the problem."""
        if not text.startswith(SECRET_PREFIX):
            raise InvalidSecretError(
                f"webhook secret must start with {SECRET_PREFIX!r} followed by base64; "
                "generate one with `python -m plaudit.webhooks.signing`"
            )
        try:
            key = base64.b64decode(text.removeprefix(SECRET_PREFIX), validate=True)
        except (binascii.Error, ValueError) as error:
            raise InvalidSecretError(
                f"webhook secret with prefix {SECRET_PREFIX!r} has invalid base64 after the "
                f"prefix ({error}); copy the whole secret again"
            ) from error
        return cls(key)

    def __repr__(self) -> str:
        return f"<Secret {self.fingerprint}>"

    def sign(self, message: bytes) -> str:
        """Return the ``v1,<base64>`` signature of ``message``."""
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"

    def serialize(self) -> str:
        """Return the ``whsec_`` text form of this secret."""
        return SECRET_PREFIX + base64.b64encode(self._key).decode()


def generate_secret(size: int = 32) -> Secret:
    """Return a new random secret of ``size`` bytes."""
    return Secret(token_bytes(size))


def signed_content(webhook_id: str, timestamp: int, body: bytes) -> bytes:
    """Return the bytes that are signed: ``id.timestamp.body``."""
    return f"{webhook_id}.{timestamp}.".encode() + body


def sign_headers(
    secrets: Sequence[Secret], *, webhook_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """Return the three Standard Webhooks headers for one delivery attempt."""
    if not secrets:
        raise ValueError(f"delivery {webhook_id!r} needs at least one signing secret")
    content = signed_content(webhook_id, timestamp, body)
    return {
        HEADER_ID: webhook_id,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_SIGNATURE: " ".join(secret.sign(content) for secret in secrets),
    }


def verify(
    secrets: Sequence[Secret],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
) -> str:
    """Check a delivery's signature and timestamp; return its webhook id.

    ``headers`` must use lower-case names (httpx and ASGI headers do).  The
    delivery is accepted when any ``v1`` signature matches any of
    ``secrets``; each comparison is constant-time.  Raises
    VerificationError naming what is wrong.
    """
    webhook_id = _header(headers, HEADER_ID)
    timestamp = _timestamp(_header(headers, HEADER_TIMESTAMP), now=now, tolerance=tolerance)
    offered = [
        entry.split(",", 1)[1]
        for entry in _header(headers, HEADER_SIGNATURE).split()
        if entry.startswith(SIGNATURE_VERSION + ",")
    ]
    content = signed_content(webhook_id, timestamp, body)
    expected = [secret.sign(content).split(",", 1)[1] for secret in secrets]

    matched = False
    # Compare every pair without stopping early, so timing reveals nothing.
    for mine in expected:
        for theirs in offered:
            matched |= hmac.compare_digest(mine.encode(), theirs.encode())
    if not matched:
        raise VerificationError(
            f"no {SIGNATURE_VERSION} signature of webhook {webhook_id!r} matches a configured "
            "secret; check that the receiver uses the endpoint's current secret"
        )
    return webhook_id


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if not value:
        raise VerificationError(f"missing header {name!r}; the request is not a signed webhook")
    return value


def _timestamp(text: str, *, now: float, tolerance: float) -> int:
    try:
        timestamp = int(text)
    except ValueError:
        raise VerificationError(
            f"header {HEADER_TIMESTAMP!r} is {text!r}; expected Unix seconds as an integer"
        ) from None
    if not math.isfinite(now) or abs(now - timestamp) > tolerance:
        raise VerificationError(
            f"header {HEADER_TIMESTAMP!r} is {timestamp}, more than {tolerance:g} s from now "
            f"({now:.0f}); the delivery is stale or a clock is wrong"
        )
    return timestamp


if __name__ == "__main__":
    print(generate_secret().serialize())
