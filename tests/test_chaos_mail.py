"""Review-request figures and config of ``plaudit demo --chaos``."""

from __future__ import annotations

from pathlib import Path

import trio

from plaudit.chaos_figures import request_figures
from plaudit.chaos_mail import COUPLES_CSV, ChaosMail, campaign_config, step_count
from plaudit.config.loader import load_config
from plaudit.journal import Journal
from plaudit.messaging.campaigns import schedule_new_couples
from plaudit.messaging.couples import parse_couples_csv, store_couples
from plaudit.sandbox.request_steps import RequestStep, read_request_steps

END = 1_000.0


def step(request_id: int, *, due: float = 900.0, state: str = "sent") -> RequestStep:
    return RequestStep(
        request_id=request_id,
        state=state,
        scheduled_at=due,
        message_id=f"<request-{request_id}@example.com>",
        unconfirmed=False,
    )


def test_unsent_due_step_is_lost() -> None:
    figures = request_figures([step(1), step(2)], ["<request-1@example.com>"], due_before=END)

    assert figures["requests_due"] == 2
    assert figures["requests_never_sent"] == 1
    assert figures["duplicated_messages"] == 0


def test_sent_without_arrival_is_lost() -> None:
    figures = request_figures([step(1, state="sent")], [], due_before=END)

    assert figures["requests_never_sent"] == 1


def test_step_without_message_id_is_lost() -> None:
    unsent = RequestStep(
        request_id=3, state="scheduled", scheduled_at=900.0, message_id=None, unconfirmed=False
    )

    figures = request_figures([unsent], [], due_before=END)

    assert figures["requests_never_sent"] == 1


def test_late_and_suppressed_steps_not_due() -> None:
    steps = [step(1, due=END + 1), step(2, state="suppressed"), step(3, state="stopped")]

    figures = request_figures(steps, [], due_before=END)

    assert figures["requests_due"] == 0
    assert figures["requests_never_sent"] == 0


def test_repeated_message_id_is_duplicate() -> None:
    received = ["<request-1@example.com>"] * 3 + ["<request-2@example.com>"]

    figures = request_figures([step(1), step(2)], received, due_before=END)

    assert figures["duplicated_messages"] == 2
    assert figures["requests_never_sent"] == 0


def test_request_steps_read_from_journal(tmp_path: Path) -> None:
    config_path = tmp_path / "plaudit.toml"
    config_path.write_text(
        campaign_config(port=2525, base_url="http://127.0.0.1:8080", steps=3), encoding="utf-8"
    )
    config = load_config(config_path)
    parsed = parse_couples_csv(COUPLES_CSV)
    path = tmp_path / "journal.sqlite3"
    journal = Journal.open(path, lease_seconds=15)
    try:
        with journal.transaction() as tx:
            store_couples(tx, parsed.couples, vendor="Willow & Vine")
            schedule_new_couples(tx, config)
    finally:
        journal.close()

    steps = read_request_steps(path)

    assert len(steps) == 3
    assert {each.state for each in steps} == {"scheduled"}
    assert all(each.message_id is None for each in steps)
    # The couples married in September, so their first step is overdue.
    assert request_figures(steps, [], due_before=END * 1e9)["requests_never_sent"] == 3


def test_missing_tables_read_as_no_steps(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite3"
    path.touch()

    assert read_request_steps(path) == []


def test_step_count_spans_phase() -> None:
    assert step_count(60.0) == 9
    assert step_count(30.0) == 5
    assert step_count(10_000.0) == 40


def test_campaign_config_loads(tmp_path: Path) -> None:
    path = tmp_path / "plaudit.toml"
    path.write_text(
        campaign_config(port=2525, base_url="http://127.0.0.1:8080", steps=4), encoding="utf-8"
    )

    config = load_config(path)

    assert config.smtp is not None
    assert config.smtp.retry.deadline == 3.0
    (campaign,) = config.campaigns
    assert len(campaign.steps) == 4
    assert campaign.steps[0].delay_days == 10
    assert campaign.steps[1].delay_days * 86400.0 == 8.0
    assert all(each.send_window_hours == 0 for each in campaign.steps)


SMTP_DIALOGUE = (
    b"EHLO test\r\n",
    b"MAIL FROM:<hello@example.com>\r\n",
    b"RCPT TO:<ana@example.com>\r\n",
    b"DATA\r\n",
    b"Message-ID: <m1@example.com>\r\n\r\nhello\r\n.\r\n",
)


async def test_aimed_kill_waits_for_data() -> None:
    mail = ChaosMail(seed=1)
    # data_received at each kill: 1 means the kill came after the message's data.
    kills: list[int] = []
    landed: list[bool] = []

    def kill() -> None:
        kills.append(mail.sink.statistics()["data_received"])

    async def aim() -> None:
        landed.append(await mail.aim_at_send(kill=kill))

    async with trio.open_nursery() as nursery:
        await nursery.start(mail.sink.serve)
        nursery.start_soon(aim)
        stream = await trio.open_tcp_stream("127.0.0.1", mail.sink.port)
        for line in SMTP_DIALOGUE:
            await stream.send_all(line)
        with trio.fail_after(30):
            while not landed:
                await trio.sleep(0.05)
        await stream.aclose()
        nursery.cancel_scope.cancel()

    assert landed == [True]
    assert kills == [1]
    assert mail.aimed_kills == 1
