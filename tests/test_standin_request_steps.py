"""Request steps as the demo and chaos harnesses read them, and their couples import."""

from __future__ import annotations

import shutil
import socket
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import trio

from plaudit.chaos_mail import ChaosMail
from plaudit.config.loader import load_config
from plaudit.daemon.control_wire import ErrorCode, encode_error, encode_result, parse_request
from plaudit.journal import Journal
from plaudit.messaging.campaigns import schedule_new_couples
from plaudit.messaging.couples import parse_couples_csv, store_couples
from plaudit.sandbox.demo_mail import COUPLES_CSV, DemoMail
from plaudit.sandbox.request_steps import (
    RequestStep,
    import_couples_csv,
    read_request_steps,
    vendor_tables,
)

BASE_URL = "http://127.0.0.1:8080"


def demo_journal(tmp_path: Path) -> Path:
    """Return a journal with the demo's four couples, each with its first step scheduled."""
    config_path = tmp_path / "plaudit.toml"
    config_path.write_text(DemoMail().config(2525, BASE_URL), encoding="utf-8")
    config = load_config(config_path)
    path = tmp_path / "journal.sqlite3"
    journal = Journal.open(path, lease_seconds=15)
    try:
        with journal.transaction() as tx:
            store_couples(tx, parse_couples_csv(COUPLES_CSV).couples, vendor="Willow & Vine")
            schedule_new_couples(tx, config)
    finally:
        journal.close()
    return path


def set_step(path: Path, request_id: int, *, state: str, channel: str = "email") -> None:
    connection = sqlite3.connect(path)
    try:
        with connection:
            connection.execute(
                "UPDATE requests SET state = ?, channel = ? WHERE id = ?",
                (state, channel, request_id),
            )
    finally:
        connection.close()


def test_steps_read_every_channel(tmp_path: Path) -> None:
    path = demo_journal(tmp_path)
    set_step(path, 2, state="sent", channel="sms")

    steps = read_request_steps(path)

    assert [step.request_id for step in steps] == [1, 2, 3, 4]
    assert [step.channel for step in steps] == ["email", "sms", "email", "email"]
    assert steps[1].state == "sent"
    assert all(step.message_id is None for step in steps)
    assert not any(step.unconfirmed for step in steps)


def test_steps_filtered_by_channel(tmp_path: Path) -> None:
    path = demo_journal(tmp_path)
    set_step(path, 2, state="sent", channel="sms")

    email = read_request_steps(path, channel="email")
    sms = read_request_steps(path, channel="sms")
    push = read_request_steps(path, channel="push")

    assert [step.request_id for step in email] == [1, 3, 4]
    assert [step.request_id for step in sms] == [2]
    assert push == []


def test_missing_journal_reads_no_steps(tmp_path: Path) -> None:
    path = tmp_path / "absent.sqlite3"

    assert read_request_steps(path) == []
    # Reading opens the file read-only, so it creates nothing.
    assert not path.exists()


def test_journal_without_requests_table(tmp_path: Path) -> None:
    path = tmp_path / "early.sqlite3"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY)")
    connection.close()

    assert read_request_steps(path, channel="email") == []


def test_step_channel_defaults_to_email() -> None:
    step = RequestStep(
        request_id=1,
        state="sent",
        scheduled_at=1.0,
        message_id="<a@example.com>",
        unconfirmed=False,
    )

    assert step.channel == "email"


def test_demo_counts_sent_and_suppressed(tmp_path: Path) -> None:
    path = demo_journal(tmp_path)
    mail = DemoMail()
    set_step(path, 1, state="sent")
    set_step(path, 2, state="sent", channel="sms")
    set_step(path, 3, state="suppressed", channel="push")
    set_step(path, 4, state="suppressed")

    summary = mail.summary(path)

    assert summary["requests_sent"] == {"email": 1, "sms": 1, "push": 0}
    assert summary["requests_suppressed"] == 2
    assert summary["smtp_messages_received"] == 0
    # Only e-mail steps count towards the demo's first steps.
    assert mail.pending(path) == 2


def test_demo_pending_before_journal(tmp_path: Path) -> None:
    mail = DemoMail()
    path = tmp_path / "absent.sqlite3"

    assert mail.pending(path) == 4
    assert mail.summary(path)["requests_sent"] == {"email": 0, "sms": 0, "push": 0}


def test_chaos_pending_counts_email_only(tmp_path: Path) -> None:
    path = demo_journal(tmp_path)
    set_step(path, 2, state="scheduled", channel="sms")
    mail = ChaosMail(seed=1)

    # Unix time 4e9 is in 2096, long after every first step falls due.
    assert mail.pending(path, due_before=4e9) == 3
    assert mail.pending(tmp_path / "absent.sqlite3", due_before=4e9) == 0


def test_vendor_tables_load_as_config(tmp_path: Path) -> None:
    tables = vendor_tables(
        base_url=BASE_URL, smtp_port=2526, review_links=("google", "trustpilot"), smtp_timeout=7.5
    )
    path = tmp_path / "plaudit.toml"
    path.write_text(tables, encoding="utf-8")

    config = load_config(path)

    assert config.vendor is not None
    assert config.vendor.name == "Willow & Vine Photography"
    assert config.vendor.review_links == {
        "google": f"{BASE_URL}/google/review",
        "trustpilot": f"{BASE_URL}/trustpilot/review",
    }
    assert config.smtp is not None
    assert config.smtp.port == 2526
    assert config.smtp.timeout == 7.5


async def serve_control(
    socket_path: Path, seen: list[dict[str, Any]], *, task_status: trio.TaskStatus[None]
) -> None:
    """Serve control requests on ``socket_path``: reject the first import, accept later ones."""
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.bind(str(socket_path))
    sock.listen()
    listener = trio.SocketListener(sock)

    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            data = b""
            while not data.endswith(b"\n"):
                chunk = await stream.receive_some()
                if not chunk:
                    return
                data += chunk
            request = parse_request(data)
            seen.append(request.args)
            if len(seen) == 1:
                await stream.send_all(encode_error(ErrorCode.FAILED, "journal busy", request.id))
            else:
                await stream.send_all(encode_result({"imported": 4}, request.id))

    async with listener:
        task_status.started()
        await trio.serve_listeners(handle, [listener])


async def test_import_fails_without_daemon(tmp_path: Path) -> None:
    imported = await import_couples_csv(tmp_path / "absent.sock", tmp_path, COUPLES_CSV)

    assert imported is False
    # The file is written first, so a retry imports the same rows.
    assert (tmp_path / "couples.csv").read_text(encoding="utf-8") == COUPLES_CSV


async def test_import_retried_until_accepted(tmp_path: Path) -> None:
    # AF_UNIX socket paths are limited to 107 bytes; pytest's tmp_path can be longer.
    runtime = Path(tempfile.mkdtemp(prefix="plaudit-t-", dir="/tmp"))
    socket_path = runtime / "control.sock"
    seen: list[dict[str, Any]] = []
    mail = DemoMail()
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_control, socket_path, seen)
            with trio.fail_after(30):
                await mail.import_couples(socket_path, tmp_path)
                imported_first = mail.imported
                await mail.import_couples(socket_path, tmp_path)
                await mail.import_couples(socket_path, tmp_path)
            nursery.cancel_scope.cancel()
    finally:
        shutil.rmtree(runtime)

    assert imported_first is False
    assert mail.imported is True
    # The third call sends nothing once the import succeeded.
    assert len(seen) == 2
    assert seen[1] == {"kind": "couples", "path": str(tmp_path / "couples.csv")}
