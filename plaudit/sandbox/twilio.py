"""An SMS provider stand-in speaking Twilio's Messages API wire format, on loopback.

``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` with Basic auth and
a form body gets the responses Twilio sends: 201 with a JSON message resource, or
an error body ``{"code", "message", "status"}``.  Each send takes the next
scripted outcome, then ``ok`` once the script is used up:

- ``ok``: accept; status callbacks ``sent`` then ``delivered``.
- ``undelivered``: accept; callbacks ``sent`` then ``undelivered`` (error 30003).
- ``invalid_number``: 400 with error 21211.
- ``unsubscribed``: 400 with error 21610 (the recipient texted STOP).
- ``server_error``: 500 with error 20500; nothing is recorded.
- ``rate_limited``: 429 with error 20429 and ``Retry-After: 1``.
- ``disconnect``: close the connection before responding; nothing is recorded.
- ``accept_then_disconnect``: record the message, fire its callbacks, then
  close without answering, as when a response is lost on the way back.
- ``slow``: wait ``slow_seconds``, then accept.

Status callbacks are signed with ``X-Twilio-Signature`` using the auth
token, and only go to loopback URLs.  :meth:`TwilioStandIn.text_in` posts
an inbound message (a couple texting STOP or HELP) the same way.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import secrets
import urllib.parse
from collections import deque
from collections.abc import Iterable
from functools import partial
from typing import Final, Literal, final

import httpx
import msgspec
import trio

from plaudit.inbound.verify import twilio_signature
from plaudit.sandbox.http_stub import LOOPBACK_HOSTS, StubRequest, StubResponse, serve_stub

log = logging.getLogger(__name__)

Outcome = Literal[
    "ok",
    "undelivered",
    "invalid_number",
    "unsubscribed",
    "server_error",
    "rate_limited",
    "disconnect",
    "accept_then_disconnect",
    "slow",
]
ACCOUNT_SID: Final = "AC" + "0" * 31 + "1"
AUTH_TOKEN: Final = "sandbox-twilio-auth-token"
_ERRORS: Final[dict[str, tuple[int, int, str]]] = {
    "invalid_number": (400, 21211, "The 'To' number is not a valid phone number."),
    "unsubscribed": (400, 21610, "Attempt to send to unsubscribed recipient"),
    "server_error": (500, 20500, "Internal Server Error"),
    "rate_limited": (429, 20429, "Too Many Requests"),
}


@final
class SentSms(msgspec.Struct, frozen=True, kw_only=True):
    """One message the stand-in accepted."""

    sid: str
    to: str
    sender: str
    body: str
    status_callback: str


@final
class Callback(msgspec.Struct, frozen=True, kw_only=True):
    """One status callback or inbound message posted to Plaudit, and the status it got."""

    url: str
    fields: dict[str, str]
    status: int | None


@final
class TwilioStandIn:
    """Records sends, fires signed callbacks and fails on a script; see the module docstring."""

    def __init__(
        self,
        *,
        script: Iterable[Outcome] = (),
        account_sid: str = ACCOUNT_SID,
        auth_token: str = AUTH_TOKEN,
        slow_seconds: float = 5.0,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.slow_seconds = slow_seconds
        self.script: deque[Outcome] = deque(script)
        self.messages: list[SentSms] = []
        self.callbacks: list[Callback] = []
        self.requests = 0
        self._nursery: trio.Nursery | None = None

    def __repr__(self) -> str:
        return (
            f"<TwilioStandIn requests={self.requests} messages={len(self.messages)} "
            f"callbacks={len(self.callbacks)} scripted={len(self.script)}>"
        )

    def statistics(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "messages": len(self.messages),
            "callbacks": len(self.callbacks),
        }

    async def serve(
        self, *, port: int = 0, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled; ``started`` gets the base URL for ``[sms] base_url``."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            url = await nursery.start(partial(serve_stub, self._handle, port=port))
            task_status.started(url)

    async def _handle(self, request: StubRequest) -> StubResponse | None:
        self.requests += 1
        expected = f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        if request.method != "POST" or request.path != expected:
            return _error(404, 20404, f"The requested resource {request.path} was not found")
        if not self._authorised(request.headers.get("authorization", "")):
            return _error(401, 20003, "Authenticate")

        fields = dict(urllib.parse.parse_qsl(request.body.decode("utf-8", errors="replace")))
        if not fields.get("To") or not fields.get("Body"):
            return _error(400, 21604, "A 'To' phone number and a 'Body' are required.")
        if not fields.get("From") and not fields.get("MessagingServiceSid"):
            return _error(400, 21603, "A 'From' phone number is required.")

        outcome = self.script.popleft() if self.script else "ok"
        if outcome in _ERRORS:
            status, code, message = _ERRORS[outcome]
            headers = {"retry-after": "1"} if outcome == "rate_limited" else {}
            return _error(status, code, message, headers=headers)
        if outcome == "disconnect":
            return None
        if outcome == "slow":
            await trio.sleep(self.slow_seconds)

        sms = self._record(fields)
        self._fire(sms, failed=outcome == "undelivered")
        if outcome == "accept_then_disconnect":
            return None
        return StubResponse(
            status=201,
            body=json.dumps(_resource(sms, self.account_sid)).encode(),
            headers={"content-type": "application/json"},
        )

    def _authorised(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode())
        return scheme.lower() == "basic" and hmac.compare_digest(encoded.encode(), expected)

    def _record(self, fields: dict[str, str]) -> SentSms:
        sms = SentSms(
            sid="SM" + secrets.token_hex(16),
            to=fields["To"],
            sender=fields.get("From") or fields.get("MessagingServiceSid", ""),
            body=fields["Body"],
            status_callback=fields.get("StatusCallback", ""),
        )
        self.messages.append(sms)
        return sms

    def _fire(self, sms: SentSms, *, failed: bool) -> None:
        if not sms.status_callback or self._nursery is None:
            return
        statuses = ["sent", "undelivered" if failed else "delivered"]
        self._nursery.start_soon(self._callbacks, sms, statuses)

    async def _callbacks(self, sms: SentSms, statuses: list[str]) -> None:
        for status in statuses:
            fields = {
                "AccountSid": self.account_sid,
                "ApiVersion": "2010-04-01",
                "From": sms.sender,
                "MessageSid": sms.sid,
                "MessageStatus": status,
                "SmsSid": sms.sid,
                "SmsStatus": status,
                "To": sms.to,
            }
            if status == "undelivered":
                fields["ErrorCode"] = "30003"
            await self.post(sms.status_callback, fields)

    async def text_in(self, url: str, *, sender: str, to: str, body: str) -> int | None:
        """Post an inbound message from ``sender`` to Plaudit's Twilio route; return the status."""
        sid = "SM" + secrets.token_hex(16)
        fields = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "Body": body,
            "From": sender,
            "MessageSid": sid,
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsSid": sid,
            "SmsStatus": "received",
            "To": to,
        }
        return await self.post(url, fields)

    async def post(self, url: str, fields: dict[str, str]) -> int | None:
        """Post a signed form to ``url`` on loopback; return the status, None on failure."""
        host = urllib.parse.urlsplit(url).hostname or ""
        if host not in (*LOOPBACK_HOSTS, "localhost"):
            log.warning("sandbox.callback_refused", extra={"url": url})
            self.callbacks.append(Callback(url=url, fields=fields, status=None))
            return None
        signature = twilio_signature(url, sorted(fields.items()), self.auth_token)
        status: int | None = None
        try:
            async with httpx.AsyncClient(timeout=10.0) as client:
                response = await client.post(
                    url, data=fields, headers={"x-twilio-signature": signature}
                )
            status = response.status_code
        except httpx.HTTPError as error:
            log.info("sandbox.callback_failed", extra={"url": url, "error": repr(error)})
        self.callbacks.append(Callback(url=url, fields=fields, status=status))
        return status


def _resource(sms: SentSms, account_sid: str) -> dict[str, object]:
    return {
        "sid": sms.sid,
        "account_sid": account_sid,
        "to": sms.to,
        "from": sms.sender,
        "body": sms.body,
        "status": "queued",
        "num_segments": "1",
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "error_code": None,
        "error_message": None,
        "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{sms.sid}.json",
    }


def _error(
    status: int, code: int, message: str, *, headers: dict[str, str] | None = None
) -> StubResponse:
    body = {
        "code": code,
        "message": message,
        "status": status,
    }
    return StubResponse(
        status=status,
        body=json.dumps(body).encode(),
        headers={"content-type": "application/json", **(headers or {})},
    )
