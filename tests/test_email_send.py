"""E-mail over real SMTP to the loopback sink: MIME layout, headers and reply classes."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Literal

import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from plaudit.config.model import SmtpConfig, VendorConfig
from plaudit.messaging.email import SendError, SmtpSender, build_message, message_id_for
from plaudit.messaging.templates import RenderedMessage
from plaudit.sandbox.smtp import Outcome, SmtpSink

VENDOR = VendorConfig(
    name="Willow Studio",
    postal_address="12 Elm Street, Springfield, IL 62701",
    from_address="hello@willow.example",
    unsubscribe_url="https://willow.example/unsubscribe",
    unsubscribe_mailto="unsubscribe@willow.example",
)
RENDERED = RenderedMessage(subject="Thank you", text="Dear Ana", html="<p>Dear Ana</p>")


def tls_contexts(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """Return a server context with a fresh self-signed certificate for 127.0.0.1, and a
    client context that trusts only that certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = tmp_path / "cert.pem"
    key_path = tmp_path / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cafile=str(cert_path))
    return server, client


@asynccontextmanager
async def running_sink(*script: Outcome) -> AsyncIterator[tuple[SmtpSink, SmtpSender]]:
    sink = SmtpSink(script=script, slow_seconds=0.5)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(sink.serve)
        config = SmtpConfig(host="127.0.0.1", port=port, security="none", timeout=30)
        yield sink, SmtpSender(config)
        nursery.cancel_scope.cancel()


def request_message() -> EmailMessage:
    return build_message(
        RENDERED,
        vendor=VENDOR,
        to=["ana@example.com"],
        message_id=message_id_for(7, domain="willow.example"),
        unsubscribe_token="tok123",
    )


async def test_message_arrives_multipart() -> None:
    async with running_sink() as (sink, sender):
        await sender.send(request_message())

    (received,) = sink.messages
    message = received.parsed()
    assert received.recipients == ["ana@example.com"]
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert plain is not None
    assert html is not None
    assert "Dear Ana" in plain.get_content()
    assert "<p>Dear Ana</p>" in html.get_content()


async def test_postal_address_in_both_parts() -> None:
    async with running_sink() as (sink, sender):
        await sender.send(request_message())

    message = sink.messages[0].parsed()
    for kind in ("plain", "html"):
        part = message.get_body(preferencelist=(kind,))
        assert part is not None
        assert "12 Elm Street, Springfield, IL 62701" in part.get_content()


async def test_one_click_unsubscribe_headers() -> None:
    async with running_sink() as (sink, sender):
        await sender.send(request_message())

    message = sink.messages[0].parsed()
    assert message["Message-ID"] == "<request-7@willow.example>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = " ".join(str(message["List-Unsubscribe"]).split())
    assert unsubscribe == (
        "<https://willow.example/unsubscribe/tok123>, "
        "<mailto:unsubscribe@willow.example?subject=unsubscribe-tok123>"
    )


@pytest.mark.parametrize(
    ("outcome", "permanent", "code"),
    [("temporary", False, 451), ("reject", True, 550), ("disconnect", False, None)],
)
async def test_failure_classified(outcome: Outcome, permanent: bool, code: int | None) -> None:
    async with running_sink(outcome) as (sink, sender):
        with pytest.raises(SendError) as caught:
            await sender.send(request_message())

    assert caught.value.permanent is permanent
    assert caught.value.code == code
    assert sink.messages == []


async def test_reject_carries_enhanced_status() -> None:
    async with running_sink("reject") as (_sink, sender):
        with pytest.raises(SendError) as caught:
            await sender.send(request_message())

    assert caught.value.status == "5.1.1"


async def test_slow_server_still_delivers() -> None:
    async with running_sink("slow") as (sink, sender):
        await sender.send(request_message())

    assert len(sink.messages) == 1
    assert sender.statistics().sent == 1
    assert sender.statistics().failed == 0


async def test_dot_stuffed_line_survives() -> None:
    rendered = RenderedMessage(subject="s", text="line one\n.\n..two\nend", html="")
    message = build_message(
        rendered,
        vendor=VENDOR,
        to=["ana@example.com"],
        message_id="<x@willow.example>",
        unsubscribe_token="t",
    )
    async with running_sink() as (sink, sender):
        await sender.send(message)

    body = sink.messages[0].parsed().get_content().replace("\r\n", "\n")
    assert "line one\n.\n..two\nend" in body


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_encrypted_and_authenticated(
    tmp_path: Path, security: Literal["starttls", "tls"]
) -> None:
    server, client = tls_contexts(tmp_path)
    sink = SmtpSink(
        tls_context=server, implicit_tls=security == "tls", credentials=("studio", "s3cret")
    )
    async with trio.open_nursery() as nursery:
        port = await nursery.start(sink.serve)
        config = SmtpConfig(
            host="127.0.0.1",
            port=port,
            security=security,
            username="studio",
            password="s3cret",
            timeout=30,
        )
        await SmtpSender(config, tls_context=client).send(request_message())
        nursery.cancel_scope.cancel()

    assert sink.authenticated == ["studio"]
    assert len(sink.messages) == 1


async def test_wrong_password_rejected(tmp_path: Path) -> None:
    server, client = tls_contexts(tmp_path)
    sink = SmtpSink(tls_context=server, credentials=("studio", "s3cret"))
    async with trio.open_nursery() as nursery:
        port = await nursery.start(sink.serve)
        config = SmtpConfig(
            host="127.0.0.1", port=port, username="studio", password="wrong", timeout=30
        )
        with pytest.raises(SendError) as caught:
            await SmtpSender(config, tls_context=client).send(request_message())
        nursery.cancel_scope.cancel()

    assert caught.value.code == 535
    # A settings problem, not a bounce of the couple's address.
    assert caught.value.permanent is False
    assert sink.messages == []
