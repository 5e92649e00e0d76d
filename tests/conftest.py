import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio

from plaudit.journal import AsyncJournal, Journal
from tests.support import kill_started_daemons


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
