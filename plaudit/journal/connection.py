"""Opening the SQLite file and translating sqlite3 errors into JournalError.

Every sqlite3 error leaves the journal as a :class:`JournalError` whose message
names the file and the operator's next step.  Opening only reads until
the file is known to be a SQLite database, so a foreign or damaged file is
never written to.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from plaudit.errors import JournalError

# How long a writer waits for another connection's lock before giving up.
# Plaudit keeps one writer per journal, so waiting this long means a second
# process is using the same file.
BUSY_TIMEOUT_SECONDS = 5.0

# UPDATE ... RETURNING and ON CONFLICT DO NOTHING RETURNING need SQLite 3.35.
MINIMUM_SQLITE = (3, 35, 0)

# Advice for the operator, by SQLite primary result code.
_ADVICE = {
    "SQLITE_NOTADB": (
        "The file is not a SQLite database, or it is encrypted. Plaudit left it unchanged: "
        "restore the journal from a backup, or set journal.path to a new file."
    ),
    "SQLITE_CORRUPT": (
        "The database is damaged. Stop Plaudit, keep a copy of the file, then restore it from a "
        "backup or salvage it with the sqlite3 shell's .recover command."
    ),
    "SQLITE_CANTOPEN": (
        "Check that the directory exists and that the daemon's user may read and write both the "
        "directory and the file."
    ),
    "SQLITE_READONLY": (
        "The file is read-only for this process. Give the daemon's user write permission on the "
        "file, its -wal and -shm companions and the directory."
    ),
    "SQLITE_PERM": "Give the daemon's user read and write permission on the file and directory.",
    "SQLITE_AUTH": "Give the daemon's user read and write permission on the file and directory.",
    "SQLITE_BUSY": (
        f"Another connection held the lock for more than {BUSY_TIMEOUT_SECONDS:g} s. Check that "
        "no other Plaudit process uses the same journal."
    ),
    "SQLITE_LOCKED": "Another statement on the same connection holds a conflicting lock.",
    "SQLITE_FULL": "The disk is full. Free space on the file system that holds the journal.",
    "SQLITE_IOERR": "Reading or writing the file failed. Check the disk and the kernel log.",
}


def journal_error(path: Path | str, action: str, error: sqlite3.Error) -> JournalError:
    """Build the JournalError for a failed sqlite3 call on the journal ``path``.

    ``action`` completes "could not ...", for example "open" or "claim jobs".
    """
    code = getattr(error, "sqlite_errorname", "")
    # Extended codes such as SQLITE_IOERR_FSYNC share the advice of their primary code.
    primary = "_".join(code.split("_")[:2])
    advice = _ADVICE.get(primary, "")
    detail = f"{error} ({code})" if code else str(error)
    return JournalError(f"could not {action} the journal {path}: {detail}. {advice}".rstrip())


@contextlib.contextmanager
def translated(path: Path | str, action: str) -> Iterator[None]:
    """Re-raise any sqlite3 error inside the block as a JournalError about ``path``."""
    try:
        yield
    except sqlite3.Error as error:
        raise journal_error(path, action, error) from error


def connect(path: Path, *, busy_timeout: float = BUSY_TIMEOUT_SECONDS) -> sqlite3.Connection:
    """Open the journal file and check that it is a readable SQLite database.

    Nothing is written yet: call :func:`configure` once the caller has checked
    that the database is a journal.  The connection uses explicit transactions
    (``isolation_level=None``) and may be used from any one thread at a time.
    A missing file is created with mode 0600 because the journal contains
    couples' contact details.
    """
    _check_sqlite_version()
    _check_location(path)
    _check_read_only(path)
    _create_private(path)

    with translated(path, "open"):
        conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=busy_timeout
        )

    try:
        _probe(conn, path)
    except BaseException:
        conn.close()
        raise

    return conn


def _check_read_only(path: Path) -> None:
    """Reject a foreign database through a read-only connection before any write.

    A read-write connection checkpoints the write-ahead log into the main file
    when it closes.  If a ``-wal`` file left by another database sits beside a
    journal, even a rejected open would copy it into the journal, so the first
    look at an existing file never writes.
    """
    from plaudit.journal.migrations import require_journal

    if not path.is_file() or path.stat().st_size == 0:
        return
    with translated(path, "open"):
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        require_journal(conn, path)
    finally:
        conn.close()


def configure(conn: sqlite3.Connection, path: Path | str, *, busy_timeout: float) -> None:
    """Set WAL, synchronous=FULL and the busy timeout, then read each back.

    The settings are per connection except journal_mode, which the file keeps.

    SQLite ignores or downgrades some settings silently (an in-memory database
    cannot use WAL, for instance), so a value that reads back different raises
    JournalError instead of running with weaker durability.
    """
    milliseconds = int(busy_timeout * 1000)
    with translated(path, "configure"):
        conn.execute(f"PRAGMA busy_timeout = {milliseconds}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        conn.execute("PRAGMA synchronous = FULL")
        synchronous = conn.execute("PRAGMA synchronous").fetchone()[0]
        timeout = conn.execute("PRAGMA busy_timeout").fetchone()[0]

    # PRAGMA synchronous reads back as a number: 2 is FULL.
    _require_setting(path, "journal_mode", str(mode).lower(), "wal")
    _require_setting(path, "synchronous", synchronous, 2)
    _require_setting(path, "busy_timeout", timeout, milliseconds)


def _require_setting(path: Path | str, name: str, actual: object, expected: object) -> None:
    if actual != expected:
        raise JournalError(
            f"the journal {path} reads back PRAGMA {name} = {actual!r} after Plaudit set it to "
            f"{expected!r}, so commits would not be durable. Keep the journal on a local file "
            "system that supports WAL (not a network share or an in-memory database)."
        )


def _check_sqlite_version() -> None:
    if sqlite3.sqlite_version_info < MINIMUM_SQLITE:
        needed = ".".join(str(part) for part in MINIMUM_SQLITE)
        raise JournalError(
            f"the journal needs SQLite {needed} or newer, but Python is linked against "
            f"SQLite {sqlite3.sqlite_version}; install a newer libsqlite3."
        )


def _check_location(path: Path) -> None:
    if not path.parent.is_dir():
        raise JournalError(
            f"could not open the journal {path}: the directory {path.parent} does not exist. "
            "Create it (owned by the daemon's user) or set journal.path to an existing directory."
        )

    if path.is_dir():
        raise JournalError(
            f"could not open the journal {path}: it is a directory, not a file. "
            "Set journal.path to a file name inside the state directory."
        )


def _create_private(path: Path) -> None:
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as error:
        raise JournalError(
            f"could not create the journal {path}: {error.strerror}. "
            "Give the daemon's user write permission on the directory."
        ) from error

    os.close(descriptor)


def _probe(conn: sqlite3.Connection, path: Path) -> None:
    """Read the schema so a foreign or damaged file fails before anything writes."""
    with translated(path, "read"):
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
