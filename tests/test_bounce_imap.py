"""The bounce mailbox actor over IMAP, against a small IMAP server on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from plaudit.actors.bounces import BounceMailboxActor, build_bounce_actor
from plaudit.config.model import BounceMailboxConfig, DeliverabilityConfig
from plaudit.journal import AsyncJournal, Journal
from plaudit.messaging.deliverability.imap import REJECTED_FLAG, ImapMailboxError, ImapSource
from plaudit.messaging.deliverability.suppression import SuppressionPolicy
from tests.support_imap import PASSWORD, Mailbox
from tests.test_bounce_mailbox import AUTO_REPLY, REQUEST_ID, dsn


def mailbox_config(port: int, *, password_file: str = "imap-password") -> BounceMailboxConfig:
    return BounceMailboxConfig(
        imap_host="127.0.0.1",
        imap_port=port,
        imap_user="bounces",
        imap_password_file=password_file,
        imap_security="none",
    )


def imap_actor(writer: AsyncJournal, port: int, state_dir: Path) -> BounceMailboxActor:
    (state_dir / "imap-password").write_text(PASSWORD + "\n", encoding="utf-8")
    config = DeliverabilityConfig(mailbox=mailbox_config(port))
    actor = build_bounce_actor(config, writer, state_dir=state_dir)
    assert actor is not None
    return actor


async def test_imap_bounce_recorded_then_seen(
    writer: AsyncJournal, sync_journal: Journal, imap: tuple[int, Mailbox], tmp_path: Path
) -> None:
    port, mailbox = imap
    mailbox.add(5, dsn("m@guest.test", "5.1.1"))
    mailbox.add(9, AUTO_REPLY)
    actor = imap_actor(writer, port, tmp_path)
    assert await actor.read_once() == 2

    rows = sync_journal.query("SELECT address, kind, message_id FROM message_events")
    assert [tuple(row) for row in rows] == [("m@guest.test", "hard_bounce", REQUEST_ID)]
    assert dict(sync_journal.query("SELECT address, reason FROM suppressions")) == {
        "m@guest.test": "hard_bounce"
    }
    assert mailbox.flags[5] == {"\\Seen"}
    assert mailbox.flags[9] == {"\\Seen"}
    assert mailbox.logins == ["bounces"]


async def test_imap_unreadable_flagged_rejected(
    writer: AsyncJournal, imap: tuple[int, Mailbox], tmp_path: Path
) -> None:
    port, mailbox = imap
    mailbox.add(3, b"   ")
    mailbox.add(4, dsn("n@guest.test", "5.1.1"))
    actor = imap_actor(writer, port, tmp_path)
    await actor.read_once()

    assert mailbox.flags[3] == {"\\Seen", REJECTED_FLAG}
    assert mailbox.flags[4] == {"\\Seen"}
    assert actor.statistics().rejected == 1


async def test_imap_seen_messages_skipped(
    writer: AsyncJournal, sync_journal: Journal, imap: tuple[int, Mailbox], tmp_path: Path
) -> None:
    port, mailbox = imap
    mailbox.add(1, dsn("o@guest.test", "5.1.1"))
    actor = imap_actor(writer, port, tmp_path)
    await actor.read_once()
    mailbox.add(2, dsn("p@guest.test", "5.1.1"))
    assert await actor.read_once() == 1
    assert len(sync_journal.query("SELECT id FROM message_events")) == 2


async def test_imap_wrong_password_reported(
    writer: AsyncJournal, sync_journal: Journal, imap: tuple[int, Mailbox], tmp_path: Path
) -> None:
    port, mailbox = imap
    mailbox.add(1, dsn("q@guest.test", "5.1.1"))
    actor = imap_actor(writer, port, tmp_path)
    (tmp_path / "imap-password").write_text("wrong", encoding="utf-8")
    assert await actor.read_once() == 0

    error = actor.statistics().last_error
    assert error is not None
    assert "cannot log in" in error
    assert "wrong" not in error
    assert mailbox.flags[1] == set()


async def test_imap_server_down_reported(writer: AsyncJournal, tmp_path: Path) -> None:
    with trio.socket.socket() as unused:
        await unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    actor = imap_actor(writer, port, tmp_path)
    assert await actor.read_once() == 0
    error = actor.statistics().last_error
    assert error is not None
    assert f"127.0.0.1:{port}" in error


def test_imap_clear_text_needs_loopback(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="clear text"):
        BounceMailboxConfig(
            imap_host="mail.guest.test",
            imap_user="bounces",
            imap_password_file="p",
            imap_security="none",
        )
    source = ImapSource(mailbox_config(993), state_dir=tmp_path)
    assert source.label == "imap://bounces@127.0.0.1:993/INBOX"
    with pytest.raises(ImapMailboxError, match="imap_password_file"):
        source.list_new(10)


def test_policy_from_config(tmp_path: Path, sync_journal: Journal) -> None:
    config = DeliverabilityConfig(
        soft_bounce_limit=5, soft_bounce_window=3600.0, mailbox=BounceMailboxConfig(maildir="m")
    )
    actor = build_bounce_actor(config, AsyncJournal(sync_journal), state_dir=tmp_path)
    sync_journal.close()
    assert actor is not None
    assert actor.policy == SuppressionPolicy(soft_bounce_limit=5, soft_bounce_window_seconds=3600.0)
