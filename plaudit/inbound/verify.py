"""Signature checks for provider webhooks, each a pure function of the raw request.

Every check works on the bytes as received, before any parsing that could
normalise them, and compares secrets in constant time.  A failed check
raises :class:`Rejected` carrying the HTTP status to answer with:

- 400 for a request too malformed to check,
- 401 when credentials or signature headers are missing,
- 403 when a signature does not match or a timestamp is outside the tolerance.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, final

import msgspec

from plaudit.connectors import facebook
from plaudit.errors import PlauditError
from plaudit.webhooks import signing

if TYPE_CHECKING:
    # PyJWT and cryptography's key types take about 9 MB, so the SendGrid and
    # Pub/Sub checks import them on first use.
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec


@final
class Rejected(PlauditError):
    """A request the listener rejects with HTTP ``status``; ``outcome`` is the metric label."""

    def __init__(self, status: int, outcome: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.outcome = outcome
        self.reason = reason


def malformed(reason: str) -> Rejected:
    return Rejected(400, "malformed", reason)


def unauthenticated(reason: str) -> Rejected:
    return Rejected(401, "unauthenticated", reason)


def forged(reason: str) -> Rejected:
    return Rejected(403, "forged", reason)


def stale(reason: str) -> Rejected:
    return Rejected(403, "stale", reason)


def check_timestamp(timestamp: float, *, now: float, tolerance: float, what: str) -> None:
    """Raise a stale rejection when ``timestamp`` (Unix seconds) is more than ``tolerance`` away."""
    if not math.isfinite(timestamp) or abs(now - timestamp) > tolerance:
        raise stale(
            f"{what} {timestamp:.0f} is more than {tolerance:g} s from now ({now:.0f}); "
            "the request is a replay or a clock is wrong"
        )


def _unix_seconds(text: str, what: str) -> float:
    try:
        return float(int(text))
    except ValueError:
        raise malformed(f"{what} is {text!r}; expected Unix seconds as an integer") from None


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise forged(f"{what} is not valid base64") from None


def verify_sendgrid(
    headers: Mapping[str, str],
    body: bytes,
    public_key: ec.EllipticCurvePublicKey,
    *,
    now: float,
    tolerance: float,
) -> None:
    """Check SendGrid's ECDSA P-256 signature over ``timestamp + body``.

    The signature header contains a base64 DER signature; the timestamp header
    holds Unix seconds.
    """
    signature = headers.get("x-twilio-email-event-webhook-signature", "")
    timestamp = headers.get("x-twilio-email-event-webhook-timestamp", "")
    if not signature or not timestamp:
        raise unauthenticated(
            "missing X-Twilio-Email-Event-Webhook-Signature or -Timestamp header; "
            "enable the signed event webhook in SendGrid"
        )

    check_timestamp(
        _unix_seconds(timestamp, "SendGrid timestamp"),
        now=now,
        tolerance=tolerance,
        what="SendGrid timestamp",
    )
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        public_key.verify(
            _b64decode(signature, "SendGrid signature"),
            timestamp.encode() + body,
            ec.ECDSA(hashes.SHA256()),
        )
    except InvalidSignature:
        raise forged(
            "SendGrid signature does not match the body; check inbound.sendgrid.public_key_file"
        ) from None


def verify_mailgun(
    payload: Mapping[str, Any], signing_key: bytes, *, now: float, tolerance: float
) -> str:
    """Check a Mailgun ``signature`` object: HMAC-SHA256 of timestamp + token, hex.

    Returns the token, which is unique per request.
    """
    block = payload.get("signature")
    if not isinstance(block, dict):
        raise unauthenticated("Mailgun body has no 'signature' object; the request is not signed")
    timestamp, token, signature = (
        str(block.get(key, "")) for key in ("timestamp", "token", "signature")
    )
    if not timestamp or not token or not signature:
        raise unauthenticated("Mailgun 'signature' needs timestamp, token and signature")

    check_timestamp(
        _unix_seconds(timestamp, "Mailgun timestamp"),
        now=now,
        tolerance=tolerance,
        what="Mailgun timestamp",
    )
    expected = hmac.new(signing_key, (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise forged("Mailgun signature does not match; check inbound.mailgun.signing_key_file")
    return token


def verify_basic_auth(headers: Mapping[str, str], username: str, password: str) -> None:
    """Check HTTP Basic credentials, the only authentication Postmark webhooks carry."""
    header = headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise unauthenticated(
            "missing Basic Authorization header; put credentials in the webhook URL"
        )

    try:
        offered = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise unauthenticated("Authorization header is not valid base64") from None
    expected = f"{username}:{password}".encode()
    if not hmac.compare_digest(offered, expected):
        raise forged("Basic credentials do not match inbound.postmark username and password")


def twilio_signature(url: str, params: Sequence[tuple[str, str]], auth_token: str) -> str:
    """Return the ``X-Twilio-Signature`` value for a form POST to ``url``."""
    content = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode(), content.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def verify_twilio(
    headers: Mapping[str, str], url: str, params: Sequence[tuple[str, str]], auth_token: str
) -> None:
    """Check ``X-Twilio-Signature``: base64 HMAC-SHA1 over the URL and the sorted form fields."""
    offered = headers.get("x-twilio-signature", "")
    if not offered:
        raise unauthenticated("missing X-Twilio-Signature header")
    expected = twilio_signature(url, params, auth_token)
    if not hmac.compare_digest(expected.encode(), offered.encode()):
        raise forged(
            f"X-Twilio-Signature does not match for URL {url!r}; set inbound.twilio.public_url "
            "to the exact URL configured in Twilio"
        )


def verify_resend(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[signing.Secret],
    *,
    now: float,
    tolerance: float,
) -> str:
    """Check a Resend delivery (Standard Webhooks, sent as ``svix-*`` headers); return its id."""
    standard = {
        name: headers.get(name) or headers.get(name.replace("webhook-", "svix-"), "")
        for name in (signing.HEADER_ID, signing.HEADER_TIMESTAMP, signing.HEADER_SIGNATURE)
    }
    if not all(standard.values()):
        raise unauthenticated("missing svix-id, svix-timestamp or svix-signature header")
    try:
        return signing.verify(secrets, standard, body, now=now, tolerance=tolerance)
    except signing.VerificationError as error:
        outcome = stale if "from now" in str(error) else forged
        raise outcome(f"Resend signature rejected: {error}") from error


def verify_facebook(headers: Mapping[str, str], body: bytes, app_secret: str) -> None:
    """Check ``X-Hub-Signature-256`` over the raw body."""
    header = headers.get("x-hub-signature-256")
    try:
        facebook.verify_signature(body, header, app_secret)
    except facebook.WebhookVerificationError as error:
        outcome = unauthenticated if not header else forged
        raise outcome(str(error)) from error


def verify_facebook_handshake(query: Mapping[str, str], verify_token: str) -> str:
    """Return ``hub.challenge`` for a genuine subscription request."""
    try:
        return facebook.verify_subscription(query, verify_token)
    except facebook.WebhookVerificationError as error:
        raise forged(str(error)) from error


@final
class GoogleAudience(msgspec.Struct, frozen=True, kw_only=True):
    """Expected claims of a Pub/Sub push token: audience, issuers and optionally the sender."""

    audience: str
    issuers: tuple[str, ...]
    email: str = ""


def verify_google(
    headers: Mapping[str, str],
    keys: Sequence[Any],
    expected: GoogleAudience,
    *,
    now: float,
    tolerance: float,
) -> dict[str, Any]:
    """Check a Pub/Sub push JWT (RS256) against configured public keys; return its claims.

    ``keys`` are ``cryptography`` RSA public keys read from local files; no key
    is ever fetched.  ``tolerance`` is the clock leeway in seconds.
    """
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise unauthenticated("missing 'Authorization: Bearer <JWT>' header on a Pub/Sub push")

    import jwt

    last: jwt.PyJWTError | None = None
    for key in keys:
        try:
            claims: dict[str, Any] = jwt.decode(
                token.strip(),
                key,
                algorithms=["RS256"],
                audience=expected.audience,
                issuer=list(expected.issuers),
                leeway=tolerance,
                options={"require": ["exp", "iat", "aud", "iss"]},
            )
        except jwt.InvalidSignatureError as error:
            last = error
            continue
        except jwt.ExpiredSignatureError as error:
            raise stale(f"Pub/Sub push token expired: {error}") from error
        except jwt.PyJWTError as error:
            raise forged(f"Pub/Sub push token rejected: {error}") from error
        _check_google_sender(claims, expected)
        _check_issued(claims, now=now, tolerance=tolerance)
        return claims

    raise forged(
        f"Pub/Sub push token matches none of the {len(keys)} configured keys ({last}); "
        "add the current Google certificate to inbound.google.certificates"
    )


def _check_google_sender(claims: Mapping[str, Any], expected: GoogleAudience) -> None:
    if expected.email and not hmac.compare_digest(
        str(claims.get("email", "")).encode(), expected.email.encode()
    ):
        raise forged(
            f"Pub/Sub push token email {claims.get('email')!r} is not inbound.google.email"
        )


def _check_issued(claims: Mapping[str, Any], *, now: float, tolerance: float) -> None:
    issued = claims.get("iat")
    if not isinstance(issued, (int, float)):
        raise forged("Pub/Sub push token has no numeric 'iat' claim")
    # Google issues push tokens valid for an hour; a token from the future is forged.
    if issued > now + tolerance:
        raise stale(f"Pub/Sub push token issued at {issued}, after now ({now:.0f})")
