"""Per-provider credentials loaded from files, and the check each request must pass.

:class:`Verifiers` turns the ``[inbound]`` table into one callable per
configured provider.  Each callable verifies a request on its raw body and
returns the delivery id under which the inbox stores it, so a provider's
retry of the same request is stored once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import urllib.parse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, final

import msgspec

from plaudit.config.credential_files import CredentialFile, read_credential_file
from plaudit.config.model import InboundConfig
from plaudit.errors import ConfigError, PlauditError
from plaudit.inbound import sns, verify
from plaudit.inbound.mapping import MalformedPayload, decode_json
from plaudit.webhooks import signing

if TYPE_CHECKING:
    # cryptography takes about 7 MB, so the key loaders import it on first
    # use: a listener without SendGrid or Pub/Sub keys never loads it.
    from cryptography.hazmat.primitives.asymmetric import ec

# Headers kept with each stored request, for audit and re-verification.
# Authorization is left out on purpose: it carries Postmark's password.
KEPT_HEADERS: Final = (
    "content-type",
    "user-agent",
    "x-twilio-email-event-webhook-signature",
    "x-twilio-email-event-webhook-timestamp",
    "x-twilio-signature",
    "x-hub-signature-256",
    "svix-id",
    "svix-timestamp",
    "svix-signature",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-amz-sns-message-type",
    "x-amz-sns-message-id",
)


class CredentialError(PlauditError):
    """A credential file named in ``[inbound]`` is missing or unreadable."""


@final
class Request(msgspec.Struct, frozen=True, kw_only=True):
    """One HTTP request as the listener received it; header names are lower-case."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes


Check = Callable[[Request, float], str]


def body_id(body: bytes) -> str:
    """Return a delivery id for providers that send none: the body's SHA-256."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _json(body: bytes, provider: str) -> Any:
    try:
        return decode_json(body, provider)
    except MalformedPayload as error:
        raise verify.malformed(str(error)) from error


def _read(key: tuple[str | int, ...], path: str) -> bytes:
    """Read a public key or certificate file; raise CredentialError naming the key and file."""
    try:
        return read_credential_file(CredentialFile(key=key, path=path, secret=False))
    except ConfigError as error:
        raise CredentialError("; ".join(error.problems)) from error


def _text(key: tuple[str | int, ...], path: str, *, warn: bool = True) -> str:
    """Read a shared secret; raise CredentialError for an empty file, which would verify nothing.

    Without ``warn``, a file that other users can read is not logged.
    """
    try:
        entry = CredentialFile(key=key, path=path, secret=True)
        data = read_credential_file(entry, warn=warn)
    except ConfigError as error:
        raise CredentialError("; ".join(error.problems)) from error
    return data.decode("utf-8").strip()


def load_ec_key(data: bytes) -> ec.EllipticCurvePublicKey:
    """Read a P-256 public key in PEM or in SendGrid's base64 DER form."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import (
        load_der_public_key,
        load_pem_public_key,
    )

    try:
        if b"-----BEGIN" in data:
            key = load_pem_public_key(data)
        else:
            key = load_der_public_key(base64.b64decode(data.strip(), validate=True))
    except (ValueError, binascii.Error) as error:
        raise CredentialError(f"SendGrid verification key is not a public key: {error}") from error
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise CredentialError("SendGrid verification key is not an ECDSA key")
    return key


def load_public_keys(paths: list[str]) -> list[Any]:
    """Read RSA public keys from PEM certificates or PEM public keys."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    from cryptography.x509 import load_pem_x509_certificate

    keys: list[Any] = []
    for index, path in enumerate(paths):
        data = _read(("inbound", "google", "certificates", index), path)
        try:
            if b"CERTIFICATE" in data:
                keys.append(load_pem_x509_certificate(data).public_key())
            else:
                keys.append(load_pem_public_key(data))
        except ValueError as error:
            raise CredentialError(
                f"{path} is not a PEM certificate or public key: {error}"
            ) from error
    return keys


@final
class Verifiers:
    """The check of every provider configured in ``[inbound]``; see the module docstring."""

    def __init__(self, config: InboundConfig, *, warn: bool = True) -> None:
        """Read every credential file; raise CredentialError naming the first unusable one.

        ``warn=False`` skips the log warning for secret files other users can
        read, for ``check-config``, which prints its own.
        """
        self._warn = warn
        # NOTE: a provider retry that keeps the original signed timestamp (SNS
        # does) is rejected as stale once it is older than this tolerance.
        self.tolerance = config.timestamp_tolerance
        self.checks: dict[str, Check] = {}
        self.verify_token = ""
        self._build(config)

    def __repr__(self) -> str:
        return f"<Verifiers providers={sorted(self.checks)}>"

    def _build(self, config: InboundConfig) -> None:
        if config.sendgrid is not None:
            key_file = config.sendgrid.public_key_file
            data = _read(("inbound", "sendgrid", "public_key_file"), key_file)
            try:
                public_key = load_ec_key(data)
            except CredentialError as error:
                raise CredentialError(
                    f"{key_file}: inbound.sendgrid.public_key_file: {error}; "
                    "paste the verification key from SendGrid's Event Webhook settings"
                ) from error
            self._sendgrid(public_key)
        if config.mailgun is not None:
            key = ("inbound", "mailgun", "signing_key_file")
            self._mailgun(_text(key, config.mailgun.signing_key_file, warn=self._warn).encode())
        if config.postmark is not None:
            key = ("inbound", "postmark", "password_file")
            password = _text(key, config.postmark.password_file, warn=self._warn)
            self._postmark(config.postmark.username, password)
        if config.ses is not None:
            self._ses(sns.TrustStore.load(config.ses.certificates), tuple(config.ses.topics))
        if config.twilio is not None:
            self._twilio(
                _text(
                    ("inbound", "twilio", "auth_token_file"),
                    config.twilio.auth_token_file,
                    warn=self._warn,
                ),
                config.twilio.public_url.rstrip("/"),
            )
        if config.resend is not None:
            secret_file = config.resend.secret_file
            text = _text(("inbound", "resend", "secret_file"), secret_file, warn=self._warn)
            self._resend(text, secret_file)
        if config.facebook is not None:
            facebook = config.facebook
            key = ("inbound", "facebook", "app_secret_file")
            self._facebook(_text(key, facebook.app_secret_file, warn=self._warn))
            if facebook.verify_token_file:
                key = ("inbound", "facebook", "verify_token_file")
                self.verify_token = _text(key, facebook.verify_token_file, warn=self._warn)
        if config.google is not None:
            expected = verify.GoogleAudience(
                audience=config.google.audience,
                issuers=tuple(config.google.issuers),
                email=config.google.email,
            )
            self._google(load_public_keys(config.google.certificates), expected)

    def _sendgrid(self, key: ec.EllipticCurvePublicKey) -> None:
        def check(request: Request, now: float) -> str:
            verify.verify_sendgrid(
                request.headers, request.body, key, now=now, tolerance=self.tolerance
            )
            return body_id(request.body)

        self.checks["sendgrid"] = check

    def _mailgun(self, signing_key: bytes) -> None:
        def check(request: Request, now: float) -> str:
            payload = _json(request.body, "Mailgun")
            if not isinstance(payload, dict):
                raise verify.malformed("Mailgun body must be a JSON object")
            token = verify.verify_mailgun(payload, signing_key, now=now, tolerance=self.tolerance)
            event = payload.get("event-data")
            return str(event.get("id")) if isinstance(event, dict) and event.get("id") else token

        self.checks["mailgun"] = check

    def _postmark(self, username: str, password: str) -> None:
        def check(request: Request, now: float) -> str:
            verify.verify_basic_auth(request.headers, username, password)
            return body_id(request.body)

        self.checks["postmark"] = check

    def _ses(self, store: sns.TrustStore, topics: tuple[str, ...]) -> None:
        def check(request: Request, now: float) -> str:
            message = _json(request.body, "SNS")
            if not isinstance(message, dict) or not message.get("MessageId"):
                raise verify.malformed("SNS body must be a JSON object with a MessageId")
            sns.verify_sns(message, store, topics=topics, now=now, tolerance=self.tolerance)
            return str(message["MessageId"])

        self.checks["ses"] = check

    def _twilio(self, auth_token: str, public_url: str) -> None:
        def check(request: Request, now: float) -> str:
            try:
                params = urllib.parse.parse_qsl(
                    request.body.decode("ascii"), keep_blank_values=True
                )
            except UnicodeDecodeError as error:
                raise verify.malformed(f"Twilio body is not a URL-encoded form: {error}") from error
            url = public_url + request.path + (f"?{request.query}" if request.query else "")
            verify.verify_twilio(request.headers, url, params, auth_token)
            fields = dict(params)
            sid = fields.get("MessageSid") or fields.get("SmsSid")
            if not sid:
                raise verify.malformed("Twilio request has no MessageSid")
            return f"{sid}:{fields.get('MessageStatus') or fields.get('SmsStatus', '')}"

        self.checks["twilio"] = check

    def _resend(self, text: str, path: str) -> None:
        try:
            secrets = [
                signing.Secret.parse(line.strip()) for line in text.splitlines() if line.strip()
            ]
        except signing.InvalidSecretError as error:
            raise CredentialError(f"{path}: inbound.resend.secret_file: {error}") from error

        def check(request: Request, now: float) -> str:
            return verify.verify_resend(
                request.headers, request.body, secrets, now=now, tolerance=self.tolerance
            )

        self.checks["resend"] = check

    def _facebook(self, app_secret: str) -> None:
        def check(request: Request, now: float) -> str:
            verify.verify_facebook(request.headers, request.body, app_secret)
            return body_id(request.body)

        self.checks["facebook"] = check

    def _google(self, keys: list[Any], expected: verify.GoogleAudience) -> None:
        def check(request: Request, now: float) -> str:
            verify.verify_google(request.headers, keys, expected, now=now, tolerance=self.tolerance)
            payload = _json(request.body, "Pub/Sub")
            message = payload.get("message") if isinstance(payload, dict) else None
            if not isinstance(message, dict) or not message.get("messageId"):
                raise verify.malformed("Pub/Sub push body needs message.messageId")
            return str(message["messageId"])

        self.checks["google"] = check
