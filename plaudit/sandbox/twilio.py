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
- ``accept_then_vanish``: record the message, then close the connection
  with no response and send no status callbacks, as when both are lost.
- ``accept_then_hold``: as ``accept_then_vanish``, but the message stays
  queued, as when Twilio accepted it and has not sent it yet.  It is listed
  with status ``queued`` and a null ``date_sent``, and a list request with
  any ``DateSent`` filter leaves it out.
- ``slow``: wait ``slow_seconds``, then accept.

``GET`` on the same path lists the recorded messages, newest first, as
Twilio's list resource does: filters ``To``, ``From``, ``DateSent``,
``DateSent>`` (on or after) and ``DateSent<`` (on or before), each date
``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM:SSZ`` in UTC, and paging by ``Page``
and ``PageSize`` (at most 1000).  Each list request takes the next outcome
of ``list_script``, then ``ok``: ``server_error`` (500 with error 20500) or
``rate_limited`` (429 with ``Retry-After: 1``) fail it.

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
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from email.utils import format_datetime
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
    "accept_then_vanish",
    "accept_then_hold",
    "slow",
]
ListOutcome = Literal["ok", "server_error", "rate_limited"]
ACCOUNT_SID: Final = "AC" + "0" * 31 + "1"
AUTH_TOKEN: Final = "sandbox-twilio-auth-token"
# The sender the stand-in picks for a send through a Messaging Service.
_SERVICE_NUMBER: Final = "+13125550199"
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
    # Unix time the stand-in accepted it, listed as date_created and, unless held, date_sent.
    created_at: float = 0.0
    messaging_service_sid: str = ""
    # True for a message accepted but not sent yet, which DateSent-filtered lists leave out.
    held: bool = False


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
        list_script: Iterable[ListOutcome] = (),
        account_sid: str = ACCOUNT_SID,
        auth_token: str = AUTH_TOKEN,
        slow_seconds: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.slow_seconds = slow_seconds
        self.clock = clock
        self.script: deque[Outcome] = deque(script)
        self.list_script: deque[ListOutcome] = deque(list_script)
        self.messages: list[SentSms] = []
        self.callbacks: list[Callback] = []
        self.requests = 0
        # The query of each authorised list request, in order.
        self.list_queries: list[dict[str, str]] = []
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
        if request.method not in ("GET", "POST") or request.path != expected:
            return _error(404, 20404, f"The requested resource {request.path} was not found")
        if not self._authorised(request.headers.get("authorization", "")):
            return _error(401, 20003, "Authenticate")
        if request.method == "GET":
            query = dict(urllib.parse.parse_qsl(request.query))
            self.list_queries.append(query)
            listed = self.list_script.popleft() if self.list_script else "ok"
            if listed != "ok":
                return _scripted_error(listed)
            return self._list(request, query)

        fields = dict(urllib.parse.parse_qsl(request.body.decode("utf-8", errors="replace")))
        if not fields.get("To") or not fields.get("Body"):
            return _error(400, 21604, "A 'To' phone number and a 'Body' are required.")
        if not fields.get("From") and not fields.get("MessagingServiceSid"):
            return _error(400, 21603, "A 'From' phone number is required.")

        outcome = self.script.popleft() if self.script else "ok"
        if outcome in _ERRORS:
            return _scripted_error(outcome)
        if outcome == "disconnect":
            return None
        if outcome == "slow":
            await trio.sleep(self.slow_seconds)

        sms = self._record(fields, held=outcome == "accept_then_hold")
        if outcome in ("accept_then_vanish", "accept_then_hold"):
            return None
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

    def _record(self, fields: dict[str, str], *, held: bool) -> SentSms:
        sms = SentSms(
            sid="SM" + secrets.token_hex(16),
            to=fields["To"],
            sender=fields.get("From") or fields.get("MessagingServiceSid", ""),
            body=fields["Body"],
            status_callback=fields.get("StatusCallback", ""),
            created_at=self.clock(),
            messaging_service_sid=fields.get("MessagingServiceSid", ""),
            held=held,
        )
        self.messages.append(sms)
        return sms

    def _list(self, request: StubRequest, query: dict[str, str]) -> StubResponse:
        try:
            page = int(query.get("Page", "0"))
            size = min(int(query.get("PageSize", "50")), 1000)
            bounds = _date_bounds(query)
        except ValueError as error:
            return _error(400, 20001, f"Invalid list parameter: {error}")
        if page < 0 or size < 1:
            return _error(400, 20001, "Page must be 0 or more and PageSize 1 to 1000")

        # Twilio filters on date_sent, which a held message does not have yet.
        dated = any(key in query for key in ("DateSent", "DateSent>", "DateSent<"))
        matching = [
            sms
            for sms in reversed(self.messages)
            if query.get("To", sms.to) == sms.to
            and query.get("From", _from_number(sms)) == _from_number(sms)
            and not (dated and sms.held)
            and bounds[0] <= sms.created_at < bounds[1]
        ]
        start = page * size
        chosen = matching[start : start + size]
        base = request.path
        following = None
        if start + size < len(matching):
            following = base + "?" + urllib.parse.urlencode({**query, "Page": str(page + 1)})
        listing = {
            "messages": [_resource(sms, self.account_sid) for sms in chosen],
            "page": page,
            "page_size": size,
            "start": start,
            "end": start + max(len(chosen) - 1, 0),
            "uri": base + "?" + request.query if request.query else base,
            "first_page_uri": base + "?" + urllib.parse.urlencode({**query, "Page": "0"}),
            "next_page_uri": following,
            "previous_page_uri": None,
        }
        return StubResponse(
            status=200,
            body=json.dumps(listing).encode(),
            headers={"content-type": "application/json"},
        )

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


def _date_bounds(query: dict[str, str]) -> tuple[float, float]:
    """Return the [start, end) Unix times the DateSent filters of a list request allow."""
    start, end = float("-inf"), float("inf")
    if "DateSent" in query:
        start, day_end = _parse_date(query["DateSent"])
        end = day_end
    if "DateSent>" in query:
        start = max(start, _parse_date(query["DateSent>"])[0])
    if "DateSent<" in query:
        end = min(end, _parse_date(query["DateSent<"])[1])
    return start, end


def _parse_date(text: str) -> tuple[float, float]:
    """Return the first and the just-after-last second a Twilio date filter names."""
    if len(text) == 10:
        day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
        return day, day + 86400.0
    moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    return moment, moment + 1.0


def _from_number(sms: SentSms) -> str:
    return _SERVICE_NUMBER if sms.messaging_service_sid else sms.sender


def _resource(sms: SentSms, account_sid: str) -> dict[str, object]:
    created = format_datetime(datetime.fromtimestamp(sms.created_at, UTC))
    return {
        "sid": sms.sid,
        "account_sid": account_sid,
        "messaging_service_sid": sms.messaging_service_sid or None,
        "to": sms.to,
        "from": _from_number(sms),
        "body": sms.body,
        "date_created": created,
        "date_updated": created,
        "date_sent": None if sms.held else created,
        "status": "queued",
        "num_segments": "1",
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "error_code": None,
        "error_message": None,
        "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{sms.sid}.json",
    }


def _scripted_error(outcome: str) -> StubResponse:
    status, code, message = _ERRORS[outcome]
    headers = {"retry-after": "1"} if outcome == "rate_limited" else {}
    return _error(status, code, message, headers=headers)


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
