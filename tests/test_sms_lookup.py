"""Recognising a text Twilio accepted when its response and callbacks were lost."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from plaudit.errors import PlatformError
from plaudit.messaging.channel_sends import UNKNOWN_OUTCOME_WAIT
from plaudit.messaging.sms import ListedSms, SmsError, TwilioClient
from plaudit.messaging.sms_lookup import LOOKUP_MARGIN, find_earlier_send
from plaudit.sandbox.http_stub import StubRequest, StubResponse, serve_stub
from plaudit.sandbox.twilio import ACCOUNT_SID, ListOutcome, SentSms, TwilioStandIn
from tests.test_notifier_channels import DUE, PHONE, World, world
from tests.test_sms import NUMBER, sms_config, twilio

LIST_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
SENT_AT = datetime(2026, 5, 12, 15, 0, tzinfo=UTC).timestamp()


def rfc2822(moment: float, zone: str = "+0000") -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%a, %d %b %Y %H:%M:%S ") + zone


def listed(sid: str, *, body: str = "hello", at: float = SENT_AT, service: str = "") -> ListedSms:
    return ListedSms(
        sid=sid,
        to=NUMBER,
        body=body,
        date_created=rfc2822(at),
        messaging_service_sid=service or None,
    )


def stored(
    stand_in: TwilioStandIn,
    *,
    to: str,
    sender: str,
    at: float,
    body: str = "hi",
    held: bool = False,
) -> None:
    sid = "SM" + f"{len(stand_in.messages):032x}"
    stand_in.messages.append(
        SentSms(
            sid=sid,
            to=to,
            sender=sender,
            body=body,
            status_callback="",
            created_at=at,
            held=held,
        )
    )


def dated(query: dict[str, str]) -> bool:
    return any(key.startswith("DateSent") for key in query)


async def read_list(client: TwilioClient, method: str) -> list[ListedSms]:
    if method == "sent":
        return await client.list_sent(NUMBER, since=SENT_AT)
    return await client.list_newest(NUMBER)


async def fail_then_retry(w: World) -> PlatformError:
    """Run the first SMS job, which fails without an outcome, and return its error."""
    job = await w.claim()
    with pytest.raises(PlatformError) as caught:
        await w.actor.handle(job)
    await w.facade.fail(job.id, str(caught.value), retry_after=caught.value.retry_after)
    return caught.value


async def lose_first_send(w: World) -> PlatformError:
    """Fail the first SMS job without an outcome, then move past the unknown-outcome wait."""
    w.twilio.clock = lambda: w.clock[0]
    error = await fail_then_retry(w)
    w.at(DUE + UNKNOWN_OUTCOME_WAIT)
    return error


def sms_sends(w: World) -> list[Any]:
    return w.journal.query("SELECT provider_id, state, attempts FROM channel_sends")


async def test_vanished_send_texts_once(tmp_path: Path) -> None:
    async with world(tmp_path, "accept_then_vanish") as w:
        error = await lose_first_send(w)
        await w.run_job()
        sends = sms_sends(w)
        requests = w.requests()

    assert error.retryable
    assert w.twilio.callbacks == []
    (message,) = w.twilio.messages
    assert message.to == PHONE
    assert sends == [(message.sid, "accepted", 1)]
    assert requests[0] == (0, "sms", "sent")
    # One send and one list request reached the stand-in, because the dated list found the text.
    assert w.twilio.requests == 2
    assert len(w.twilio.list_queries) == 1
    assert dated(w.twilio.list_queries[0])


async def test_held_send_texts_once(tmp_path: Path) -> None:
    async with world(tmp_path, "accept_then_hold") as w:
        error = await lose_first_send(w)
        await w.run_job()
        sends = sms_sends(w)
        requests = w.requests()

    assert error.retryable
    assert w.twilio.callbacks == []
    (message,) = w.twilio.messages
    assert message.held
    assert sends == [(message.sid, "accepted", 1)]
    assert requests[0] == (0, "sms", "sent")
    first, second = w.twilio.list_queries
    assert dated(first)
    assert not dated(second)
    assert second["To"] == PHONE


async def test_unsent_text_sent_after_lookup(tmp_path: Path) -> None:
    async with world(tmp_path, "disconnect") as w:
        await lose_first_send(w)
        await w.run_job()
        sends = sms_sends(w)

    (message,) = w.twilio.messages
    assert sends == [(message.sid, "accepted", 2)]
    # Two sends and both list requests.
    assert w.twilio.requests == 4
    assert [dated(query) for query in w.twilio.list_queries] == [True, False]


async def test_failed_newest_list_sends_nothing(tmp_path: Path) -> None:
    async with world(tmp_path, "disconnect") as w:
        await lose_first_send(w)
        # The dated list succeeds, and every attempt of the unfiltered one gets a 500.
        failures: list[ListOutcome] = ["server_error"] * 10
        w.twilio.list_script.extend(["ok", *failures])
        job = await w.claim()
        with pytest.raises(PlatformError) as caught:
            await w.actor.handle(job)
        await w.facade.fail(job.id, str(caught.value), retry_after=60)
        failed_sends = w.journal.query("SELECT provider_id, state, attempts FROM channel_sends")
        failed_messages = list(w.twilio.messages)
        failed_queries = list(w.twilio.list_queries)

        w.twilio.list_script.clear()
        w.at(DUE + UNKNOWN_OUTCOME_WAIT + 3600)
        await w.run_job()
        sends = sms_sends(w)

    assert "unfiltered message list" in str(caught.value)
    assert caught.value.retryable
    assert failed_messages == []
    assert failed_sends == [(None, "unknown", 1)]
    assert dated(failed_queries[0])
    assert len(failed_queries) > 1
    assert not any(dated(query) for query in failed_queries[1:])
    (message,) = w.twilio.messages
    assert sends == [(message.sid, "accepted", 2)]


@pytest.mark.parametrize(
    ("candidates", "expected"),
    [
        ([listed("SM1")], "SM1"),
        ([listed("SM1", body="hello!")], None),
        ([listed("SM1", body="hello\n")], "SM1"),
        ([listed("SM1", at=SENT_AT - LOOKUP_MARGIN - 1)], None),
        ([listed("SM1", at=SENT_AT - LOOKUP_MARGIN)], "SM1"),
        ([listed("SMknown")], None),
        ([listed("SM2", at=SENT_AT + 5), listed("SM1", at=SENT_AT + 1)], "SM1"),
        ([ListedSms(sid="SM1", body="hello", date_created=None)], None),
        ([ListedSms(sid="SM1", body="hello", date_created="yesterday")], None),
    ],
)
def test_earlier_send_matched(candidates: list[ListedSms], expected: str | None) -> None:
    found = find_earlier_send(candidates, body="hello", since=SENT_AT, known=frozenset({"SMknown"}))

    assert found == expected


def test_transliterated_body_matched() -> None:
    candidate = listed("SM1", body="Ana's day - thanks...")

    found = find_earlier_send(
        [candidate], body="Ana\u2019s day \u2014 thanks\u2026", since=SENT_AT, known=frozenset()
    )

    assert found == "SM1"


def test_earlier_send_needs_service() -> None:
    service = "MG" + "a" * 32
    candidates = [listed("SM1", service="MG" + "b" * 32), listed("SM2", service=service)]

    found = find_earlier_send(
        candidates, body="hello", since=SENT_AT, known=frozenset(), messaging_service_sid=service
    )

    assert found == "SM2"


def test_unzoned_date_read_as_utc() -> None:
    candidate = ListedSms(sid="SM1", body="hello", date_created=rfc2822(SENT_AT, "-0000"))

    found = find_earlier_send([candidate], body="hello", since=SENT_AT, known=frozenset())

    assert found == "SM1"


async def test_list_filters_number_sender_date() -> None:
    day = 86400.0
    async with twilio() as (stand_in, client):
        stored(stand_in, to=NUMBER, sender="+13125550100", at=SENT_AT)
        stored(stand_in, to=NUMBER, sender="+13125550100", at=SENT_AT - day)
        stored(stand_in, to="+13125550143", sender="+13125550100", at=SENT_AT)
        stored(stand_in, to=NUMBER, sender="+13125550101", at=SENT_AT)
        found = await client.list_sent(NUMBER, since=SENT_AT)

    assert [message.sid for message in found] == [stand_in.messages[0].sid]
    assert found[0].to == NUMBER
    assert found[0].sender == "+13125550100"
    assert found[0].date_created == rfc2822(SENT_AT)


async def test_newest_list_includes_held() -> None:
    async with twilio() as (stand_in, client):
        stored(stand_in, to=NUMBER, sender="+13125550100", at=SENT_AT, held=True)
        stored(stand_in, to=NUMBER, sender="+13125550100", at=SENT_AT + 1)
        stored(stand_in, to=NUMBER, sender="+13125550101", at=SENT_AT, held=True)
        sent = await client.list_sent(NUMBER, since=SENT_AT)
        newest = await client.list_newest(NUMBER)

    held, delivered = stand_in.messages[0], stand_in.messages[1]
    assert [message.sid for message in sent] == [delivered.sid]
    assert [message.sid for message in newest] == [delivered.sid, held.sid]
    assert newest[1].status == "queued"
    assert newest[1].date_created == rfc2822(SENT_AT)
    assert stand_in.list_queries[1] == {"To": NUMBER, "From": "+13125550100", "PageSize": "50"}


async def test_newest_list_reads_one_page() -> None:
    async with twilio() as (stand_in, client):
        for second in range(60):
            stored(stand_in, to=NUMBER, sender="+13125550100", at=SENT_AT + second)
        found = await client.list_newest(NUMBER)

    assert len(found) == 50
    assert found[0].sid == stand_in.messages[-1].sid
    assert len(stand_in.list_queries) == 1


async def test_list_follows_pages() -> None:
    async with twilio() as (stand_in, client):
        for second in range(120):
            stored(stand_in, to=NUMBER, sender="+13125550100", at=SENT_AT + second)
        found = await client.list_sent(NUMBER, since=SENT_AT)

    # Newest first, 50 a page: three list requests.
    assert len(found) == 120
    assert found[0].sid == stand_in.messages[-1].sid
    assert stand_in.requests == 3


async def test_list_stops_after_page_limit() -> None:
    async with twilio() as (stand_in, client):
        for second in range(250):
            stored(stand_in, to=NUMBER, sender="+13125550100", at=SENT_AT + second)
        found = await client.list_sent(NUMBER, since=SENT_AT)

    assert len(found) == 200
    assert stand_in.requests == 4


@asynccontextmanager
async def stub(page: bytes, status: int = 200) -> AsyncIterator[tuple[list[str], TwilioClient]]:
    seen: list[str] = []

    async def handle(request: StubRequest) -> StubResponse:
        seen.append(f"{request.method} {request.path}")
        return StubResponse(status=status, body=page, headers={"content-type": "application/json"})

    async with trio.open_nursery() as nursery:
        base_url = await nursery.start(partial(serve_stub, handle))
        client = TwilioClient(sms_config(base_url), "token")
        try:
            yield seen, client
        finally:
            await client.aclose()
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize("method", ["sent", "newest"])
@pytest.mark.parametrize("next_page", ["http://127.0.0.1:9/Messages.json?x=1", "/other?Page=1"])
async def test_foreign_next_page_rejected(next_page: str, method: str) -> None:
    page = json.dumps({"messages": [], "next_page_uri": next_page}).encode()
    async with stub(page) as (seen, client):
        with pytest.raises(SmsError) as caught:
            await read_list(client, method)

    assert caught.value.outcome == "rejected"
    assert "next_page_uri" in str(caught.value)
    assert seen == [f"GET {LIST_PATH}"]


@pytest.mark.parametrize(
    ("status", "page", "outcome"),
    [
        (500, b'{"code": 20500, "message": "Internal Server Error"}', "retryable"),
        (200, b"<html>maintenance</html>", "retryable"),
        (404, b'{"code": 20404, "message": "Not found"}', "rejected"),
    ],
)
@pytest.mark.parametrize("method", ["sent", "newest"])
async def test_list_failure_classified(status: int, page: bytes, outcome: str, method: str) -> None:
    async with stub(page, status) as (seen, client):
        with pytest.raises(SmsError) as caught:
            await read_list(client, method)

    assert caught.value.outcome == outcome
    assert len(seen) == (3 if outcome == "retryable" else 1)


async def test_failed_lookup_sends_nothing(tmp_path: Path) -> None:
    async with world(tmp_path, "disconnect") as w:
        await lose_first_send(w)
        w.twilio.account_sid = "AC" + "9" * 32
        job = await w.claim()
        with pytest.raises(PlatformError) as caught:
            await w.actor.handle(job)
        sends = sms_sends(w)

    assert "failed to check Twilio's message list" in str(caught.value)
    assert not caught.value.retryable
    assert w.twilio.messages == []
    assert sends == [(None, "unknown", 1)]
