"""SMS through Twilio Programmable Messaging's REST API, and the keywords recipients text back.

One send is ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``,
form-encoded, with HTTP Basic auth (account SID, auth token).  Twilio
responds 201 with the message's ``sid``.  Failures fall in three classes:

- rejected (4xx other than 429): Twilio will never send it.  Error 21610
  (the recipient texted STOP) and 21211 or 21614 (not a valid mobile
  number) also suppress the number.
- retryable (429, 5xx, a connection that never carried the request): sent
  nothing, so it is retried in the call through the retry policy.
- unknown (a timeout or a connection lost after the request went out):
  Twilio may have accepted it.  It is not retried in the call.  The journal
  retries the job, which first waits for the send's status callback and then
  looks the text up with :meth:`TwilioClient.list_sent` and
  :meth:`TwilioClient.list_newest`.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime
from functools import partial
from typing import Final, Literal, final

import httpx
import msgspec

from plaudit.config.model import SmsConfig
from plaudit.errors import PlatformError
from plaudit.messaging.http_body import read_limited
from plaudit.reliability.retry import Verdict, call_with_retry, classify_status, parse_retry_after

log = logging.getLogger(__name__)

API_VERSION: Final = "2010-04-01"
# Twilio error codes that mean the number must not be texted again.
SUPPRESSING_CODES: Final[dict[int, str]] = {
    21610: "unsubscribe",  # the recipient replied STOP to this sender
    21211: "hard_bounce",  # the To number is not a valid phone number
    21614: "hard_bounce",  # the To number is not a mobile number
}
# Whole-message keywords: opt-out words, including REVOKE and OPT OUT, opt-in words and HELP.
OPT_OUT_KEYWORDS: Final = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "OPT OUT"}
)
OPT_IN_KEYWORDS: Final = frozenset({"START", "UNSTOP", "YES"})
HELP_KEYWORDS: Final = frozenset({"HELP", "INFO"})
# The largest Body Twilio accepts, in characters; longer text is cut to it with an ellipsis.
MAX_BODY_CHARS: Final = 1600
# Messages asked for per page of a list request, and the pages read for one lookup.
LIST_PAGE_SIZE: Final = 50
MAX_LIST_PAGES: Final = 4
# Bytes read of one list page: 50 messages of up to 1600 characters, with room for
# multi-byte text and the other fields.
MAX_LIST_PAGE_BYTES: Final = 1024 * 1024
_SID = re.compile(r"[A-Z]{2}[0-9a-fA-F]{32}")
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")

Keyword = Literal["opt_out", "opt_in", "help"]


class SmsError(PlatformError):
    """A failed send: ``outcome`` is rejected, retryable or unknown (Twilio may have accepted it).

    ``suppress`` is the suppression reason for the number, or None.
    """

    def __init__(
        self,
        message: str,
        *,
        outcome: Literal["rejected", "retryable", "unknown"],
        status: int | None = None,
        code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message, retryable=outcome != "rejected", status=status, retry_after=retry_after
        )
        self.outcome = outcome
        self.code = code
        self.suppress = SUPPRESSING_CODES.get(code) if code is not None else None


@final
class SmsAccepted(msgspec.Struct, frozen=True, kw_only=True):
    """Twilio's response to an accepted send: the message SID and its first status."""

    sid: str
    status: str


@final
class SmsStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of a :class:`TwilioClient` since it was created."""

    accepted: int
    rejected: int
    retried: int
    unknown: int


@final
class ListedSms(msgspec.Struct, frozen=True, kw_only=True):
    """One message of Twilio's Messages list, with the fields a lost send is recognised by."""

    sid: str
    to: str = ""
    sender: str = msgspec.field(name="from", default="")
    body: str = ""
    messaging_service_sid: str | None = None
    # RFC 2822 date such as "Fri, 04 Dec 2026 23:40:00 +0000", as Twilio writes it.
    date_created: str | None = None
    status: str = ""


class _MessagePage(msgspec.Struct, kw_only=True):
    messages: list[ListedSms]
    next_page_uri: str | None = None


class _Unknown(Exception):
    """Raised inside an attempt so that the retry loop does not repeat it."""

    def __init__(self, error: SmsError) -> None:
        super().__init__(str(error))
        self.error = error


def classify_keyword(body: str) -> Keyword | None:
    """Return the keyword an inbound text consists of (opt-out, opt-in or help), else None."""
    words = " ".join(body.strip().upper().replace(".", " ").replace("!", " ").split())
    if words in OPT_OUT_KEYWORDS:
        return "opt_out"
    if words in OPT_IN_KEYWORDS:
        return "opt_in"
    if words in HELP_KEYWORDS:
        return "help"
    return None


def check_sms_config(config: SmsConfig) -> list[tuple[str, str]]:
    """Return (key, problem) pairs for values the struct cannot check."""
    problems = []
    if not _SID.fullmatch(config.account_sid) or not config.account_sid.startswith("AC"):
        problems.append(
            (
                "account_sid",
                f"{config.account_sid!r} is not an account SID; copy 'AC...' from Twilio",
            )
        )
    senders = [name for name in ("from_number", "messaging_service_sid") if getattr(config, name)]
    if len(senders) != 1:
        problems.append(("from_number", "set exactly one of from_number and messaging_service_sid"))
    if config.from_number and not _E164.fullmatch(config.from_number):
        problems.append(
            ("from_number", f"{config.from_number!r} is not an E.164 number like +13125550100")
        )
    if config.messaging_service_sid and not (
        _SID.fullmatch(config.messaging_service_sid)
        and config.messaging_service_sid.startswith("MG")
    ):
        problems.append(
            ("messaging_service_sid", f"{config.messaging_service_sid!r} is not an 'MG...' SID")
        )
    for key in ("base_url", "status_callback_url"):
        url = getattr(config, key)
        if url and not url.startswith(("https://", "http://")):
            problems.append((key, f"{url!r} is not an http:// or https:// URL"))
    return problems


@final
class TwilioClient:
    """Sends SMS through Twilio's Messages resource; see the module docstring."""

    def __init__(
        self,
        config: SmsConfig,
        auth_token: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self._client = httpx.AsyncClient(
            base_url=config.base_url.rstrip("/"),
            auth=httpx.BasicAuth(config.account_sid, auth_token),
            timeout=config.timeout,
            transport=transport,
            follow_redirects=False,
        )
        self._accepted = 0
        self._rejected = 0
        self._retried = 0
        self._unknown = 0

    def __repr__(self) -> str:
        return (
            f"<TwilioClient base_url={self.config.base_url!r} accepted={self._accepted} "
            f"rejected={self._rejected} unknown={self._unknown}>"
        )

    def statistics(self) -> SmsStatistics:
        return SmsStatistics(
            accepted=self._accepted,
            rejected=self._rejected,
            retried=self._retried,
            unknown=self._unknown,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def form(self, to: str, body: str) -> dict[str, str]:
        """Return the form fields of one send to ``to``."""
        text = body if len(body) <= MAX_BODY_CHARS else body[: MAX_BODY_CHARS - 1] + "…"
        fields = {"To": to, "Body": text}
        if self.config.messaging_service_sid:
            fields["MessagingServiceSid"] = self.config.messaging_service_sid
        else:
            fields["From"] = self.config.from_number
        if self.config.status_callback_url:
            fields["StatusCallback"] = self.config.status_callback_url
        return fields

    async def send(self, to: str, body: str) -> SmsAccepted:
        """Send one text and return its SID; raises SmsError (see the module docstring)."""
        path = f"/{API_VERSION}/Accounts/{self.config.account_sid}/Messages.json"
        fields = self.form(to, body)

        def count_retry(error: PlatformError, attempt: int, delay: float) -> None:
            self._retried += 1

        try:
            accepted = await call_with_retry(
                lambda: self._attempt(path, fields),
                policy=self.config.retry,
                what="Twilio send",
                on_retry=count_retry,
            )
        except _Unknown as unknown:
            self._unknown += 1
            raise unknown.error from unknown
        except SmsError as error:
            if error.outcome == "rejected":
                self._rejected += 1
            raise
        self._accepted += 1
        return accepted

    async def list_sent(self, to: str, *, since: float) -> list[ListedSms]:
        """List texts to ``to`` from this sender dated on or after the UTC day of ``since``.

        Reads at most MAX_LIST_PAGES pages, newest first.  The list is filtered
        on ``date_sent``, so it leaves out texts Twilio has accepted but not sent
        yet (status accepted, queued or scheduled).  Raises SmsError: retryable
        for connection failures, 429 and 5xx, rejected otherwise.
        """
        day = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d")
        return await self._list(to, {"DateSent>": day}, max_pages=MAX_LIST_PAGES)

    async def list_newest(self, to: str) -> list[ListedSms]:
        """List the first page of texts to ``to`` from this sender, with no date filter.

        Unlike :meth:`list_sent`, the page includes texts Twilio has accepted
        but not sent yet.  Raises SmsError as :meth:`list_sent` does.
        """
        # NOTE: Twilio documents the list as newest first but not where a text without
        # date_sent sorts in it.  Such a text outside the first LIST_PAGE_SIZE is missed.
        return await self._list(to, {}, max_pages=1)

    async def _list(self, to: str, filters: dict[str, str], *, max_pages: int) -> list[ListedSms]:
        path = f"/{API_VERSION}/Accounts/{self.config.account_sid}/Messages.json"
        first = {"To": to, **filters, "PageSize": str(LIST_PAGE_SIZE)}
        if self.config.from_number:
            first["From"] = self.config.from_number
        query: dict[str, str] | None = first
        listed: list[ListedSms] = []
        target = path
        for _ in range(max_pages):
            page = await call_with_retry(
                partial(self._list_page, target, query),
                policy=self.config.retry,
                what="Twilio message list",
            )
            listed.extend(page.messages)
            if not page.next_page_uri:
                break
            # The next page must stay on this account's list, because the client sends
            # the account's credentials with it.
            if not page.next_page_uri.startswith(path + "?"):
                raise SmsError(
                    f"Twilio's next_page_uri {page.next_page_uri[:200]!r} leaves {path}; "
                    "check [sms] base_url points at Twilio",
                    outcome="rejected",
                )
            target, query = page.next_page_uri, None
        return listed

    async def _list_page(self, target: str, params: dict[str, str] | None) -> _MessagePage:
        try:
            async with self._client.stream("GET", target, params=params) as response:
                body = await read_limited(response, MAX_LIST_PAGE_BYTES)
        except httpx.HTTPError as error:
            raise SmsError(
                f"listing messages at {self.config.base_url} failed ({error!r}); retrying",
                outcome="retryable",
            ) from error
        verdict = classify_status(response.status_code)
        if verdict is Verdict.SUCCESS:
            try:
                return msgspec.json.decode(body, type=_MessagePage)
            except msgspec.DecodeError as error:
                raise SmsError(
                    f"Twilio responded {response.status_code} to a message list with a body "
                    f"that is not a message page ({error}); retrying",
                    outcome="retryable",
                    status=response.status_code,
                ) from error
        code, message = _error_of(body)
        detail = (
            f"Twilio responded {response.status_code} to a message list, error {code}: {message}"
        )
        if verdict is Verdict.RETRY:
            raise SmsError(detail + "; retrying", outcome="retryable", status=response.status_code)
        raise SmsError(
            f"{detail}; check [sms] account_sid, base_url and the auth token file",
            outcome="rejected",
            status=response.status_code,
            code=code,
        )

    async def _attempt(self, path: str, fields: dict[str, str]) -> SmsAccepted:
        try:
            async with self._client.stream("POST", path, data=fields) as response:
                body = await read_limited(response)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
            raise SmsError(
                f"cannot connect to Twilio at {self.config.base_url} ({error!r}); "
                "nothing was sent, retrying",
                outcome="retryable",
            ) from error
        except httpx.HTTPError as error:
            unknown = SmsError(
                f"Twilio send to {self.config.base_url} failed after the request went out "
                f"({error!r}); it may have been accepted, so the journal checks before resending",
                outcome="unknown",
            )
            raise _Unknown(unknown) from error
        return self._accepted_or_raise(response, body)

    def _accepted_or_raise(self, response: httpx.Response, body: bytes) -> SmsAccepted:
        verdict = classify_status(response.status_code)
        if verdict is Verdict.SUCCESS:
            try:
                data = msgspec.json.decode(body, type=SmsAccepted)
            except msgspec.DecodeError as error:
                unknown = SmsError(
                    f"Twilio responded {response.status_code} with a body that has no message "
                    f"sid ({error}); the send may have been accepted",
                    outcome="unknown",
                    status=response.status_code,
                )
                raise _Unknown(unknown) from error
            return data

        code, message = _error_of(body)
        detail = f"Twilio responded {response.status_code}, error {code}: {message}"
        if verdict is Verdict.RETRY:
            retry_after = parse_retry_after(
                response.headers.get("retry-after"), now=time.time(), limit=3600.0
            )
            raise SmsError(
                detail + "; retrying",
                outcome="retryable",
                status=response.status_code,
                code=code,
                retry_after=retry_after,
            )
        hint = (
            "check [sms] account_sid and the auth token file"
            if verdict is Verdict.REFRESH
            else "Twilio will not send this message"
        )
        raise SmsError(
            f"{detail}; {hint}", outcome="rejected", status=response.status_code, code=code
        )


def _error_of(body: bytes) -> tuple[int | None, str]:
    """Return Twilio's error code and message from an error body, when it has them."""
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None, body[:200].decode("utf-8", errors="replace")
    if not isinstance(data, dict):
        return None, body[:200].decode("utf-8", errors="replace")
    code = data.get("code")
    return (code if isinstance(code, int) else None), str(data.get("message", ""))[:200]
