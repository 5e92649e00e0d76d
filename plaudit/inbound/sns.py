"""Amazon SNS message signatures, checked against certificates in a local trust store.

SNS signs a canonical string built from selected fields of the message:
each present field as ``Name\\nValue\\n`` in a fixed order.  Signature
version 1 is SHA1withRSA and version 2 SHA256withRSA.  The signing
certificate is named by ``SigningCertURL``; Plaudit never downloads it.  The
operator places the certificate files in the configured trust store, and
the listener looks them up by the file name at the end of that URL.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import posixpath
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, final

from plaudit.errors import PlauditError
from plaudit.inbound.verify import check_timestamp, forged, malformed, unauthenticated

if TYPE_CHECKING:
    # cryptography's certificate and key types take about 7 MB, so the
    # functions below import them on first use: a listener without
    # inbound.ses never loads them.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

NOTIFICATION_FIELDS: Final = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
SUBSCRIPTION_FIELDS: Final = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
MESSAGE_TYPES: Final = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")


class TrustStoreError(PlauditError):
    """A certificate file of the SNS trust store is missing or unreadable."""


@final
class TrustStore:
    """SNS signing certificates read from local files, keyed by file name."""

    def __init__(self, certificates: Mapping[str, x509.Certificate]) -> None:
        self._certificates = dict(certificates)

    def __repr__(self) -> str:
        return f"<TrustStore certificates={sorted(self._certificates)}>"

    @classmethod
    def load(cls, paths: list[str]) -> TrustStore:
        """Read PEM certificates; a directory contributes every ``*.pem`` in it."""
        files: list[Path] = []
        for name in paths:
            path = Path(name)
            files.extend(sorted(path.glob("*.pem")) if path.is_dir() else [path])
        from cryptography import x509

        certificates: dict[str, x509.Certificate] = {}
        for path in files:
            try:
                certificates[path.name] = x509.load_pem_x509_certificate(path.read_bytes())
            except (OSError, ValueError) as error:
                raise TrustStoreError(
                    f"cannot read SNS certificate {path}: {error}; "
                    "fix or remove it from inbound.ses.certificates"
                ) from error
        return cls(certificates)

    def certificate_for(self, url: str) -> x509.Certificate:
        """Return the stored certificate whose file name ends ``url``'s path."""
        parsed = urllib.parse.urlsplit(url)
        name = posixpath.basename(parsed.path)
        if parsed.scheme != "https" or not name.endswith(".pem"):
            raise forged(f"SigningCertURL {url!r} is not an https URL of a .pem file")
        certificate = self._certificates.get(name)
        if certificate is None:
            raise forged(
                f"SNS signing certificate {name!r} is not in the local trust store; "
                "obtain it out of band, check it, and add it to inbound.ses.certificates"
            )
        return certificate


def canonical_string(message: Mapping[str, Any]) -> bytes:
    """Return the bytes SNS signs for ``message``."""
    kind = message.get("Type")
    fields = NOTIFICATION_FIELDS if kind == "Notification" else SUBSCRIPTION_FIELDS
    parts = []
    for field in fields:
        value = message.get(field)
        if value is None:
            continue
        parts.append(f"{field}\n{value}\n")
    return "".join(parts).encode()


def verify_sns(
    message: Mapping[str, Any],
    store: TrustStore,
    *,
    topics: tuple[str, ...],
    now: float,
    tolerance: float,
) -> None:
    """Check an SNS message's RSA signature, topic and timestamp."""
    kind = message.get("Type")
    if kind not in MESSAGE_TYPES:
        raise malformed(f"SNS message Type is {kind!r}; expected one of {', '.join(MESSAGE_TYPES)}")
    topic = str(message.get("TopicArn", ""))
    if topics and topic not in topics:
        raise forged(f"SNS TopicArn {topic!r} is not listed in inbound.ses.topics")

    signature = message.get("Signature")
    if not isinstance(signature, str) or not signature:
        raise unauthenticated("SNS message has no Signature")
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    algorithm = _hash_for(message.get("SignatureVersion"))
    certificate = store.certificate_for(str(message.get("SigningCertURL", "")))
    _check_validity(certificate, now)
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise forged("SNS signing certificate does not hold an RSA key")

    try:
        key.verify(_decode(signature), canonical_string(message), padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        raise forged("SNS signature does not match the message") from None
    check_timestamp(_timestamp(message), now=now, tolerance=tolerance, what="SNS Timestamp")


def _hash_for(version: object) -> hashes.HashAlgorithm:
    from cryptography.hazmat.primitives import hashes

    if version == "1":
        # SNS SignatureVersion 1 is defined as SHA1withRSA.
        return hashes.SHA1()
    if version == "2":
        return hashes.SHA256()
    raise forged(f"SNS SignatureVersion {version!r} is not supported; expected '1' or '2'")


def _decode(signature: str) -> bytes:
    try:
        return base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise forged("SNS Signature is not valid base64") from None


def _check_validity(certificate: x509.Certificate, now: float) -> None:
    moment = datetime.datetime.fromtimestamp(now, tz=datetime.UTC)
    if not certificate.not_valid_before_utc <= moment <= certificate.not_valid_after_utc:
        raise forged(
            f"SNS signing certificate {certificate.subject.rfc4514_string()} is not valid now; "
            "replace it in the trust store"
        )


def _timestamp(message: Mapping[str, Any]) -> float:
    text = str(message.get("Timestamp", ""))
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise malformed(f"SNS Timestamp {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()
