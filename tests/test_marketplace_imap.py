"""The marketplace mailbox mode over IMAP, against the small IMAP server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from plaudit.actors.marketplace import MarketplaceActor
from plaudit.actors.marketplace_mail import read_mailboxes
from plaudit.config.model import MarketplaceConfig, MarketplaceProfile
from plaudit.connectors.marketplace.sites import get_site
from plaudit.errors import PlatformError
from plaudit.journal import AsyncJournal, Journal
from plaudit.messaging.deliverability.imap import REJECTED_FLAG
from plaudit.reviews.store import load_reviews
from plaudit.sandbox.marketplace import MarketplaceStandIn, write_notifications
from tests.support_imap import PASSWORD, Mailbox
from tests.test_marketplace_actor import problems_of, run_until

NOT_A_NOTICE = b"From: friend@example.com\r\nSubject: Lunch?\r\n\r\nAre you free on Friday?\r\n"


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[AsyncJournal]:
    opened = Journal.open(tmp_path / "journal.sqlite3")
    writer = AsyncJournal(opened, window=0.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        yield writer
        nursery.cancel_scope.cancel()
    opened.close()


def notices(tmp_path: Path, count: int) -> list[bytes]:
    """Write ``count`` sandbox notices to a scratch Maildir and return their bytes."""
    stand_in = MarketplaceStandIn(seed=7, elapsed=lambda: 0.0, script_seconds=0)
    scratch = tmp_path / "scratch"
    reviews = stand_in.world.live("willow-barn")[:count]
    write_notifications(scratch, reviews, vendor="Willow Barn", domain="www.hitched.co.uk")
    return [path.read_bytes() for path in sorted((scratch / "new").iterdir())]


def imap_profile(port: int, tmp_path: Path, **fields: Any) -> MarketplaceProfile:
    password = tmp_path / "imap-password"
    password.write_text(PASSWORD + "\n", encoding="utf-8")
    values: dict[str, Any] = {
        "site": "hitched",
        "profile_id": "willow-barn",
        "vendor_name": "Willow Barn",
        "modes": ["mailbox"],
        "imap_host": "127.0.0.1",
        "imap_port": port,
        "imap_user": "reviews",
        "imap_password_file": str(password),
        "imap_security": "none",
    }
    values.update(fields)
    return MarketplaceProfile(**values)


async def stored(journal: AsyncJournal) -> int:
    reviews = await journal.transaction(lambda tx: load_reviews(tx, "hitched", "willow-barn"))
    return len(reviews)


async def test_imap_notices_stored_then_seen(
    journal: AsyncJournal, imap: tuple[int, Mailbox], tmp_path: Path
) -> None:
    port, mailbox = imap
    for uid, data in enumerate(notices(tmp_path, 3), start=1):
        mailbox.add(uid, data)
    mailbox.add(4, NOT_A_NOTICE)

    (report,) = await read_mailboxes(journal, imap_profile(port, tmp_path), site="hitched")

    assert await stored(journal) == 3
    assert (report.messages, report.created, len(report.skipped)) == (4, 3, 1)
    assert report.maildir == f"imap://reviews@127.0.0.1:{port}/INBOX"
    assert [mailbox.flags[uid] for uid in (1, 2, 3)] == [{"\\Seen"}] * 3
    assert mailbox.flags[4] == {"\\Seen", REJECTED_FLAG}
    assert mailbox.logins == ["reviews"]


async def test_imap_second_pass_reads_only_new(
    journal: AsyncJournal, imap: tuple[int, Mailbox], tmp_path: Path
) -> None:
    port, mailbox = imap
    first, second = notices(tmp_path, 2)
    mailbox.add(1, first)
    profile = imap_profile(port, tmp_path)
    await read_mailboxes(journal, profile, site="hitched")
    mailbox.add(2, second)

    (report,) = await read_mailboxes(journal, profile, site="hitched")

    assert report.messages == 1
    assert await stored(journal) == 2


async def test_imap_wrong_password_fails_clearly(
    journal: AsyncJournal, imap: tuple[int, Mailbox], tmp_path: Path
) -> None:
    port, mailbox = imap
    (data,) = notices(tmp_path, 1)
    mailbox.add(1, data)
    profile = imap_profile(port, tmp_path)
    Path(profile.imap_password_file).write_text("wrong\n", encoding="utf-8")

    with pytest.raises(PlatformError) as caught:
        await read_mailboxes(journal, profile, site="hitched")

    message = str(caught.value)
    assert "hitched profile 'willow-barn'" in message
    assert "cannot log in" in message
    assert "wrong" not in message
    assert caught.value.retryable is False
    assert mailbox.flags[1] == set()
    assert await stored(journal) == 0


async def test_maildir_read_when_imap_down(journal: AsyncJournal, tmp_path: Path) -> None:
    with trio.socket.socket() as unused:
        await unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    maildir = tmp_path / "mail"
    stand_in = MarketplaceStandIn(seed=7, elapsed=lambda: 0.0, script_seconds=0)
    reviews = stand_in.world.live("willow-barn")[:2]
    write_notifications(maildir, reviews, vendor="Willow Barn", domain="www.hitched.co.uk")
    profile = imap_profile(port, tmp_path, maildir=str(maildir))

    with pytest.raises(PlatformError, match=f"127.0.0.1:{port}"):
        await read_mailboxes(journal, profile, site="hitched")

    assert await stored(journal) == 2


async def test_actor_reads_imap_mailbox(
    journal: AsyncJournal, imap: tuple[int, Mailbox], tmp_path: Path
) -> None:
    port, mailbox = imap
    for uid, data in enumerate(notices(tmp_path, 2), start=1):
        mailbox.add(uid, data)
    config = MarketplaceConfig(profiles=[imap_profile(port, tmp_path)], mailbox_interval=1.0)
    actor = MarketplaceActor(
        journal, get_site("hitched"), config, lease_seconds=30.0, poll_interval=0.05
    )

    async def synced() -> bool:
        return await stored(journal) == 2

    await run_until(actor, synced, timeout=30.0)

    assert actor.marketplace_statistics().mailbox_passes >= 1
    assert mailbox.flags[2] == {"\\Seen"}


IMAP_TABLE = """
[platforms.marketplace]
[[platforms.marketplace.profiles]]
site = "hitched"
profile_id = "willow-barn"
vendor_name = "Willow Barn"
modes = ["mailbox"]
"""


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ("", "mode mailbox needs maildir or imap_host"),
        ('imap_host = "imap.example.com"\n', "needs imap_user"),
        (
            'imap_host = "imap.example.com"\nimap_user = "u"\nimap_password_file = "p"\n',
            'relative path "p"',
        ),
        (
            'imap_host = "imap.example.com"\nimap_user = "u"\n'
            'imap_password_file = "/etc/p"\nimap_security = "none"\n',
            "clear text",
        ),
    ],
)
def test_config_imap_rules(tmp_path: Path, keys: str, expected: str) -> None:
    problems = problems_of(tmp_path, IMAP_TABLE + keys)

    assert any(expected in problem for problem in problems), problems


def test_config_rejects_shared_imap_folder(tmp_path: Path) -> None:
    keys = 'imap_host = "imap.example.com"\nimap_user = "u"\nimap_password_file = "/etc/p"\n'
    second = IMAP_TABLE.replace("[platforms.marketplace]\n", "").replace("hitched", "bodas")
    problems = problems_of(tmp_path, IMAP_TABLE + keys + second + keys)

    assert any("also read by profiles[0]" in problem for problem in problems), problems
