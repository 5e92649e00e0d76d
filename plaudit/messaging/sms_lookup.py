"""Recognising a text Twilio accepted although its response and status callbacks were lost.

Before an SMS step is sent again, Twilio's Messages list is read for texts
to the same number from the same sender sent since the earlier attempt.
When none matches, the first page of that list is read again without the
date filter, because Twilio filters on ``date_sent`` and a text it has
accepted but not sent yet (status accepted, queued or scheduled) has none.
A listed message with the same body, not yet bound to another send, is
that attempt: it is recorded as accepted and nothing is sent.  Twilio's
Message resource does not show the StatusCallback URL, so the body, the
recipient, the sender and the creation date are what identify the send.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Iterable
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Final, Literal, final

import msgspec

from plaudit.errors import PlatformError
from plaudit.journal import AsyncJournal, Tx
from plaudit.messaging.channel_sends import (
    SendCheck,
    accepted_send,
    known_provider_ids,
    record_attempt,
)
from plaudit.messaging.sms import ListedSms, SmsError, TwilioClient

log = logging.getLogger(__name__)

# The list that found an earlier text: filtered on date_sent, or the newest unfiltered page.
ListName = Literal["date_sent", "newest"]

# Seconds a listed message may be dated before the earlier attempt's last update and
# still be that attempt: the request timeout, in-call retries and clock skew between
# this host and Twilio.  An estimate.
LOOKUP_MARGIN: Final = 900.0
# Typographic characters compared as their plain forms, because a provider-side
# encoding setting (such as GSM-7 transliteration) may have replaced them in the
# stored body.  NOTE: other replaced characters still make a text unrecognised.
_PLAIN_FORMS: Final = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2026": "...",
        "\u00a0": " ",
    }
)


def find_earlier_send(
    listed: Iterable[ListedSms],
    *,
    body: str,
    since: float,
    known: frozenset[str],
    messaging_service_sid: str = "",
) -> str | None:
    """Return the SID of the oldest listed text that an earlier attempt sent, else None.

    A match has ``body`` (typographic quotes, dashes and ellipses compared as
    their plain forms, and surrounding whitespace ignored).  It is dated at or
    after ``since - LOOKUP_MARGIN``, is not in ``known`` (bound to another
    send), and comes from ``messaging_service_sid`` when one is set.
    """
    expected_body = _plain(body)
    matches: list[tuple[float, str]] = []
    for message in listed:
        created = _created_at(message)
        if created is None or created < since - LOOKUP_MARGIN:
            continue
        if _plain(message.body) != expected_body or message.sid in known:
            continue
        if messaging_service_sid and message.messaging_service_sid != messaging_service_sid:
            continue
        matches.append((created, message.sid))
    return min(matches)[1] if matches else None


async def check_earlier_send(
    journal: AsyncJournal,
    client: TwilioClient,
    *,
    request_id: int,
    number: str,
    text: str,
    since: float,
) -> SendCheck:
    """Look up an earlier attempt's text on Twilio; return "skip" with its SID, or "send".

    The newest page without a date filter is read only when the list filtered
    on date_sent finds nothing.  "send" has recorded the new attempt.  Raises
    PlatformError when a list request fails, and nothing has been sent then.
    """
    lookup = _Lookup(
        request_id=request_id,
        number=number,
        body=client.form(number, text)["Body"],
        since=since,
        messaging_service_sid=client.config.messaging_service_sid,
    )
    dated = await _read_list(
        client.list_sent(number, since=since - LOOKUP_MARGIN),
        request_id=request_id,
        what="Twilio's message list filtered on date_sent",
    )
    found = await journal.transaction(lambda tx: lookup.match(tx, dated, "date_sent"))
    if found is not None:
        return found
    newest = await _read_list(
        client.list_newest(number),
        request_id=request_id,
        what="the newest page of Twilio's unfiltered message list",
    )

    def settle(tx: Tx) -> SendCheck:
        check = lookup.match(tx, newest, "newest")
        if check is not None:
            return check
        log.warning(
            "notifier.sms_resend_after_lookup",
            extra={"request": request_id, "listed": len(dated), "listed_newest": len(newest)},
        )
        record_attempt(tx, request_id, "sms", number)
        return SendCheck(action="send")

    return await journal.transaction(settle)


@final
class _Lookup(msgspec.Struct, frozen=True, kw_only=True):
    """The request, number, body and date that identify an earlier attempt's text on Twilio."""

    request_id: int
    number: str
    # The Body field as sent, after cutting to MAX_BODY_CHARS.
    body: str
    # Unix time the earlier attempt was last updated.
    since: float
    messaging_service_sid: str

    def match(self, tx: Tx, listed: list[ListedSms], list_name: ListName) -> SendCheck | None:
        """Return "skip" when the journal or ``listed`` shows the attempt accepted, else None."""
        # A status callback may have named the earlier attempt while the list was read.
        bound = accepted_send(tx, self.request_id, self.number)
        if bound is not None:
            return SendCheck(action="skip", provider_id=bound)
        sid = find_earlier_send(
            listed,
            body=self.body,
            since=self.since,
            known=known_provider_ids(tx, "sms", self.number),
            messaging_service_sid=self.messaging_service_sid,
        )
        if sid is None:
            return None
        status = next(message.status for message in listed if message.sid == sid)
        log.info(
            "notifier.sms_found_on_twilio",
            extra={"request": self.request_id, "sid": sid, "list": list_name, "status": status},
        )
        return SendCheck(action="skip", provider_id=sid)


async def _read_list(
    listing: Awaitable[list[ListedSms]], *, request_id: int, what: str
) -> list[ListedSms]:
    try:
        return await listing
    except SmsError as error:
        raise PlatformError(
            f"failed to check {what} for an earlier text of request {request_id} "
            f"({error}); nothing was sent, and the step is retried later",
            retryable=error.retryable,
            retry_after=error.retry_after,
        ) from error


def _plain(text: str) -> str:
    return text.translate(_PLAIN_FORMS).strip()


def _created_at(message: ListedSms) -> float | None:
    if not message.date_created:
        return None
    try:
        moment = parsedate_to_datetime(message.date_created)
    except (TypeError, ValueError):
        return None
    # "-0000" parses without a zone; Twilio's dates are in UTC.
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
