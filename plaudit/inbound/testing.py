"""Signing counterparts of the inbound checks, for tests and the benchmark.

Each helper produces what the provider would send, with keys generated on
the spot; nothing here contacts a provider.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, final

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from plaudit.inbound import sns
from plaudit.inbound.verify import twilio_signature


@final
class SendgridSigner:
    """A P-256 key pair signing SendGrid event batches."""

    def __init__(self) -> None:
        self.private_key = ec.generate_private_key(ec.SECP256R1())

    def public_key_text(self) -> str:
        """Return the public key as SendGrid shows it: base64 DER."""
        der = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    def headers(self, body: bytes, timestamp: int) -> dict[str, str]:
        signature = self.private_key.sign(str(timestamp).encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": str(timestamp),
        }


def mailgun_signature(signing_key: str, timestamp: int, token: str) -> dict[str, str]:
    """Return a Mailgun ``signature`` object."""
    digest = hmac.new(
        signing_key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256
    ).hexdigest()
    return {"timestamp": str(timestamp), "token": token, "signature": digest}


def mailgun_event_body(
    signing_key: str, event_data: dict[str, Any], *, timestamp: int, token: str
) -> bytes:
    """Return a Mailgun event webhook body: ``event_data`` signed at Unix time ``timestamp``."""
    signature = mailgun_signature(signing_key, timestamp, token)
    return json.dumps({"signature": signature, "event-data": event_data}).encode()


def basic_auth(username: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


@final
class SnsSigner:
    """A self-signed RSA certificate standing in for an SNS signing certificate."""

    def __init__(self, *, name: str = "SimpleNotificationService-test.pem") -> None:
        self.name = name
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.test")])
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.private_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(self.private_key, hashes.SHA256())
        )

    def write(self, folder: Path) -> Path:
        """Write the certificate into ``folder`` under its SNS file name."""
        path = folder / self.name
        path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        return path

    def sign(self, message: dict[str, Any], *, version: str = "1") -> dict[str, Any]:
        """Return ``message`` with SignatureVersion, SigningCertURL and Signature set."""
        signed = dict(message)
        signed["SignatureVersion"] = version
        # Only the file name matters: the certificate is looked up locally.
        signed["SigningCertURL"] = f"https://sns.example.invalid/{self.name}"
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self.private_key.sign(
            sns.canonical_string(signed), padding.PKCS1v15(), algorithm
        )
        signed["Signature"] = base64.b64encode(signature).decode()
        return signed


def twilio_headers(url: str, params: Sequence[tuple[str, str]], auth_token: str) -> dict[str, str]:
    return {"X-Twilio-Signature": twilio_signature(url, params, auth_token)}


@final
class PubSubSigner:
    """An RSA key signing Pub/Sub push tokens as Google would."""

    def __init__(self) -> None:
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def write_public_key(self, path: Path) -> Path:
        path.write_bytes(
            self.private_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return path

    def token(
        self,
        *,
        audience: str,
        now: float,
        issuer: str = "https://accounts.google.com",
        lifetime: float = 3600.0,
        email: str = "push@example.iam.gserviceaccount.com",
    ) -> str:
        claims = {
            "aud": audience,
            "iss": issuer,
            "iat": int(now),
            "exp": int(now + lifetime),
            "email": email,
        }
        return jwt.encode(claims, self.private_key, algorithm="RS256")


def pubsub_body(message_id: str, notification: dict[str, Any], *, published: str) -> bytes:
    """Return a Pub/Sub push body wrapping one Business Profile notification."""
    data = base64.b64encode(json.dumps(notification).encode()).decode()
    envelope = {
        "message": {"data": data, "messageId": message_id, "publishTime": published},
        "subscription": "projects/test/subscriptions/reviews",
    }
    return json.dumps(envelope).encode()
