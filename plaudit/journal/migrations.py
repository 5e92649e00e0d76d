"""Versioned schema migrations, applied in order when the journal opens.

Each applied version is recorded in ``schema_migrations`` with the time it was
applied.  All pending migrations run in one BEGIN IMMEDIATE transaction, so a
failed migration leaves the journal at its previous version, and two
processes opening the same file cannot both migrate it.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import final

import sqlite_utils

from plaudit.errors import JournalError
from plaudit.journal.connection import translated

log = logging.getLogger(__name__)


@final
@dataclass(frozen=True, slots=True)
class Migration:
    """One schema version: SQL statements, or a function given a sqlite-utils Database."""

    version: int
    description: str
    apply: Callable[[sqlite_utils.Database], None] | str


def _create_initial_schema(db: sqlite_utils.Database) -> None:
    _create_jobs(db)
    _create_events(db)
    _create_reviews(db)
    _create_cursors(db)


def _create_jobs(db: sqlite_utils.Database) -> None:
    jobs = db.table("jobs")
    jobs.create(
        {
            "id": int,
            "kind": str,
            "owner": str,
            "key": str,
            "payload": str,
            "state": str,
            "attempts": int,
            "max_attempts": int,
            "next_run_at": float,
            "lease_expires_at": float,
            "lease_owner": str,
            "last_error": str,
            "created_at": float,
            "updated_at": float,
            "finished_at": float,
        },
        pk="id",
        not_null={
            "kind",
            "owner",
            "key",
            "payload",
            "state",
            "attempts",
            "max_attempts",
            "next_run_at",
            "created_at",
            "updated_at",
        },
        strict=True,
    )
    jobs.create_index(["key"], index_name="jobs_key", unique=True)
    # Claims take one owner's claimable jobs in (next_run_at, id) order.  This
    # partial index contains only claimable rows, so it stays small as finished
    # jobs accumulate, and it yields them in order.  A full index on (owner,
    # state, next_run_at) would need a temporary B-tree to merge the two states.
    db.conn.execute(
        "CREATE INDEX jobs_claim ON jobs (owner, next_run_at, id) "
        "WHERE state IN ('ready', 'failed')"
    )
    # Operator listings and the per-kind, per-state counts behind the metrics.
    jobs.create_index(["kind", "state"], index_name="jobs_kind_state")


def _create_events(db: sqlite_utils.Database) -> None:
    events = db.table("events")
    events.create(
        {
            "id": int,
            "key": str,
            "type": str,
            "platform": str,
            "subject": str,
            "payload": str,
            "created_at": float,
        },
        pk="id",
        not_null={"key", "type", "platform", "subject", "payload", "created_at"},
        strict=True,
    )
    events.create_index(["key"], index_name="events_key", unique=True)


def _create_reviews(db: sqlite_utils.Database) -> None:
    reviews = db.table("reviews")
    reviews.create(
        {
            "platform": str,
            "review_id": str,
            "profile": str,
            "stars": int,
            "recommendation": str,
            "text": str,
            "author": str,
            # ISO 8601 UTC timestamps as the platform reported them.
            "created_at": str,
            "updated_at": str,
            "reply_text": str,
            "reply_updated_at": str,
            "deleted_at": str,
            "content_hash": str,
            # Unix seconds of Plaudit's own observations.
            "first_seen_at": float,
            "last_seen_at": float,
        },
        pk=("platform", "review_id"),
        not_null={
            "platform",
            "review_id",
            "profile",
            "text",
            "author",
            "created_at",
            "updated_at",
            "content_hash",
            "first_seen_at",
            "last_seen_at",
        },
        strict=True,
    )
    reviews.create_index(["platform", "profile"], index_name="reviews_profile")


def _create_cursors(db: sqlite_utils.Database) -> None:
    db.table("cursors").create(
        {"owner": str, "name": str, "value": str, "updated_at": float},
        pk=("owner", "name"),
        not_null={"owner", "name", "value", "updated_at"},
        strict=True,
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "jobs, events, reviews and sync cursors", _create_initial_schema),
    Migration(
        2,
        "webhook endpoint states and the delivery attempt log",
        """
        CREATE TABLE webhook_endpoints (
            name TEXT PRIMARY KEY,
            state TEXT NOT NULL,
            disabled_reason TEXT,
            disabled_at REAL,
            failing_since REAL,
            last_success_at REAL,
            updated_at REAL NOT NULL
        ) STRICT;
        CREATE TABLE webhook_attempts (
            id INTEGER PRIMARY KEY,
            job_id INTEGER NOT NULL,
            endpoint TEXT NOT NULL,
            event_key TEXT NOT NULL,
            event_type TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            status_code INTEGER,
            latency_ms REAL,
            error TEXT,
            outcome TEXT NOT NULL,
            attempted_at REAL NOT NULL
        ) STRICT;
        CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint, attempted_at);
        CREATE INDEX webhook_attempts_job ON webhook_attempts (job_id);
        """,
    ),
    Migration(
        3,
        "platform health intervals and incidents",
        """
        CREATE TABLE health_intervals (
            id INTEGER PRIMARY KEY,
            platform TEXT NOT NULL,
            -- '' for the platform as a whole.
            profile TEXT NOT NULL,
            state TEXT NOT NULL,
            started_at REAL NOT NULL,
            -- Extended by a heartbeat while current, so a crash loses little observed time.
            ended_at REAL NOT NULL
        ) STRICT;
        CREATE INDEX health_intervals_ended ON health_intervals (ended_at);
        CREATE TABLE incidents (
            id INTEGER PRIMARY KEY,
            platform TEXT NOT NULL,
            profile TEXT NOT NULL,
            state TEXT NOT NULL,
            cause TEXT NOT NULL,
            opened_at REAL NOT NULL,
            resolved_at REAL,
            duration REAL
        ) STRICT;
        CREATE INDEX incidents_open ON incidents (platform, profile) WHERE resolved_at IS NULL;
        """,
    ),
    Migration(
        4,
        "message deliverability events and the suppression list",
        """
        CREATE TABLE message_events (
            id INTEGER PRIMARY KEY,
            -- Lower-cased recipient address and its domain.
            address TEXT NOT NULL,
            domain TEXT NOT NULL,
            kind TEXT NOT NULL,
            status TEXT,
            provider TEXT NOT NULL,
            -- The provider's own id for the event; repeats of it are ignored.
            provider_event_id TEXT,
            message_id TEXT,
            occurred_at REAL NOT NULL,
            recorded_at REAL NOT NULL
        ) STRICT;
        CREATE INDEX message_events_address ON message_events (address, occurred_at);
        CREATE INDEX message_events_occurred ON message_events (occurred_at);
        CREATE UNIQUE INDEX message_events_provider_id
            ON message_events (provider, provider_event_id) WHERE provider_event_id IS NOT NULL;
        CREATE TABLE suppressions (
            address TEXT PRIMARY KEY,
            reason TEXT NOT NULL,
            status TEXT,
            message_id TEXT,
            event_id INTEGER,
            created_at REAL NOT NULL
        ) STRICT;
        """,
    ),
    Migration(
        5,
        "couples and their review requests",
        """
        CREATE TABLE couples (
            id INTEGER PRIMARY KEY,
            -- The first address, lower-cased: re-importing a couple updates its row.
            email TEXT NOT NULL UNIQUE,
            -- JSON arrays of strings.
            names TEXT NOT NULL,
            emails TEXT NOT NULL,
            -- E.164.
            phone TEXT,
            -- ISO date.
            wedding_date TEXT NOT NULL,
            venue TEXT NOT NULL,
            timezone TEXT,
            vendor TEXT NOT NULL,
            consent_email INTEGER NOT NULL,
            consent_sms INTEGER NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        ) STRICT;
        CREATE TABLE requests (
            id INTEGER PRIMARY KEY,
            couple_id INTEGER NOT NULL REFERENCES couples (id),
            campaign TEXT NOT NULL,
            step INTEGER NOT NULL,
            channel TEXT NOT NULL,
            -- scheduled, sending, sent, bounced, suppressed, stopped, failed.
            state TEXT NOT NULL,
            scheduled_at REAL NOT NULL,
            sent_at REAL,
            -- Fixed before the first attempt, so a resend repeats it.
            message_id TEXT,
            -- Random; identifies the request in its unsubscribe links.
            unsubscribe_token TEXT UNIQUE,
            provider TEXT,
            last_error TEXT,
            updated_at REAL NOT NULL,
            UNIQUE (couple_id, campaign, step)
        ) STRICT;
        CREATE INDEX requests_state ON requests (state, scheduled_at);
        """,
    ),
    Migration(
        6,
        "the inbound webhook inbox",
        """
        CREATE TABLE inbound_events (
            id INTEGER PRIMARY KEY,
            provider TEXT NOT NULL,
            -- The provider's id for the request (a batch id, an SNS MessageId, ...).
            provider_event_id TEXT NOT NULL,
            -- JSON object of the headers kept for audit; never credentials.
            headers TEXT NOT NULL,
            body BLOB NOT NULL,
            received_at REAL NOT NULL,
            -- pending, processed, ignored or confirmation_required.
            state TEXT NOT NULL,
            events INTEGER NOT NULL DEFAULT 0,
            reason TEXT,
            processed_at REAL,
            UNIQUE (provider, provider_event_id)
        ) STRICT;
        CREATE INDEX inbound_events_state ON inbound_events (state, received_at);
        """,
    ),
    Migration(
        7,
        "operator alerts",
        """
        CREATE TABLE alerts (
            id INTEGER PRIMARY KEY,
            -- The part of Plaudit that raised it: health, webhooks, deliverability, ...
            source TEXT NOT NULL,
            -- What it is about within the source, e.g. google/locations/1 or an endpoint.
            key TEXT NOT NULL,
            -- warning or critical.
            severity TEXT NOT NULL,
            summary TEXT NOT NULL,
            -- JSON object with the figures behind the alert.
            detail TEXT NOT NULL,
            raised_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            -- How many times it was raised again while open.
            repeats INTEGER NOT NULL DEFAULT 0,
            resolved_at REAL
        ) STRICT;
        CREATE UNIQUE INDEX alerts_open ON alerts (source, key) WHERE resolved_at IS NULL;
        CREATE INDEX alerts_raised ON alerts (raised_at);
        """,
    ),
    Migration(
        8,
        "matches between reviews and couples",
        """
        CREATE TABLE review_matches (
            id INTEGER PRIMARY KEY,
            platform TEXT NOT NULL,
            review_id TEXT NOT NULL,
            couple_id INTEGER NOT NULL REFERENCES couples (id),
            -- 0 to 1; 1 for an exact match by e-mail address or reference.
            confidence REAL NOT NULL,
            -- exact or name.
            method TEXT NOT NULL,
            -- candidate, confirmed or rejected.
            state TEXT NOT NULL,
            -- automatic or operator; NULL while a candidate.
            decided_by TEXT,
            -- JSON array of strings explaining the score.
            reasons TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            decided_at REAL,
            UNIQUE (platform, review_id, couple_id)
        ) STRICT;
        CREATE INDEX review_matches_couple ON review_matches (couple_id, state);
        CREATE INDEX review_matches_state ON review_matches (state, confidence);
        """,
    ),
    Migration(
        9,
        "couple profiles and personalisation assignments",
        """
        CREATE TABLE couple_profiles (
            couple_id INTEGER PRIMARY KEY REFERENCES couples (id),
            -- Where the couple found the vendor, as a [vendor] review_links key; '' if unknown.
            found_on TEXT NOT NULL,
            -- The vendor's own notes; the only text an AI draft may draw on.
            notes TEXT NOT NULL,
            updated_at REAL NOT NULL
        ) STRICT;
        CREATE TABLE personalisation_assignments (
            request_id INTEGER PRIMARY KEY REFERENCES requests (id),
            couple_id INTEGER NOT NULL REFERENCES couples (id),
            campaign TEXT NOT NULL,
            step INTEGER NOT NULL,
            -- holdout (always the baseline) or treatment.
            arm TEXT NOT NULL,
            -- The template variant's name; 'base' for the step's own template.
            variant TEXT NOT NULL,
            -- Unix times: when the step was due and when the model chose to send it.
            due_at REAL NOT NULL,
            planned_at REAL NOT NULL,
            -- JSON object explaining the chosen time.
            explanation TEXT NOT NULL,
            -- off, accepted, rejected, failed or timed_out; the opening line when accepted.
            draft_state TEXT NOT NULL,
            draft_reason TEXT,
            opening_line TEXT,
            sent_at REAL,
            -- pending until sent and settled, then converted or not_converted.
            outcome TEXT NOT NULL,
            converted_at REAL,
            assigned_at REAL NOT NULL
        ) STRICT;
        CREATE INDEX personalisation_assignments_arm
            ON personalisation_assignments (campaign, step, variant, outcome);
        CREATE INDEX personalisation_assignments_couple
            ON personalisation_assignments (couple_id);
        """,
    ),
    Migration(
        10,
        "web push subscriptions and SMS and push sends",
        """
        CREATE TABLE channel_sends (
            request_id INTEGER NOT NULL REFERENCES requests (id),
            -- sms or push.
            channel TEXT NOT NULL,
            -- The E.164 number or the push endpoint.
            recipient TEXT NOT NULL,
            -- Twilio's MessageSid or the push message URL, once the provider accepted it.
            provider_id TEXT,
            -- sending, unknown (the response was lost), unsent (failed before sending),
            -- accepted, delivered or failed.
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            error TEXT,
            updated_at REAL NOT NULL,
            PRIMARY KEY (request_id, recipient)
        ) STRICT;
        CREATE UNIQUE INDEX channel_sends_provider_id
            ON channel_sends (channel, provider_id) WHERE provider_id IS NOT NULL;
        CREATE INDEX channel_sends_pending ON channel_sends (channel, recipient, state);
        CREATE TABLE push_subscriptions (
            id INTEGER PRIMARY KEY,
            couple_id INTEGER NOT NULL REFERENCES couples (id),
            -- The push service URL the browser handed out; https in production.
            endpoint TEXT NOT NULL UNIQUE,
            -- base64url: the browser's P-256 public key (65 bytes) and auth secret (16 bytes).
            p256dh TEXT NOT NULL,
            auth TEXT NOT NULL,
            created_at REAL NOT NULL,
            -- Set when the push service answered 404 or 410; never sent to again.
            removed_at REAL,
            removed_reason TEXT
        ) STRICT;
        CREATE INDEX push_subscriptions_couple
            ON push_subscriptions (couple_id) WHERE removed_at IS NULL;
        """,
    ),
    Migration(
        11,
        "the e-mail address and reference a platform gives with a review",
        """
        CREATE TABLE review_contacts (
            platform TEXT NOT NULL,
            review_id TEXT NOT NULL,
            -- As the platform sent them; either may be NULL, not both.
            email TEXT,
            reference TEXT,
            updated_at REAL NOT NULL,
            PRIMARY KEY (platform, review_id)
        ) STRICT;
        CREATE INDEX review_contacts_email ON review_contacts (lower(email))
            WHERE email IS NOT NULL;
        CREATE INDEX review_contacts_reference ON review_contacts (reference)
            WHERE reference IS NOT NULL;
        """,
    ),
    Migration(
        12,
        "message events of kind sent are now of kind accepted",
        """
        UPDATE message_events SET kind = 'accepted' WHERE kind = 'sent';
        """,
    ),
    Migration(
        13,
        "when and how each couple gave or withdrew e-mail and SMS consent",
        """
        CREATE TABLE consent_records (
            id INTEGER PRIMARY KEY,
            couple_id INTEGER NOT NULL REFERENCES couples (id),
            -- email or sms.
            channel TEXT NOT NULL,
            -- 1 when consent was given, 0 when it was withdrawn or not given.
            granted INTEGER NOT NULL,
            -- import, ctl or web_form.
            source TEXT NOT NULL,
            -- The import file name and row, the command, or the form's URL.
            detail TEXT NOT NULL,
            recorded_at REAL NOT NULL
        ) STRICT;
        CREATE INDEX consent_records_couple ON consent_records (couple_id, channel, id);
        """,
    ),
    Migration(
        14,
        "the ids e-mail providers give a sent message, linked to its Message-ID",
        """
        CREATE TABLE message_aliases (
            -- The provider's own id for the message, as its SMTP reply gave it.
            alias TEXT NOT NULL PRIMARY KEY,
            -- The Message-ID Plaudit set, with angle brackets.
            message_id TEXT NOT NULL,
            -- Where the alias came from: smtp_reply.
            source TEXT NOT NULL,
            created_at REAL NOT NULL
        ) STRICT;
        CREATE INDEX message_aliases_message ON message_aliases (message_id);
        CREATE INDEX message_events_message ON message_events (message_id)
            WHERE message_id IS NOT NULL;
        """,
    ),
    Migration(
        15,
        "the start of each e-mail submission, and sends whose acceptance is unknown",
        """
        -- Set, in its own transaction, right before the DATA command; while it
        -- is set and the request is still 'sending', the outcome is unknown.
        ALTER TABLE requests ADD COLUMN submitting_at REAL;
        -- 1 when the step counts as sent although no server confirmed it.
        ALTER TABLE requests ADD COLUMN unconfirmed INTEGER NOT NULL DEFAULT 0;
        """,
    ),
    Migration(
        16,
        "the link URL of each click event",
        """
        -- The URL the recipient clicked, as the e-mail provider reported it;
        -- NULL for other kinds and for providers that report no URL.
        ALTER TABLE message_events ADD COLUMN url TEXT;
        """,
    ),
    Migration(
        17,
        "the channel chosen for each request of a step with channel auto",
        """
        CREATE TABLE personalisation_channels (
            request_id INTEGER PRIMARY KEY REFERENCES requests (id),
            couple_id INTEGER NOT NULL REFERENCES couples (id),
            campaign TEXT NOT NULL,
            step INTEGER NOT NULL,
            -- holdout (always the first listed channel) or treatment.
            arm TEXT NOT NULL,
            channel TEXT NOT NULL,
            -- JSON arrays: the step's channels, and those the couple could receive.
            allowed TEXT NOT NULL,
            receivable TEXT NOT NULL,
            reason TEXT NOT NULL,
            chosen_at REAL NOT NULL
        ) STRICT;
        CREATE INDEX personalisation_channels_channel ON personalisation_channels (channel);
        """,
    ),
)


def migrate(
    conn: sqlite3.Connection,
    path: Path,
    *,
    now: float,
    migrations: Sequence[Migration] = MIGRATIONS,
) -> int:
    """Apply the pending ``migrations`` to the journal and return its schema version.

    Raises JournalError when the file is a database that is not a journal, or
    when its schema version is above the last version in ``migrations``.
    """
    latest = _check_order(migrations)
    with translated(path, "migrate"):
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = _prepare(conn, path, latest)
            pending = [migration for migration in migrations if migration.version > current]
            for migration in pending:
                _apply(conn, migration, now=now)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    for migration in pending:
        log.info(
            "journal.migrated",
            extra={
                "path": str(path),
                "version": migration.version,
                "description": migration.description,
            },
        )
    return max(current, latest)


def _check_order(migrations: Sequence[Migration]) -> int:
    versions = [migration.version for migration in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migration versions must run 1, 2, 3, ... without gaps, got {versions}")

    return len(versions)


def require_journal(conn: sqlite3.Connection, path: Path) -> None:
    """Raise JournalError when the database has tables but no ``schema_migrations``.

    Call it before anything writes, so that a foreign database stays unchanged.
    """
    with translated(path, "read"):
        tables = _table_names(conn)

    if tables and "schema_migrations" not in tables:
        names = ", ".join(sorted(tables))
        raise JournalError(
            f"the file {path} is a SQLite database but not a Plaudit journal (it has the tables "
            f"{names} and no schema_migrations). Plaudit left it unchanged: set journal.path to "
            "another file, or move away a stale -wal file of another database beside it."
        )


def _table_names(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {str(row[0]) for row in rows}


def _prepare(conn: sqlite3.Connection, path: Path, latest: int) -> int:
    """Create ``schema_migrations`` in a new file and return the applied version."""
    # Checked again inside the write transaction in case another process
    # created tables since the first check.
    require_journal(conn, path)
    if not _table_names(conn):
        conn.execute(
            "CREATE TABLE schema_migrations ("
            "version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at REAL NOT NULL"
            ") STRICT"
        )

    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    current = int(row[0])
    if current > latest:
        raise JournalError(
            f"the journal {path} has schema version {current}, but this Plaudit knows versions up "
            f"to {latest}. A newer Plaudit wrote it: upgrade Plaudit, or restore a backup taken "
            "before the upgrade."
        )

    return current


def _apply(conn: sqlite3.Connection, migration: Migration, *, now: float) -> None:
    if isinstance(migration.apply, str):
        for statement in split_statements(migration.apply):
            conn.execute(statement)
    else:
        db = sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False)
        migration.apply(db)

    conn.execute(
        "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
        (migration.version, migration.description, now),
    )


def split_statements(script: str) -> Iterator[str]:
    """Yield the complete SQL statements of ``script`` one by one.

    ``executescript`` would commit the open transaction first, so a script
    migration runs statement by statement instead.  Semicolons inside
    strings and trigger bodies do not end a statement.
    """
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\r\n;"):
                yield pending.strip()
            pending = ""

    if pending.strip(" \t\r\n;"):
        raise ValueError(
            f"migration script ends inside an incomplete statement: {pending.strip()!r}"
        )
