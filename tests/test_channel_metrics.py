"""plaudit_channel_messages_total for SMS and push sends, callbacks and opt-outs."""

from __future__ import annotations

from pathlib import Path

import pytest

from plaudit.metrics import REGISTRY
from plaudit.sandbox.twilio import Outcome
from tests.test_notifier_channels import world

METRIC = "plaudit_channel_messages_total"


def count(channel: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(METRIC, {"channel": channel, "outcome": outcome})
    return value or 0.0


def counts(channel: str) -> dict[str, float]:
    return {
        outcome: count(channel, outcome) for outcome in ("sent", "delivered", "failed", "opted_out")
    }


def change(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {outcome: after[outcome] - before[outcome] for outcome in before}


async def test_sms_sent_and_delivered_counted(tmp_path: Path) -> None:
    before = counts("sms")
    async with world(tmp_path) as w:
        await w.run_job()
        await w.wait_callbacks(2)

    assert change(before, counts("sms")) == {
        "sent": 1.0,
        "delivered": 1.0,
        "failed": 0.0,
        "opted_out": 0.0,
    }


async def test_sms_undelivered_counted_failed(tmp_path: Path) -> None:
    before = counts("sms")
    async with world(tmp_path, "undelivered") as w:
        await w.run_job()
        await w.wait_callbacks(2)

    after = counts("sms")
    assert after["sent"] - before["sent"] == 1.0
    assert after["failed"] - before["failed"] == 1.0
    assert after["delivered"] == before["delivered"]


@pytest.mark.parametrize(
    ("outcome", "label"), [("unsubscribed", "opted_out"), ("invalid_number", "failed")]
)
async def test_sms_rejection_counted(tmp_path: Path, outcome: Outcome, label: str) -> None:
    before = count("sms", label)
    async with world(tmp_path, outcome) as w:
        await w.run_job()

    assert count("sms", label) - before == 1.0
    assert w.twilio.messages == []


async def test_stop_text_counted_opted_out(tmp_path: Path) -> None:
    before = count("sms", "opted_out")
    async with world(tmp_path) as w:
        await w.text_in("STOP")

    assert count("sms", "opted_out") - before == 1.0


async def test_push_sent_and_gone_counted(tmp_path: Path) -> None:
    before = counts("push")
    async with world(tmp_path, channels=("push",)) as w:
        await w.run_job()
    sent = counts("push")
    (tmp_path / "gone").mkdir()
    async with world(tmp_path / "gone", channels=("push",), push_script=(410,)) as w:
        await w.run_job()
    gone = counts("push")

    assert sent["sent"] - before["sent"] == 1.0
    assert gone["opted_out"] - sent["opted_out"] == 1.0
    assert gone["sent"] == sent["sent"]
