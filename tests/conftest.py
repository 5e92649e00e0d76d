import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio

from plaudit.journal import AsyncJournal, Journal
from tests.support import kill_started_daemons, start_sandbox
from tests.support_imap import Mailbox, serve_imap


@pytest.fixture(autouse=True)
def no_daemon_outlives_its_test() -> Iterator[None]:
    yield
    kill_started_daemons()


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[AsyncJournal]:
    """A journal file in the test's directory, with its writer running until the test ends.

    A module that needs the journal opened another way defines its own ``journal``.
    """
    opened = Journal.open(tmp_path / "journal.sqlite3", instance="test-1")
    async with trio.open_nursery() as nursery:
        async_journal = AsyncJournal(opened)
        await nursery.start(async_journal.run)
        yield async_journal
        nursery.cancel_scope.cancel()
    opened.close()


@pytest.fixture
def sock_path() -> Iterator[Path]:
    """A control socket path under /tmp: pytest's tmp_path can exceed AF_UNIX's 107 bytes."""
    directory = Path(tempfile.mkdtemp(prefix="ctl-", dir="/tmp"))
    yield directory / "control.sock"
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
async def quiet_sandbox_url(nursery: trio.Nursery, autojump_clock: trio.abc.Clock) -> str:
    """Serve the sandbox (seed 5) on the virtual clock; return its URL.

    It has no scripted events, so every listing of a profile returns the same reviews.
    """
    return await start_sandbox(nursery, seed=5, script_seconds=0)


@pytest.fixture
def imap() -> Iterator[tuple[int, Mailbox]]:
    """The port and the mailbox of an IMAP server on loopback, stopped when the test ends."""
    with serve_imap() as served:
        yield served


@pytest.fixture
def sync_journal(tmp_path: Path) -> Iterator[Journal]:
    """A journal file in the test's directory, without a writer; ``writer`` runs one on it."""
    opened = Journal.open(tmp_path / "journal.sqlite3", instance="test-1")
    yield opened
    opened.close()


@pytest.fixture
async def writer(sync_journal: Journal) -> AsyncIterator[AsyncJournal]:
    """The writer of ``sync_journal``, running until the test ends."""
    async with trio.open_nursery() as nursery:
        async_journal = AsyncJournal(sync_journal)
        await nursery.start(async_journal.run)
        yield async_journal
        nursery.cancel_scope.cancel()
