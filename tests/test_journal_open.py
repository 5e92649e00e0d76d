"""Opening the journal: durability settings, migrations and files that are not journals."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest
import sqlite_utils

from plaudit.errors import JournalError
from plaudit.journal import MIGRATIONS, Journal, Migration
from plaudit.journal.connection import configure
from plaudit.journal.migrations import migrate, split_statements


def schema_rows(path: Path) -> list[tuple[int, str, float]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT version, description, applied_at FROM schema_migrations ORDER BY version"
        ).fetchall()


def test_wal_and_full_read_back(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "journal.sqlite3")
    pragmas = journal.pragmas()
    journal.close()

    assert pragmas["journal_mode"] == "wal"
    assert pragmas["synchronous"] == 2
    assert pragmas["busy_timeout"] == 5000


def test_wal_persists_in_file(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    Journal.open(path).close()

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_configure_rejects_memory_database() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)

    with pytest.raises(JournalError, match=r"reads back PRAGMA journal_mode = 'memory'") as caught:
        configure(conn, "/srv/plaudit/in-memory", busy_timeout=1.0)

    assert "/srv/plaudit/in-memory" in str(caught.value)


def test_new_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    Journal.open(path).close()

    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_migrations_recorded_once(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    first = Journal.open(path, clock=lambda: 1000.0)
    first.close()
    second = Journal.open(path, clock=lambda: 2000.0)
    second.close()

    assert second.schema_version == len(MIGRATIONS)
    assert schema_rows(path) == [
        (migration.version, migration.description, 1000.0) for migration in MIGRATIONS
    ]


def test_initial_schema_tables(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    Journal.open(path).close()

    db = sqlite_utils.Database(path)
    # Later migrations add their own tables; the first one creates the core.
    assert {"schema_migrations", "jobs", "events", "reviews", "cursors"} <= set(db.table_names())
    assert db.table("reviews").pks == ["platform", "review_id"]
    assert db.table("cursors").pks == ["owner", "name"]
    indexes = {index.name: index.columns for index in db.table("jobs").indexes}
    assert indexes["jobs_claim"] == ["owner", "next_run_at", "id"]
    assert indexes["jobs_key"] == ["key"]


def test_claim_uses_partial_index(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    Journal.open(path).close()

    with sqlite3.connect(path) as conn:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE owner = 'google' "
            "AND state IN ('ready', 'failed') AND next_run_at <= 1 ORDER BY next_run_at, id LIMIT 5"
        ).fetchall()

    details = " | ".join(row[3] for row in plan)
    assert "USING INDEX jobs_claim" in details
    assert "TEMP B-TREE" not in details


def test_newer_schema_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    Journal.open(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO schema_migrations (version, description, applied_at) "
            "VALUES (99, 'from the future', 0)"
        )

    with pytest.raises(JournalError, match="schema version 99") as caught:
        Journal.open(path)

    assert str(path) in str(caught.value)
    assert "upgrade Plaudit" in str(caught.value)


def test_script_migration_applied(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    Journal.open(path).close()
    # The trigger body contains semicolons that must not split the statement.
    script = """
        CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
        CREATE TRIGGER notes_trim AFTER INSERT ON notes BEGIN
            UPDATE notes SET body = trim(new.body) WHERE id = new.id;
            UPDATE notes SET body = body || ';' WHERE id = new.id;
        END;
    """
    next_version = len(MIGRATIONS) + 1
    migrations = (*MIGRATIONS, Migration(next_version, "notes", script))
    conn = sqlite3.connect(path, isolation_level=None)

    version = migrate(conn, path, now=5.0, migrations=migrations)
    conn.execute("INSERT INTO notes (body) VALUES ('  hi  ')")

    assert version == next_version
    assert conn.execute("SELECT body FROM notes").fetchone()[0] == "hi;"
    conn.close()


def test_failed_migration_rolls_back(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    Journal.open(path).close()

    def broken(db: sqlite_utils.Database) -> None:
        db.table("half_done").create({"id": int}, pk="id")
        raise RuntimeError("the new migration failed halfway")

    conn = sqlite3.connect(path, isolation_level=None)
    broken_migration = Migration(len(MIGRATIONS) + 1, "broken", broken)
    with pytest.raises(RuntimeError, match="halfway"):
        migrate(conn, path, now=5.0, migrations=(*MIGRATIONS, broken_migration))
    conn.close()

    assert [row[0] for row in schema_rows(path)] == [m.version for m in MIGRATIONS]
    assert "half_done" not in sqlite_utils.Database(path).table_names()


def test_migration_gap_rejected(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "gap.sqlite3", isolation_level=None)
    skipped = len(MIGRATIONS) + 2
    migrations = (*MIGRATIONS, Migration(skipped, "skips a version", "SELECT 1"))

    with pytest.raises(ValueError, match=rf"without gaps, got \[.*, {skipped}\]"):
        migrate(conn, tmp_path / "gap.sqlite3", now=0.0, migrations=migrations)
    conn.close()


def test_split_statements_incomplete_script() -> None:
    with pytest.raises(ValueError, match="incomplete statement"):
        list(split_statements("CREATE TABLE a (x); CREATE TRIGGER t AFTER INSERT ON a BEGIN"))


def test_garbage_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    garbage = os.urandom(8192)
    path.write_bytes(garbage)

    with pytest.raises(JournalError) as caught:
        Journal.open(path)

    message = str(caught.value)
    assert str(path) in message
    assert "not a database" in message
    assert "restore the journal from a backup" in message
    assert path.read_bytes() == garbage
    assert sorted(os.listdir(tmp_path)) == ["journal.sqlite3"]


def test_foreign_database_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        conn.execute("INSERT INTO invoices (total) VALUES (12.5)")
    before = path.read_bytes()

    with pytest.raises(JournalError, match="not a Plaudit journal") as caught:
        Journal.open(path)

    assert "invoices" in str(caught.value)
    assert path.read_bytes() == before


def test_missing_directory_refused(tmp_path: Path) -> None:
    path = tmp_path / "absent" / "journal.sqlite3"

    with pytest.raises(JournalError, match="does not exist") as caught:
        Journal.open(path)

    assert str(path.parent) in str(caught.value)
    assert not path.parent.exists()


def test_directory_path_refused(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="is a directory"):
        Journal.open(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root bypasses file permissions")
def test_unreadable_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    Journal.open(path).close()
    path.chmod(0)

    with pytest.raises(JournalError, match="could not open the journal") as caught:
        Journal.open(path)

    assert str(path) in str(caught.value)


def test_invalid_settings_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lease_seconds must be a positive"):
        Journal.open(tmp_path / "journal.sqlite3", lease_seconds=0)

    assert not (tmp_path / "journal.sqlite3").exists()


def test_generated_instance_is_unique(tmp_path: Path) -> None:
    first = Journal.open(tmp_path / "journal.sqlite3")
    second = Journal.open(tmp_path / "journal.sqlite3")

    assert first.instance != second.instance
    assert str(os.getpid()) in first.instance
    first.close()
    second.close()
