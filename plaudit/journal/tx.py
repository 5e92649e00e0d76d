"""The handle on one open write transaction, passed to effects callbacks."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, final

import msgspec

from plaudit.errors import JournalError
from plaudit.journal.connection import journal_error
from plaudit.journal.models import Event, JobState
from plaudit.journal.policy import JobPolicy, require_max_attempts

Params = Sequence[Any] | Mapping[str, Any]
# Called inside the transaction for each newly emitted event, so the work it
# enqueues (webhook deliveries, for example) commits together with the event.
EmitHook = Callable[["Tx", Event], None]

_ENQUEUE = """
INSERT INTO jobs (kind, owner, key, payload, state, attempts, max_attempts,
                  next_run_at, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?)
ON CONFLICT (key) DO NOTHING
RETURNING id
"""
_EMIT = """
INSERT INTO events (key, type, platform, subject, payload, created_at)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (key) DO NOTHING
RETURNING id
"""
_SET_CURSOR = """
INSERT INTO cursors (owner, name, value, updated_at) VALUES (?, ?, ?, ?)
ON CONFLICT (owner, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
"""


@final
class Tx:
    """One open write transaction on the journal.

    Everything done through a Tx commits together with the job transition it
    was handed for (the outbox pattern), or not at all.  The handle is valid
    only inside its transaction: keeping it and using it later raises
    JournalError.
    """

    __slots__ = ("_conn", "_emit_hooks", "_open", "now", "path", "policy")

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        path: Path,
        now: float,
        policy: JobPolicy,
        emit_hooks: Sequence[EmitHook] = (),
    ) -> None:
        self._conn = conn
        self._emit_hooks = tuple(emit_hooks)
        self._open = True
        # Unix seconds, read once when the transaction began.
        self.now = now
        self.path = path
        self.policy = policy

    def __repr__(self) -> str:
        state = "open" if self._open else "closed"
        return f"<Tx {state} journal={str(self.path)!r} now={self.now:.3f}>"

    def execute(self, sql: str, params: Params = ()) -> sqlite3.Cursor:
        """Run one SQL statement inside this transaction.

        Raises JournalError, with the sqlite3 error as its cause, when the
        statement fails.
        """
        if not self._open:
            raise JournalError(
                f"this transaction on the journal {self.path} has ended; "
                "do the work inside the effects callback instead of keeping the Tx"
            )

        try:
            return self._conn.execute(sql, params)
        except sqlite3.Error as error:
            raise journal_error(self.path, "run a statement on", error) from error

    def enqueue(
        self,
        *,
        kind: str,
        owner: str,
        key: str,
        payload: dict[str, Any],
        run_at: float | None = None,
        max_attempts: int | None = None,
    ) -> int | None:
        """Add a ready job and return its id, or None when ``key`` exists already.

        ``run_at`` is the Unix time from which the job may be claimed (default:
        now).  ``max_attempts`` defaults to the journal's setting.
        """
        _require_name("kind", kind)
        _require_name("owner", owner)
        _require_name("key", key)
        attempts = self.policy.max_attempts if max_attempts is None else max_attempts
        require_max_attempts(attempts)
        start = self.now if run_at is None else _require_time("run_at", run_at)

        row = self.execute(
            _ENQUEUE,
            (
                kind,
                owner,
                key,
                encode_payload(key, payload),
                JobState.READY.value,
                attempts,
                start,
                self.now,
                self.now,
            ),
        ).fetchone()
        return None if row is None else int(row[0])

    def emit(
        self, *, type: str, key: str, platform: str, subject: str, payload: dict[str, Any]
    ) -> bool:
        """Append a fact to the outbox; return False when ``key`` was emitted already.

        A new event is passed to every emit hook inside this transaction.
        """
        _require_name("type", type)
        _require_name("key", key)

        row = self.execute(
            _EMIT, (key, type, platform, subject, encode_payload(key, payload), self.now)
        ).fetchone()
        if row is None:
            return False

        event = Event(
            id=int(row[0]),
            key=key,
            type=type,
            platform=platform,
            subject=subject,
            payload=payload,
            created_at=self.now,
        )
        for hook in self._emit_hooks:
            hook(self, event)
        return True

    def get_cursor(self, owner: str, name: str) -> str | None:
        """Return the stored sync cursor ``name`` of ``owner``, or None when there is none."""
        row = self.execute(
            "SELECT value FROM cursors WHERE owner = ? AND name = ?", (owner, name)
        ).fetchone()
        return None if row is None else str(row[0])

    def set_cursor(self, owner: str, name: str, value: str) -> None:
        """Store the sync cursor ``name`` of ``owner``, replacing any earlier value."""
        _require_name("owner", owner)
        _require_name("name", name)
        if not isinstance(value, str):
            raise TypeError(f"cursor {owner}/{name} must be a string, got {value!r}")

        self.execute(_SET_CURSOR, (owner, name, value, self.now))

    def close(self) -> None:
        """Invalidate the handle; the journal calls this when the transaction ends."""
        self._open = False


def encode_payload(key: str, payload: object) -> str:
    """Encode a JSON-object payload as text, naming ``key`` when it cannot be encoded."""
    if not isinstance(payload, dict):
        kind = type(payload).__name__
        raise TypeError(f"payload of {key!r} must be a dict (a JSON object), got {kind}")

    try:
        return msgspec.json.encode(payload).decode()
    except (TypeError, msgspec.EncodeError) as error:
        raise ValueError(f"payload of {key!r} cannot be encoded as JSON: {error}") from error


def _require_name(field: str, value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field} must be a non-empty string, got {value!r}")


def _require_time(field: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{field} must be a finite Unix time in seconds, got {value!r}")

    return float(value)
