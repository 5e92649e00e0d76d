"""The bounce mailbox actor over IMAP, against a small IMAP server on loopback."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio

from plaudit.actors.bounces import BounceMailboxActor, build_bounce_actor
from plaudit.config.model import BounceMailboxConfig, DeliverabilityConfig
from plaudit.journal import AsyncJournal, Journal
from plaudit.messaging.deliverability.imap import REJECTED_FLAG, ImapMailboxError, ImapSource
from plaudit.messaging.deliverability.suppression import SuppressionPolicy
from tests.test_bounce_mailbox import AUTO_REPLY, REQUEST_ID, dsn

PASSWORD = "bounce-password"


class Mailbox:
    """The stand-in's one folder: UID to message and flags."""

    def __init__(self) -> None:
        self.messages: dict[int, bytes] = {}
        self.flags: dict[int, set[str]] = {}
        self.logins: list[str] = []
        self.lock = threading.Lock()

    def add(self, uid: int, data: bytes) -> None:
        with self.lock:
            self.messages[uid] = data
            self.flags[uid] = set()


class ImapHandler(socketserver.StreamRequestHandler):
    """Speaks the IMAP4rev1 subset that imaplib uses for login, select, search, fetch, store."""

    server: ImapServer

    def handle(self) -> None:
        self.send(b"* OK stand-in IMAP4rev1 ready")
        for _ in range(1000):
            line = self.rfile.readline()
            if not line:
                return
            tag, _, rest = line.decode().rstrip("\r\n").partition(" ")
            command, _, args = rest.partition(" ")
            if not self.dispatch(tag, command.upper(), args):
                return

    def send(self, data: bytes) -> None:
        self.wfile.write(data + b"\r\n")

    def dispatch(self, tag: str, command: str, args: str) -> bool:
        mailbox = self.server.mailbox
        if command == "CAPABILITY":
            self.send(b"* CAPABILITY IMAP4rev1")
        elif command == "LOGIN":
            user, _, password = args.partition(" ")
            mailbox.logins.append(user)
            if password.strip('"') != PASSWORD:
                self.send(f"{tag} NO [AUTHENTICATIONFAILED] invalid credentials".encode())
                return True
        elif command == "SELECT":
            self.send(f"* {len(mailbox.messages)} EXISTS".encode())
            self.send(b"* OK [UIDVALIDITY 77] UIDs valid")
        elif command == "UID":
            self.uid_command(tag, args)
            return True
        elif command == "LOGOUT":
            self.send(b"* BYE logging out")
            self.send(f"{tag} OK LOGOUT completed".encode())
            return False
        else:
            self.send(f"{tag} BAD unknown command".encode())
            return True
        self.send(f"{tag} OK {command} completed".encode())
        return True

    def uid_command(self, tag: str, args: str) -> None:
        mailbox = self.server.mailbox
        verb, _, rest = args.partition(" ")
        with mailbox.lock:
            if verb.upper() == "SEARCH":
                unseen = [uid for uid in sorted(mailbox.messages) if not mailbox.flags[uid]]
                self.send(b"* SEARCH " + " ".join(map(str, unseen)).encode())
            elif verb.upper() == "FETCH":
                uid = int(rest.split()[0])
                data = mailbox.messages[uid]
                self.wfile.write(f"* 1 FETCH (UID {uid} BODY[] {{{len(data)}}}\r\n".encode())
                self.wfile.write(data + b")\r\n")
            elif verb.upper() == "STORE":
                uid_text, _, flags = rest.partition(" +FLAGS ")
                uid = int(uid_text)
                mailbox.flags[uid].update(flags.strip("()").split())
                self.send(f"* 1 FETCH (UID {uid} FLAGS ({flags.strip('()')}))".encode())
        self.send(f"{tag} OK UID completed".encode())


class ImapServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, mailbox: Mailbox) -> None:
        super().__init__(("127.0.0.1", 0), ImapHandler)
        self.mailbox = mailbox


@pytest.fixture
def imap() -> Iterator[tuple[int, Mailbox]]:
    mailbox = Mailbox()
    server = ImapServer(mailbox)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.server_address[1], mailbox
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal.open(tmp_path / "journal.sqlite3", instance="imap-test")


@pytest.fixture
async def writer(journal: Journal) -> AsyncIterator[AsyncJournal]:
    async with trio.open_nursery() as nursery:
        async_journal = AsyncJournal(journal)
        await nursery.start(async_journal.run)
        yield async_journal
        nursery.cancel_scope.cancel()
    journal.close()


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
    writer: AsyncJournal, journal: Journal, imap: tuple[int, Mailbox], tmp_path: Path
) -> None:
    port, mailbox = imap
    mailbox.add(5, dsn("m@guest.test", "5.1.1"))
    mailbox.add(9, AUTO_REPLY)
    actor = imap_actor(writer, port, tmp_path)
    assert await actor.read_once() == 2

    rows = journal.query("SELECT address, kind, message_id FROM message_events")
    assert [tuple(row) for row in rows] == [("m@guest.test", "hard_bounce", REQUEST_ID)]
    assert dict(journal.query("SELECT address, reason FROM suppressions")) == {
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
    writer: AsyncJournal, journal: Journal, imap: tuple[int, Mailbox], tmp_path: Path
) -> None:
    port, mailbox = imap
    mailbox.add(1, dsn("o@guest.test", "5.1.1"))
    actor = imap_actor(writer, port, tmp_path)
    await actor.read_once()
    mailbox.add(2, dsn("p@guest.test", "5.1.1"))
    assert await actor.read_once() == 1
    assert len(journal.query("SELECT id FROM message_events")) == 2


async def test_imap_wrong_password_reported(
    writer: AsyncJournal, journal: Journal, imap: tuple[int, Mailbox], tmp_path: Path
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


def test_policy_from_config(tmp_path: Path, journal: Journal) -> None:
    config = DeliverabilityConfig(
        soft_bounce_limit=5, soft_bounce_window=3600.0, mailbox=BounceMailboxConfig(maildir="m")
    )
    actor = build_bounce_actor(config, AsyncJournal(journal), state_dir=tmp_path)
    journal.close()
    assert actor is not None
    assert actor.policy == SuppressionPolicy(soft_bounce_limit=5, soft_bounce_window_seconds=3600.0)
