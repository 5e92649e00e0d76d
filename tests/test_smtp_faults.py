"""SmtpSender against scripted faults of the loopback sink: refusals and the DATA window."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage

import pytest
import trio

from plaudit.config.model import RetryConfig, SmtpConfig, VendorConfig
from plaudit.messaging.email import SendError, SmtpSender, build_message, message_id_for
from plaudit.messaging.templates import RenderedMessage
from plaudit.sandbox.smtp import Outcome, SmtpSink

VENDOR = VendorConfig(
    name="Willow Studio",
    postal_address="12 Elm Street, Springfield, IL 62701",
    from_address="hello@willow.example",
    unsubscribe_url="https://willow.example/unsubscribe",
)
COUPLE = ["ana@example.com", "ben@example.com"]


@asynccontextmanager
async def running_sink(
    *script: Outcome, refusals: dict[str, str] | None = None
) -> AsyncIterator[tuple[SmtpSink, SmtpSender]]:
    sink = SmtpSink(script=script, refusals=refusals)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(sink.serve)
        # One attempt per send: these tests classify single failures, and
        # the in-call retry has tests of its own.
        config = SmtpConfig(
            host="127.0.0.1",
            port=port,
            security="none",
            timeout=30,
            retry=RetryConfig(max_attempts=1),
        )
        yield sink, SmtpSender(config)
        nursery.cancel_scope.cancel()


def couple_message() -> EmailMessage:
    return build_message(
        RenderedMessage(subject="Thank you", text="Dear Ana and Ben", html=""),
        vendor=VENDOR,
        to=COUPLE,
        message_id=message_id_for(3, domain="willow.example"),
        unsubscribe_token="token",
    )


class Marker:
    """A before_data callback that counts its calls."""

    def __init__(self, *, fail: bool = False) -> None:
        self.calls = 0
        self.fail = fail

    async def __call__(self) -> None:
        self.calls += 1
        if self.fail:
            raise OSError("journal unavailable")


async def test_partial_refusal_in_receipt() -> None:
    refusals = {"ben@example.com": "550 5.1.1 no such user"}
    async with running_sink(refusals=refusals) as (sink, sender):
        receipt = await sender.send(couple_message())

    assert receipt.accepted == ["ana@example.com"]
    (refusal,) = receipt.refused
    assert (refusal.address, refusal.code, refusal.status) == ("ben@example.com", 550, "5.1.1")
    assert refusal.permanent is True
    assert sink.messages[0].recipients == ["ana@example.com"]


async def test_marker_runs_once_before_data() -> None:
    marker = Marker()
    async with running_sink() as (sink, sender):
        await sender.send(couple_message(), before_data=marker)

    assert marker.calls == 1
    assert len(sink.messages) == 1


async def test_every_recipient_refused_no_marker() -> None:
    marker = Marker()
    async with running_sink("reject") as (_sink, sender):
        with pytest.raises(SendError) as caught:
            await sender.send(couple_message(), before_data=marker)

    assert marker.calls == 0
    assert caught.value.permanent is True
    assert caught.value.status == "5.1.1"
    assert [refusal.address for refusal in caught.value.refused] == COUPLE


async def test_temporary_refusals_retried() -> None:
    async with running_sink("temporary_rcpt") as (_sink, sender):
        with pytest.raises(SendError) as caught:
            await sender.send(couple_message())

    assert caught.value.permanent is False
    assert caught.value.code == 450
    assert caught.value.unconfirmed is False


async def test_failing_marker_sends_nothing() -> None:
    async with running_sink() as (sink, sender):
        with pytest.raises(OSError, match="journal unavailable"):
            await sender.send(couple_message(), before_data=Marker(fail=True))

    assert sink.messages == []
    assert sink.dropped == []


async def test_disconnect_after_data_unconfirmed() -> None:
    async with running_sink("disconnect") as (sink, sender):
        with pytest.raises(SendError) as caught:
            await sender.send(couple_message(), before_data=Marker())

    assert caught.value.unconfirmed is True
    assert caught.value.after_marker is True
    assert caught.value.permanent is False
    assert len(sink.dropped) == 1


async def test_disconnect_at_rcpt_known_unsent() -> None:
    marker = Marker()
    async with running_sink("disconnect_rcpt") as (_sink, sender):
        with pytest.raises(SendError) as caught:
            await sender.send(couple_message(), before_data=marker)

    assert caught.value.unconfirmed is False
    assert caught.value.after_marker is False
    assert marker.calls == 0


async def test_rejected_after_data_permanent() -> None:
    async with running_sink("reject_data") as (sink, sender):
        with pytest.raises(SendError) as caught:
            await sender.send(couple_message(), before_data=Marker())

    assert caught.value.permanent is True
    assert caught.value.status == "5.7.1"
    assert caught.value.rejected == COUPLE
    assert caught.value.after_marker is True
    assert sink.messages == []


async def test_sink_counts_dropped() -> None:
    async with running_sink("disconnect", "ok") as (sink, sender):
        with pytest.raises(SendError):
            await sender.send(couple_message())
        await sender.send(couple_message())

    assert sink.statistics() == {
        "received": 1,
        "dropped": 1,
        "transactions": 2,
        "data_received": 2,
    }
