"""Confirming a stored SNS subscription: the URL checks, and one real confirmation."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import trio

from plaudit.errors import ControlError
from plaudit.inbound.subscriptions import confirm, subscribe_url, subscription_arn
from plaudit.journal import AsyncJournal, Journal
from plaudit.sandbox.http_stub import StubRequest, StubResponse, serve_stub

TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-events"
SNS_URL = (
    f"https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=abc"
)
ANSWER = (
    b'<ConfirmSubscriptionResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">'
    b"<ConfirmSubscriptionResult><SubscriptionArn>"
    + TOPIC.encode()
    + b":0f2c</SubscriptionArn></ConfirmSubscriptionResult></ConfirmSubscriptionResponse>"
)


def stored(url: str, topic: str = TOPIC) -> bytes:
    return json.dumps(
        {"Type": "SubscriptionConfirmation", "TopicArn": topic, "SubscribeURL": url}
    ).encode()


def test_sns_endpoint_in_region_accepted() -> None:
    assert subscribe_url(stored(SNS_URL), extra_hosts=[]) == (SNS_URL, TOPIC)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (SNS_URL.replace("https://", "http://"), "not an https SNS endpoint"),
        (SNS_URL.replace("eu-west-1.amazonaws", "us-east-1.amazonaws"), r"region \(eu-west-1\)"),
        (SNS_URL.replace("sns.eu-west-1.amazonaws.com", "169.254.169.254"), "not an https SNS"),
        (SNS_URL.replace("amazonaws.com", "amazonaws.com.evil.test"), "not an https SNS"),
        (SNS_URL.replace("ConfirmSubscription", "Unsubscribe"), "does not confirm the topic"),
        (SNS_URL.replace("ses-events", "other-topic"), "does not confirm the topic"),
    ],
)
def test_other_urls_rejected(url: str, problem: str) -> None:
    with pytest.raises(ControlError, match=problem):
        subscribe_url(stored(url), extra_hosts=[])


def test_a_listed_host_is_accepted() -> None:
    url = f"http://127.0.0.1:9/?Action=ConfirmSubscription&TopicArn={TOPIC}"
    assert subscribe_url(stored(url), extra_hosts=["127.0.0.1"])[0] == url


def test_the_answer_must_name_a_subscription() -> None:
    assert subscription_arn(ANSWER) == TOPIC + ":0f2c"
    with pytest.raises(ControlError, match="without a SubscriptionArn"):
        subscription_arn(b"<ConfirmSubscriptionResponse/>")
    with pytest.raises(ControlError, match="not XML"):
        subscription_arn(b"<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>")


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[AsyncJournal]:
    opened = Journal.open(tmp_path / "journal.sqlite3", instance="sns-test")
    writer = AsyncJournal(opened, window=0.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        yield writer
        nursery.cancel_scope.cancel()
    opened.close()


async def test_confirm_follows_url_once(
    journal: AsyncJournal,
) -> None:
    seen: list[StubRequest] = []

    async def sns(request: StubRequest) -> StubResponse:
        seen.append(request)
        return StubResponse(status=200, body=ANSWER, headers={"content-type": "text/xml"})

    async with trio.open_nursery() as nursery:
        base = await nursery.start(serve_stub, sns)
        url = f"{base}/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=t1"
        inbound_id = await journal.transaction(
            lambda tx: int(
                tx.execute(
                    "INSERT INTO inbound_events (provider, provider_event_id, headers, body,"
                    " received_at, state) VALUES ('ses', 'm1', '{}', ?, 0,"
                    " 'confirmation_required') RETURNING id",
                    (stored(url),),
                ).fetchone()[0]
            )
        )

        result = await confirm(journal, inbound_id, extra_hosts=["127.0.0.1"], now=10.0)
        with pytest.raises(ControlError, match="no SNS subscription awaiting confirmation"):
            await confirm(journal, inbound_id, extra_hosts=["127.0.0.1"], now=11.0)
        nursery.cancel_scope.cancel()

    assert result["subscription_arn"] == TOPIC + ":0f2c"
    assert len(seen) == 1
    assert parse_qs(seen[0].query)["Token"] == ["t1"]
    state = await journal.read(
        lambda opened: opened.query("SELECT state, reason FROM inbound_events")
    )
    assert state[0][0] == "processed"
    assert "subscription confirmed" in state[0][1]
