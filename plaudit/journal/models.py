"""Records the journal returns: jobs, events and statistics."""

from __future__ import annotations

import enum
from typing import Any, final

import msgspec


class JobState(enum.StrEnum):
    """Lifecycle state of a job; see :mod:`plaudit.journal` for the transitions."""

    READY = "ready"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"


@final
class Job(msgspec.Struct, frozen=True, kw_only=True):
    """One unit of work as stored in the ``jobs`` table.

    Times are Unix seconds.  ``attempts`` counts claims, including the one
    that is running now.
    """

    id: int
    kind: str
    # The actor that claims this job, such as "google".
    owner: str
    # Idempotency key: enqueueing the same key twice creates one job.
    key: str
    payload: dict[str, Any]
    state: JobState
    attempts: int
    max_attempts: int
    next_run_at: float
    lease_expires_at: float | None
    # The daemon instance holding the lease while the job is running.
    lease_owner: str | None
    last_error: str | None
    created_at: float
    updated_at: float
    # Set when the job reaches succeeded or dead.
    finished_at: float | None = None


@final
class Event(msgspec.Struct, frozen=True, kw_only=True):
    """One fact in the outbox that webhooks and reports read, in commit order."""

    id: int
    key: str
    # Dotted event name, such as "review.created".
    type: str
    platform: str
    subject: str
    payload: dict[str, Any]
    created_at: float


@final
class JournalStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of one open :class:`~plaudit.journal.Journal`."""

    path: str
    schema_version: int
    instance: str
    # Write transactions committed, and the operations they contained.
    commits: int
    operations: int
    rollbacks: int
    recovered_at_open: int
    closed: bool


@final
class GroupCommitStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of the :class:`~plaudit.journal.AsyncJournal` writer."""

    running: bool
    commits: int
    operations: int
    # Groups whose transaction failed as a whole (every caller got the error).
    failed_commits: int
    mean_group_size: float
    max_group_size: int
    # Duration of the last group's write transaction, BEGIN to COMMIT.
    last_commit_seconds: float
    # Operations waiting for the next group.
    queued: int
    # Operations whose callers were cancelled before the writer took them.
    withdrawn: int
