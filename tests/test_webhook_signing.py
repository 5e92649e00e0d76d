"""Standard Webhooks signatures: vectors computed independently, rotation and tampering."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from plaudit.webhooks.signing import (
    InvalidSecretError,
    Secret,
    VerificationError,
    generate_secret,
    sign_headers,
    verify,
)

KEY = bytes(range(32))
SECRET_TEXT = "whsec_" + base64.b64encode(KEY).decode()
NEW_KEY = bytes(range(100, 132))
NEW_SECRET_TEXT = "whsec_" + base64.b64encode(NEW_KEY).decode()
WEBHOOK_ID = "msg_2b3c4d"
TIMESTAMP = 1_767_225_600
BODY = b'{"type":"review.created","timestamp":"2026-01-01T00:00:00.000Z","data":{"a":1}}'


def expected_signature(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    message = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def test_headers_match_independent_hmac() -> None:
    headers = sign_headers(
        [Secret.parse(SECRET_TEXT)], webhook_id=WEBHOOK_ID, timestamp=TIMESTAMP, body=BODY
    )

    assert headers["webhook-id"] == WEBHOOK_ID
    assert headers["webhook-timestamp"] == str(TIMESTAMP)
    assert headers["webhook-signature"] == expected_signature(KEY, WEBHOOK_ID, TIMESTAMP, BODY)


def test_rotation_signs_with_every_secret() -> None:
    secrets = [Secret.parse(SECRET_TEXT), Secret.parse(NEW_SECRET_TEXT)]
    headers = sign_headers(secrets, webhook_id=WEBHOOK_ID, timestamp=TIMESTAMP, body=BODY)

    assert headers["webhook-signature"].split(" ") == [
        expected_signature(KEY, WEBHOOK_ID, TIMESTAMP, BODY),
        expected_signature(NEW_KEY, WEBHOOK_ID, TIMESTAMP, BODY),
    ]
    # A receiver that knows only one of the two secrets accepts the delivery.
    for known in secrets:
        assert verify([known], headers, BODY, now=TIMESTAMP) == WEBHOOK_ID


def test_verify_accepts_within_tolerance() -> None:
    secret = Secret.parse(SECRET_TEXT)
    headers = sign_headers([secret], webhook_id=WEBHOOK_ID, timestamp=TIMESTAMP, body=BODY)

    assert verify([secret], headers, BODY, now=TIMESTAMP + 299) == WEBHOOK_ID
    assert verify([secret], headers, BODY, now=TIMESTAMP - 299) == WEBHOOK_ID


@pytest.mark.parametrize("skew", [301, -301, 10_000])
def test_verify_rejects_stale_timestamp(skew: int) -> None:
    secret = Secret.parse(SECRET_TEXT)
    headers = sign_headers([secret], webhook_id=WEBHOOK_ID, timestamp=TIMESTAMP, body=BODY)

    with pytest.raises(VerificationError, match="webhook-timestamp"):
        verify([secret], headers, BODY, now=TIMESTAMP + skew)


def test_verify_rejects_tampered_body() -> None:
    secret = Secret.parse(SECRET_TEXT)
    headers = sign_headers([secret], webhook_id=WEBHOOK_ID, timestamp=TIMESTAMP, body=BODY)

    with pytest.raises(VerificationError, match="no v1 signature"):
        verify([secret], headers, BODY.replace(b'"a":1', b'"a":2'), now=TIMESTAMP)


def test_verify_rejects_tampered_timestamp() -> None:
    secret = Secret.parse(SECRET_TEXT)
    headers = sign_headers([secret], webhook_id=WEBHOOK_ID, timestamp=TIMESTAMP, body=BODY)
    headers["webhook-timestamp"] = str(TIMESTAMP + 1)

    with pytest.raises(VerificationError, match="no v1 signature"):
        verify([secret], headers, BODY, now=TIMESTAMP)


def test_verify_rejects_tampered_id() -> None:
    secret = Secret.parse(SECRET_TEXT)
    headers = sign_headers([secret], webhook_id=WEBHOOK_ID, timestamp=TIMESTAMP, body=BODY)
    headers["webhook-id"] = "msg_other"

    with pytest.raises(VerificationError):
        verify([secret], headers, BODY, now=TIMESTAMP)


def test_verify_rejects_wrong_secret() -> None:
    headers = sign_headers(
        [Secret.parse(SECRET_TEXT)], webhook_id=WEBHOOK_ID, timestamp=TIMESTAMP, body=BODY
    )

    with pytest.raises(VerificationError, match="current secret"):
        verify([Secret.parse(NEW_SECRET_TEXT)], headers, BODY, now=TIMESTAMP)


def test_verify_ignores_other_versions() -> None:
    secret = Secret.parse(SECRET_TEXT)
    good = expected_signature(KEY, WEBHOOK_ID, TIMESTAMP, BODY)
    headers = {
        "webhook-id": WEBHOOK_ID,
        "webhook-timestamp": str(TIMESTAMP),
        # The same digest under an unknown version must not count.
        "webhook-signature": "v2," + good.split(",", 1)[1],
    }

    with pytest.raises(VerificationError):
        verify([secret], headers, BODY, now=TIMESTAMP)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_verify_requires_every_header(missing: str) -> None:
    secret = Secret.parse(SECRET_TEXT)
    headers = sign_headers([secret], webhook_id=WEBHOOK_ID, timestamp=TIMESTAMP, body=BODY)
    del headers[missing]

    with pytest.raises(VerificationError, match=missing):
        verify([secret], headers, BODY, now=TIMESTAMP)


def test_verify_rejects_non_integer_timestamp() -> None:
    secret = Secret.parse(SECRET_TEXT)
    headers = sign_headers([secret], webhook_id=WEBHOOK_ID, timestamp=TIMESTAMP, body=BODY)
    headers["webhook-timestamp"] = "soon"

    with pytest.raises(VerificationError, match="Unix seconds"):
        verify([secret], headers, BODY, now=TIMESTAMP)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("abc", "must start with"),
        ("whsec_not*base64", "invalid base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "5 bytes"),
    ],
)
def test_invalid_secrets_rejected(text: str, problem: str) -> None:
    with pytest.raises(InvalidSecretError, match=problem):
        Secret.parse(text)


def test_secret_round_trip_and_repr() -> None:
    secret = generate_secret()
    text = secret.serialize()

    assert text.startswith("whsec_")
    assert Secret.parse(text).fingerprint == secret.fingerprint
    assert text.removeprefix("whsec_") not in repr(secret)


def test_sign_without_secrets_fails() -> None:
    with pytest.raises(ValueError, match="at least one"):
        sign_headers([], webhook_id=WEBHOOK_ID, timestamp=TIMESTAMP, body=BODY)
