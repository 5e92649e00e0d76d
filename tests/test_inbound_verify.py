"""Signature checks of every inbound provider, as pure functions."""

from __future__ import annotations

import base64
import datetime
import json
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from plaudit.connectors.facebook import signature_of
from plaudit.inbound import sns, verify
from plaudit.inbound.providers import load_ec_key, load_public_keys
from plaudit.inbound.testing import (
    PubSubSigner,
    SendgridSigner,
    SnsSigner,
    basic_auth,
    mailgun_signature,
    twilio_headers,
)
from plaudit.webhooks import signing

NOW = 1_760_000_000.0


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def rejection(error: pytest.ExceptionInfo[verify.Rejected]) -> tuple[int, str]:
    return error.value.status, error.value.outcome


class TestSendgrid:
    body = b'[{"email":"a@example.com","event":"delivered","timestamp":1}]'

    def key(self, signer: SendgridSigner) -> ec.EllipticCurvePublicKey:
        return load_ec_key(signer.public_key_text().encode())

    def test_valid_signature_passes(self) -> None:
        signer = SendgridSigner()
        headers = lower(signer.headers(self.body, int(NOW)))
        verify.verify_sendgrid(headers, self.body, self.key(signer), now=NOW, tolerance=300)

    def test_changed_body_is_forged(self) -> None:
        signer = SendgridSigner()
        headers = lower(signer.headers(self.body, int(NOW)))
        with pytest.raises(verify.Rejected) as error:
            verify.verify_sendgrid(
                headers, self.body + b" ", self.key(signer), now=NOW, tolerance=300
            )
        assert rejection(error) == (403, "forged")

    def test_other_key_is_forged(self) -> None:
        headers = lower(SendgridSigner().headers(self.body, int(NOW)))
        with pytest.raises(verify.Rejected) as error:
            verify.verify_sendgrid(
                headers, self.body, self.key(SendgridSigner()), now=NOW, tolerance=300
            )
        assert rejection(error) == (403, "forged")

    def test_old_timestamp_is_stale(self) -> None:
        signer = SendgridSigner()
        headers = lower(signer.headers(self.body, int(NOW) - 301))
        with pytest.raises(verify.Rejected) as error:
            verify.verify_sendgrid(headers, self.body, self.key(signer), now=NOW, tolerance=300)
        assert rejection(error) == (403, "stale")

    def test_missing_headers_unauthenticated(self) -> None:
        with pytest.raises(verify.Rejected) as error:
            verify.verify_sendgrid(
                {}, self.body, self.key(SendgridSigner()), now=NOW, tolerance=300
            )
        assert rejection(error) == (401, "unauthenticated")

    def test_pem_key_loads(self) -> None:
        signer = SendgridSigner()
        from cryptography.hazmat.primitives import serialization

        pem = signer.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert isinstance(load_ec_key(pem), ec.EllipticCurvePublicKey)


class TestMailgun:
    key = "key-mailgun-test"

    def test_valid_signature_returns_token(self) -> None:
        payload = {"signature": mailgun_signature(self.key, int(NOW), "tok1")}
        assert verify.verify_mailgun(payload, self.key.encode(), now=NOW, tolerance=300) == "tok1"

    def test_wrong_key_is_forged(self) -> None:
        payload = {"signature": mailgun_signature("other", int(NOW), "tok1")}
        with pytest.raises(verify.Rejected) as error:
            verify.verify_mailgun(payload, self.key.encode(), now=NOW, tolerance=300)
        assert rejection(error) == (403, "forged")

    def test_replayed_token_is_stale(self) -> None:
        payload = {"signature": mailgun_signature(self.key, int(NOW) - 3600, "tok1")}
        with pytest.raises(verify.Rejected) as error:
            verify.verify_mailgun(payload, self.key.encode(), now=NOW, tolerance=300)
        assert rejection(error) == (403, "stale")

    def test_unsigned_body_unauthenticated(self) -> None:
        with pytest.raises(verify.Rejected) as error:
            verify.verify_mailgun({"event-data": {}}, self.key.encode(), now=NOW, tolerance=300)
        assert rejection(error) == (401, "unauthenticated")

    def test_non_numeric_timestamp_malformed(self) -> None:
        payload = {"signature": {"timestamp": "soon", "token": "t", "signature": "s"}}
        with pytest.raises(verify.Rejected) as error:
            verify.verify_mailgun(payload, self.key.encode(), now=NOW, tolerance=300)
        assert rejection(error) == (400, "malformed")


class TestPostmark:
    def test_matching_credentials_pass(self) -> None:
        verify.verify_basic_auth(lower(basic_auth("hook", "s3cret")), "hook", "s3cret")

    def test_wrong_password_is_forged(self) -> None:
        with pytest.raises(verify.Rejected) as error:
            verify.verify_basic_auth(lower(basic_auth("hook", "guess")), "hook", "s3cret")
        assert rejection(error) == (403, "forged")

    def test_missing_header_unauthenticated(self) -> None:
        with pytest.raises(verify.Rejected) as error:
            verify.verify_basic_auth({}, "hook", "s3cret")
        assert rejection(error) == (401, "unauthenticated")


class TestTwilio:
    url = "https://hooks.example.com/inbound/twilio"
    params = (("MessageSid", "SM1"), ("MessageStatus", "delivered"), ("To", "+15550100"))

    def test_valid_signature_passes(self) -> None:
        headers = lower(twilio_headers(self.url, self.params, "token"))
        verify.verify_twilio(headers, self.url, list(reversed(self.params)), "token")

    def test_other_url_is_forged(self) -> None:
        headers = lower(twilio_headers(self.url, self.params, "token"))
        with pytest.raises(verify.Rejected) as error:
            verify.verify_twilio(headers, self.url + "x", self.params, "token")
        assert rejection(error) == (403, "forged")

    def test_changed_param_is_forged(self) -> None:
        headers = lower(twilio_headers(self.url, self.params, "token"))
        changed = [*self.params[:2], ("To", "+15550199")]
        with pytest.raises(verify.Rejected) as error:
            verify.verify_twilio(headers, self.url, changed, "token")
        assert rejection(error) == (403, "forged")


class TestResend:
    body = b'{"type":"email.delivered"}'

    def headers(self, secret: signing.Secret, timestamp: int) -> dict[str, str]:
        signed = signing.sign_headers(
            [secret], webhook_id="msg_1", timestamp=timestamp, body=self.body
        )
        return {name.replace("webhook-", "svix-"): value for name, value in signed.items()}

    def test_svix_headers_pass(self) -> None:
        secret = signing.generate_secret()
        headers = self.headers(secret, int(NOW))
        assert verify.verify_resend(headers, self.body, [secret], now=NOW, tolerance=300) == "msg_1"

    def test_other_secret_is_forged(self) -> None:
        headers = self.headers(signing.generate_secret(), int(NOW))
        with pytest.raises(verify.Rejected) as error:
            verify.verify_resend(
                headers, self.body, [signing.generate_secret()], now=NOW, tolerance=300
            )
        assert rejection(error) == (403, "forged")

    def test_old_timestamp_is_stale(self) -> None:
        secret = signing.generate_secret()
        headers = self.headers(secret, int(NOW) - 900)
        with pytest.raises(verify.Rejected) as error:
            verify.verify_resend(headers, self.body, [secret], now=NOW, tolerance=300)
        assert rejection(error) == (403, "stale")


class TestFacebook:
    body = b'{"object":"page","entry":[]}'

    def test_valid_signature_passes(self) -> None:
        headers = {"x-hub-signature-256": signature_of(self.body, "app-secret")}
        verify.verify_facebook(headers, self.body, "app-secret")

    def test_wrong_signature_is_forged(self) -> None:
        headers = {"x-hub-signature-256": signature_of(self.body, "other")}
        with pytest.raises(verify.Rejected) as error:
            verify.verify_facebook(headers, self.body, "app-secret")
        assert rejection(error) == (403, "forged")

    def test_missing_signature_unauthenticated(self) -> None:
        with pytest.raises(verify.Rejected) as error:
            verify.verify_facebook({}, self.body, "app-secret")
        assert rejection(error) == (401, "unauthenticated")

    def test_handshake_echoes_challenge(self) -> None:
        query = {"hub.mode": "subscribe", "hub.verify_token": "vt", "hub.challenge": "42"}
        assert verify.verify_facebook_handshake(query, "vt") == "42"

    def test_handshake_wrong_token_forged(self) -> None:
        query = {"hub.mode": "subscribe", "hub.verify_token": "no", "hub.challenge": "42"}
        with pytest.raises(verify.Rejected) as error:
            verify.verify_facebook_handshake(query, "vt")
        assert rejection(error) == (403, "forged")


class TestGoogle:
    audience = "https://hooks.example.com/inbound/google"
    expected = verify.GoogleAudience(
        audience=audience, issuers=("https://accounts.google.com",), email=""
    )

    def keys(self, signer: PubSubSigner, tmp_path: Path) -> list[object]:
        return load_public_keys([str(signer.write_public_key(tmp_path / "google.pem"))])

    def check(self, token: str, keys: list[object]) -> dict[str, object]:
        headers = {"authorization": f"Bearer {token}"}
        return verify.verify_google(headers, keys, self.expected, now=time.time(), tolerance=60)

    def test_valid_token_returns_claims(self, tmp_path: Path) -> None:
        signer = PubSubSigner()
        claims = self.check(
            signer.token(audience=self.audience, now=time.time()), self.keys(signer, tmp_path)
        )
        assert claims["aud"] == self.audience

    def test_other_key_is_forged(self, tmp_path: Path) -> None:
        token = PubSubSigner().token(audience=self.audience, now=time.time())
        with pytest.raises(verify.Rejected) as error:
            self.check(token, self.keys(PubSubSigner(), tmp_path))
        assert rejection(error) == (403, "forged")

    def test_wrong_audience_is_forged(self, tmp_path: Path) -> None:
        signer = PubSubSigner()
        token = signer.token(audience="https://elsewhere.example.com", now=time.time())
        with pytest.raises(verify.Rejected) as error:
            self.check(token, self.keys(signer, tmp_path))
        assert rejection(error) == (403, "forged")

    def test_wrong_issuer_is_forged(self, tmp_path: Path) -> None:
        signer = PubSubSigner()
        token = signer.token(audience=self.audience, now=time.time(), issuer="https://evil.example")
        with pytest.raises(verify.Rejected) as error:
            self.check(token, self.keys(signer, tmp_path))
        assert rejection(error) == (403, "forged")

    def test_expired_token_is_stale(self, tmp_path: Path) -> None:
        signer = PubSubSigner()
        token = signer.token(audience=self.audience, now=time.time() - 7200)
        with pytest.raises(verify.Rejected) as error:
            self.check(token, self.keys(signer, tmp_path))
        assert rejection(error) == (403, "stale")

    def test_missing_bearer_unauthenticated(self, tmp_path: Path) -> None:
        with pytest.raises(verify.Rejected) as error:
            verify.verify_google({}, [], self.expected, now=NOW, tolerance=60)
        assert rejection(error) == (401, "unauthenticated")


class TestSns:
    topic = "arn:aws:sns:us-east-1:123456789012:ses-events"

    def message(self, kind: str = "Notification") -> dict[str, object]:
        message: dict[str, object] = {
            "Type": kind,
            "MessageId": "m-1",
            "TopicArn": self.topic,
            "Message": json.dumps({"notificationType": "Delivery"}),
            "Timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
        }
        if kind == "SubscriptionConfirmation":
            message["Token"] = "tok"
            message["SubscribeURL"] = "https://sns.example.invalid/?Action=ConfirmSubscription"
        return message

    def store(self, signer: SnsSigner, tmp_path: Path) -> sns.TrustStore:
        signer.write(tmp_path)
        return sns.TrustStore.load([str(tmp_path)])

    def check(self, message: dict[str, object], store: sns.TrustStore) -> None:
        stamp = sns._timestamp(message)
        sns.verify_sns(message, store, topics=(self.topic,), now=stamp + 1, tolerance=300)

    @pytest.mark.parametrize("version", ["1", "2"])
    def test_signature_versions_pass(self, version: str, tmp_path: Path) -> None:
        signer = SnsSigner()
        self.check(signer.sign(self.message(), version=version), self.store(signer, tmp_path))

    def test_subscription_confirmation_passes(self, tmp_path: Path) -> None:
        signer = SnsSigner()
        message = signer.sign(self.message("SubscriptionConfirmation"), version="2")
        self.check(message, self.store(signer, tmp_path))

    def test_changed_message_is_forged(self, tmp_path: Path) -> None:
        signer = SnsSigner()
        message = signer.sign(self.message())
        message["Message"] = json.dumps({"notificationType": "Bounce"})
        with pytest.raises(verify.Rejected) as error:
            self.check(message, self.store(signer, tmp_path))
        assert rejection(error) == (403, "forged")

    def test_unknown_certificate_is_forged(self, tmp_path: Path) -> None:
        store = self.store(SnsSigner(), tmp_path)
        message = SnsSigner(name="SimpleNotificationService-other.pem").sign(self.message())
        with pytest.raises(verify.Rejected) as error:
            self.check(message, store)
        assert rejection(error) == (403, "forged")
        assert "not in the local trust store" in error.value.reason

    def test_unlisted_topic_is_forged(self, tmp_path: Path) -> None:
        signer = SnsSigner()
        message = signer.sign({**self.message(), "TopicArn": "arn:aws:sns:us-east-1:1:other"})
        with pytest.raises(verify.Rejected) as error:
            self.check(message, self.store(signer, tmp_path))
        assert rejection(error) == (403, "forged")

    def test_old_message_is_stale(self, tmp_path: Path) -> None:
        signer = SnsSigner()
        message = signer.sign(self.message())
        store = self.store(signer, tmp_path)
        with pytest.raises(verify.Rejected) as error:
            sns.verify_sns(
                message, store, topics=(), now=sns._timestamp(message) + 900, tolerance=300
            )
        assert rejection(error) == (403, "stale")

    def test_unknown_version_is_forged(self, tmp_path: Path) -> None:
        signer = SnsSigner()
        message = {**signer.sign(self.message()), "SignatureVersion": "9"}
        with pytest.raises(verify.Rejected) as error:
            self.check(message, self.store(signer, tmp_path))
        assert rejection(error) == (403, "forged")

    def test_unreadable_certificate_raises(self, tmp_path: Path) -> None:
        (tmp_path / "broken.pem").write_text("not a certificate")
        with pytest.raises(sns.TrustStoreError, match=r"broken\.pem"):
            sns.TrustStore.load([str(tmp_path)])

    def test_signature_is_base64(self) -> None:
        assert base64.b64decode(SnsSigner().sign(self.message())["Signature"])
