"""A Web Push service stand-in on loopback: hands out subscriptions and records pushes.

:meth:`PushStandIn.subscribe` plays the browser: it makes a P-256 key pair
and an auth secret and returns the subscription a page would send to its
server.  ``POST /_sandbox/subscribe`` does the same over HTTP and returns
the subscription's JSON, for ``plaudit ctl push-subscribe``.
``POST /push/{token}`` plays the push service.  It checks the VAPID
token (ES256, audience and expiry), decrypts the aes128gcm body with the
browser's keys and records the plaintext, so a test can check exactly
what a couple's browser would show.  Each push takes the next scripted status, then
201 once the script is used up.  A 410 also ends the subscription, so every
later push to it gets 410 as well.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections import deque
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any, Final, final

import http_ece
import jwt
import msgspec
import trio
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from plaudit.messaging.push import PushSubscription, b64url_decode
from plaudit.sandbox.http_stub import StubRequest, StubResponse, serve_stub

PATH_PREFIX: Final = "/push/"
# POST here returns a new subscription as PushSubscription.toJSON() gives it.
SUBSCRIBE_PATH: Final = "/_sandbox/subscribe"


@final
class ReceivedPush(msgspec.Struct, frozen=True, kw_only=True):
    """One push the stand-in accepted, decrypted."""

    token: str
    payload: dict[str, Any]
    ttl: str
    topic: str
    # The VAPID public key (base64url) the push was signed with.
    vapid_key: str


@final
class _Browser(msgspec.Struct, kw_only=True):
    key: ec.EllipticCurvePrivateKey
    auth: bytes
    gone: bool = False


@final
class PushStandIn:
    """Records encrypted pushes and responds on a script; see the module docstring."""

    def __init__(self, *, script: Iterable[int] = ()) -> None:
        self.script: deque[int] = deque(script)
        self.received: list[ReceivedPush] = []
        self.rejected: list[str] = []
        self.base_url = ""
        self._browsers: dict[str, _Browser] = {}

    def __repr__(self) -> str:
        return (
            f"<PushStandIn base_url={self.base_url!r} subscriptions={len(self._browsers)} "
            f"received={len(self.received)} rejected={len(self.rejected)}>"
        )

    def statistics(self) -> dict[str, int]:
        return {
            "subscriptions": len(self._browsers),
            "received": len(self.received),
            "rejected": len(self.rejected),
        }

    async def serve(
        self, *, port: int = 0, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled; ``started`` gets the base URL of the endpoints."""
        async with trio.open_nursery() as nursery:
            self.base_url = await nursery.start(partial(serve_stub, self._handle, port=port))
            task_status.started(self.base_url)

    def subscribe(self) -> PushSubscription:
        """Create a browser subscription with fresh keys; call after ``serve`` started."""
        if not self.base_url:
            raise RuntimeError("start PushStandIn.serve before subscribing")
        token = secrets.token_urlsafe(16)
        key = ec.generate_private_key(ec.SECP256R1())
        auth = secrets.token_bytes(16)
        self._browsers[token] = _Browser(key=key, auth=auth)
        public = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        return PushSubscription(
            endpoint=f"{self.base_url}{PATH_PREFIX}{token}",
            p256dh=_b64url(public),
            auth=_b64url(auth),
        )

    async def _handle(self, request: StubRequest) -> StubResponse | None:
        if request.method == "POST" and request.path == SUBSCRIBE_PATH:
            return self._subscribe_response()
        token = request.path.removeprefix(PATH_PREFIX)
        browser = self._browsers.get(token)
        if request.method != "POST" or not request.path.startswith(PATH_PREFIX):
            return StubResponse(status=404, body=b"no such route\n")
        if browser is None:
            return StubResponse(status=404, body=b"no such subscription\n")
        if browser.gone:
            return StubResponse(status=410, body=b"subscription expired\n")

        problem = self._check(request)
        if problem is not None:
            self.rejected.append(problem)
            return StubResponse(status=401 if "VAPID" in problem else 400, body=problem.encode())

        status = self.script.popleft() if self.script else 201
        if status == 410:
            browser.gone = True
        if status != 201:
            return StubResponse(status=status, body=b"scripted\n")

        plaintext = http_ece.decrypt(
            request.body, private_key=browser.key, auth_secret=browser.auth, version="aes128gcm"
        )
        self.received.append(
            ReceivedPush(
                token=token,
                payload=json.loads(plaintext),
                ttl=request.headers.get("ttl", ""),
                topic=request.headers.get("topic", ""),
                vapid_key=_vapid_key(request.headers.get("authorization", "")),
            )
        )
        location = f"{self.base_url}/message/{secrets.token_urlsafe(8)}"
        return StubResponse(status=201, headers={"location": location})

    def _subscribe_response(self) -> StubResponse:
        subscription = self.subscribe()
        browser_json = {
            "endpoint": subscription.endpoint,
            "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth},
        }
        return StubResponse(
            status=201,
            body=json.dumps(browser_json).encode(),
            headers={"content-type": "application/json"},
        )

    def _check(self, request: StubRequest) -> str | None:
        """Return why the push is invalid, or None."""
        if request.headers.get("content-encoding") != "aes128gcm":
            return "Content-Encoding must be aes128gcm"
        if "ttl" not in request.headers:
            return "missing TTL header"
        header = request.headers.get("authorization", "")
        scheme, _, rest = header.partition(" ")
        parts = dict(item.split("=", 1) for item in rest.split(",") if "=" in item)
        if scheme.lower() != "vapid" or "t" not in parts or "k" not in parts:
            return "missing VAPID authorization 'vapid t=...,k=...'"
        try:
            key = ec.EllipticCurvePublicKey.from_encoded_point(
                ec.SECP256R1(), b64url_decode(parts["k"])
            )
            claims = jwt.decode(
                parts["t"], key, algorithms=["ES256"], audience=self.base_url, leeway=60
            )
        except (ValueError, jwt.PyJWTError) as error:
            return f"invalid VAPID token: {error}"
        if int(claims.get("exp", 0)) > time.time() + 24 * 3600:
            return "VAPID token expires more than 24 hours ahead"
        if not str(claims.get("sub", "")).startswith(("mailto:", "https://")):
            return "VAPID token needs a mailto: or https: subject"
        return None


def write_vapid_key(path: Path) -> None:
    """Write a new P-256 VAPID private key to ``path`` as PKCS#8 PEM, readable by its owner only."""
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    path.write_bytes(pem)
    path.chmod(0o600)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _vapid_key(header: str) -> str:
    _, _, rest = header.partition(" ")
    parts = dict(item.split("=", 1) for item in rest.split(",") if "=" in item)
    return parts.get("k", "")
