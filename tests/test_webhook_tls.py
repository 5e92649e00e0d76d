"""Webhook deliveries over https: the endpoint's CA file, SNI and the certificate check.

Each test makes its own CA and server certificate with ``cryptography`` and
serves TLS on 127.0.0.1.  The endpoint URL names ``receiver.test``, which a
stub resolver maps to 127.0.0.1, so the delivery connects to the checked
address while TLS must still present and verify the original name.
"""

from __future__ import annotations

import base64
import datetime
import sqlite3
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h11
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from plaudit.actors.webhooks import WebhookActor
from plaudit.config.model import DEFAULT_WEBHOOK_SCHEDULE, WebhookEndpoint, WebhooksConfig
from plaudit.daemon.children import ChildContext
from plaudit.journal import AsyncJournal, Journal, Tx
from plaudit.webhooks.endpoints import Endpoint, check_endpoints
from plaudit.webhooks.router import Router
from plaudit.webhooks.signing import Secret, verify

HOST = "receiver.test"
SECRET = Secret.parse("whsec_" + base64.b64encode(bytes(range(32))).decode())
# Real time on loopback; generous because the machine may be loaded.
DEADLINE_SECONDS = 60.0


@dataclass
class Authority:
    """A throwaway CA that issues server certificates."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, name: str, folder: Path) -> tuple[Path, Path]:
        """Write a certificate for DNS name ``name`` and its key; return both paths."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        cert_path = folder / f"{name}.crt"
        key_path = folder / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cert_path, key_path


def make_authority(common_name: str) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return Authority(key, cert)


@dataclass
class TlsReceiver:
    """What the TLS server saw: SNI names and signed requests."""

    server_names: list[str | None] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    handshake_errors: int = 0


async def serve_tls(
    receiver: TlsReceiver,
    cert: Path,
    key: Path,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def remember_name(_socket: Any, name: str | None, _context: ssl.SSLContext) -> None:
        receiver.server_names.append(name)

    context.sni_callback = remember_name
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]

    async def handle(stream: trio.SocketStream) -> None:
        tls = trio.SSLStream(stream, context, server_side=True)
        try:
            await serve_http(receiver, tls)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            receiver.handshake_errors += 1
        finally:
            await trio.aclose_forcefully(tls)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, handle, listeners)
        task_status.started(port)


async def serve_http(receiver: TlsReceiver, stream: trio.SSLStream[trio.SocketStream]) -> None:
    connection = h11.Connection(h11.SERVER)
    headers: dict[str, str] = {}
    body = b""
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(bytes(await stream.receive_some(65536)))
        elif isinstance(event, h11.Request):
            headers = {name.decode(): value.decode() for name, value in event.headers}
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            receiver.requests.append((headers, body))
            response = h11.Response(status_code=204, headers=[("content-length", "0")])
            await stream.send_all(connection.send(response) or b"")
            await stream.send_all(connection.send(h11.EndOfMessage()) or b"")
            connection.start_next_cycle()
            headers, body = {}, b""
        else:
            return


async def resolve_to_loopback(host: str, port: int) -> list[str]:
    if host != HOST:
        raise AssertionError(f"unexpected lookup of {host!r}")
    return ["127.0.0.1"]


@dataclass
class Run:
    receiver: TlsReceiver
    attempts: list[tuple[Any, ...]]


async def deliver_once(tmp_path: Path, *, server_name: str, wrong_ca: bool = False) -> Run:
    """Emit one event, let the actor attempt it once over TLS, and return what happened."""
    authority = make_authority("Plaudit test CA")
    cert, key = authority.issue(server_name, tmp_path)
    trusted = make_authority("Some other CA") if wrong_ca else authority
    ca_file = tmp_path / "trusted-ca.pem"
    ca_file.write_bytes(trusted.pem())

    receiver = TlsReceiver()
    path = tmp_path / "journal.sqlite3"
    journal = Journal.open(path)
    try:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_tls, receiver, cert, key)
            target = endpoint(f"https://{HOST}:{port}/hook", ca_file=str(ca_file))
            journal.set_emit_hooks([Router([target])])
            writer = AsyncJournal(journal)
            await nursery.start(writer.run)
            actor = WebhookActor(
                writer,
                [target],
                lease_seconds=120.0,
                poll_interval=0.05,
                resolver=resolve_to_loopback,
            )
            await writer.transaction(emit_review)

            context = ChildContext("webhooks")
            with trio.fail_after(DEADLINE_SECONDS):
                async with trio.open_nursery() as actors:
                    actors.start_soon(actor.start, context)
                    while not journal_rows(path, "SELECT 1 FROM webhook_attempts"):
                        await trio.sleep(0.02)
                    context.stop_requested.set()
                    actor.wake()
            nursery.cancel_scope.cancel()
    finally:
        journal.close()

    attempts = journal_rows(
        path, "SELECT status_code, outcome, error FROM webhook_attempts ORDER BY id"
    )
    return Run(receiver, attempts)


def endpoint(url: str, **fields: Any) -> Endpoint:
    values: dict[str, Any] = {
        "name": "crm",
        "url": url,
        "secrets": (SECRET,),
        "events": ("*",),
        "enabled": True,
        "retry_schedule": DEFAULT_WEBHOOK_SCHEDULE,
        "timeout": 15.0,
        "disable_after": 5 * 86400.0,
        "allow_private": True,
    }
    values.update(fields)
    return Endpoint(**values)


def emit_review(tx: Tx) -> None:
    tx.emit(
        type="review.created",
        key="review.created:google:r1",
        platform="google",
        subject="r1",
        payload={"review": {"review_id": "r1"}},
    )


def journal_rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


async def test_https_delivery_verifies_name(tmp_path: Path) -> None:
    run = await deliver_once(tmp_path, server_name=HOST)

    assert run.attempts == [(204, "delivered", None)]
    # SNI carried the URL's name although the connection went to 127.0.0.1.
    assert run.receiver.server_names == [HOST]
    [(headers, body)] = run.receiver.requests
    assert headers["host"].startswith(f"{HOST}:")
    assert verify([SECRET], headers, body, now=headers_time(headers)) == headers["webhook-id"]


async def test_wrong_ca_rejected_clearly(tmp_path: Path) -> None:
    run = await deliver_once(tmp_path, server_name=HOST, wrong_ca=True)

    [(status, outcome, error)] = run.attempts
    assert status is None
    assert outcome == "retry"
    assert error.startswith(f"TLS certificate of {HOST} rejected (")
    assert "unable to get local issuer certificate" in error
    assert "ca_file" in error
    assert run.receiver.requests == []


async def test_certificate_for_other_name_rejected(tmp_path: Path) -> None:
    run = await deliver_once(tmp_path, server_name="other.test")

    [(status, outcome, error)] = run.attempts
    assert status is None
    assert outcome == "retry"
    assert f"TLS certificate of {HOST} rejected" in error
    assert "Hostname mismatch" in error
    assert run.receiver.requests == []


def headers_time(headers: dict[str, str]) -> float:
    return float(headers["webhook-timestamp"])


def config_problems(url: str, ca_file: str) -> list[str]:
    entry = WebhookEndpoint(name="crm", url=url, secrets=[f"whsec_{'A' * 43}="], ca_file=ca_file)
    problems = check_endpoints(WebhooksConfig(endpoints=[entry]))
    return [message for path, message in problems if path[-1] == "ca_file"]


def test_ca_file_checked_in_config(tmp_path: Path) -> None:
    good = tmp_path / "ca.pem"
    good.write_bytes(make_authority("Config CA").pem())
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")

    assert config_problems(f"https://{HOST}/hook", str(good)) == []
    [missing] = config_problems(f"https://{HOST}/hook", str(tmp_path / "absent.pem"))
    assert "not found" in missing
    [unreadable] = config_problems(f"https://{HOST}/hook", str(garbage))
    assert "PEM file of CA certificates" in unreadable
    [plain] = config_problems(f"http://{HOST}/hook", str(good))
    assert "http://" in plain
