"""Job state transitions, each run inside one write transaction.

Journal and AsyncJournal both call these functions, so the synchronous and
the grouped paths share one implementation of every transition.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import msgspec

from plaudit.errors import IllegalTransitionError, JobNotFoundError
from plaudit.journal.errors import LeaseLostError
from plaudit.journal.models import Event, Job, JobState
from plaudit.journal.policy import (
    require_lease_seconds,
    require_retry_after,
    retry_delay,
    state_after_failure,
)
from plaudit.journal.tx import Tx

log = logging.getLogger(__name__)

JOB_COLUMNS = (
    "id, kind, owner, key, payload, state, attempts, max_attempts, next_run_at, "
    "lease_expires_at, lease_owner, last_error, created_at, updated_at, finished_at"
)
EVENT_COLUMNS = "id, key, type, platform, subject, payload, created_at"

# Longer error texts are cut so that a huge response body cannot bloat the journal.
MAX_ERROR_CHARS = 4000

_OWNED = "id = ? AND state = 'running' AND lease_owner = ?"
_CLAIM = f"""
UPDATE jobs
SET state = 'running', attempts = attempts + 1, lease_owner = ?, lease_expires_at = ?,
    updated_at = ?
WHERE id IN (
    SELECT id FROM jobs
    WHERE owner = ? AND state IN ('ready', 'failed') AND next_run_at <= ? {{kinds}}
    ORDER BY next_run_at, id
    LIMIT ?
)
RETURNING {JOB_COLUMNS}
"""
_RECOVER = """
UPDATE jobs
SET state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'ready' END,
    last_error = CASE WHEN attempts >= max_attempts
        THEN 'the lease expired on the last attempt with no outcome recorded '
             || '(the worker or the daemon stopped while running the job)'
        ELSE last_error END,
    finished_at = CASE WHEN attempts >= max_attempts THEN ? ELSE NULL END,
    lease_owner = NULL, lease_expires_at = NULL, updated_at = ?
WHERE state = 'running' {condition}
RETURNING id, kind, state, attempts
"""

Effects = Callable[[Tx], Any]


def job_from_row(row: Sequence[Any]) -> Job:
    """Build a Job from a row selected as ``JOB_COLUMNS``."""
    return Job(
        id=row[0],
        kind=row[1],
        owner=row[2],
        key=row[3],
        payload=msgspec.json.decode(row[4], type=dict[str, Any]),
        state=JobState(row[5]),
        attempts=row[6],
        max_attempts=row[7],
        next_run_at=row[8],
        lease_expires_at=row[9],
        lease_owner=row[10],
        last_error=row[11],
        created_at=row[12],
        updated_at=row[13],
        finished_at=row[14],
    )


def event_from_row(row: Sequence[Any]) -> Event:
    """Build an Event from a row selected as ``EVENT_COLUMNS``."""
    return Event(
        id=row[0],
        key=row[1],
        type=row[2],
        platform=row[3],
        subject=row[4],
        payload=msgspec.json.decode(row[5], type=dict[str, Any]),
        created_at=row[6],
    )


def claim(
    tx: Tx,
    owner: str,
    *,
    kinds: Sequence[str] | None,
    limit: int,
    lease_seconds: float | None,
) -> list[Job]:
    """Lease up to ``limit`` due ready or failed jobs of ``owner``, earliest first."""
    lease = tx.policy.lease_seconds if lease_seconds is None else lease_seconds
    require_lease_seconds(lease)
    _require_claim_arguments(owner, kinds, limit)

    kind_filter = "" if kinds is None else f"AND kind IN ({', '.join('?' * len(kinds))})"
    params = [tx.policy.instance, tx.now + lease, tx.now, owner, tx.now, *(kinds or ()), limit]
    rows = tx.execute(_CLAIM.format(kinds=kind_filter), params).fetchall()

    # RETURNING yields rows in no defined order.
    jobs = [job_from_row(row) for row in rows]
    jobs.sort(key=lambda job: (job.next_run_at, job.id))
    return jobs


def _require_claim_arguments(owner: str, kinds: Sequence[str] | None, limit: int) -> None:
    if not isinstance(owner, str) or not owner:
        raise ValueError(f"owner must be a non-empty actor name, got {owner!r}")

    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be an integer of at least 1, got {limit!r}")

    if kinds is None:
        return

    if isinstance(kinds, str) or not kinds or not all(isinstance(kind, str) for kind in kinds):
        raise ValueError(
            f"kinds must be a non-empty list of job kinds, or None for every kind, got {kinds!r}"
        )


def complete(tx: Tx, job_id: int, effects: Effects | None) -> None:
    """Mark a job this instance runs as succeeded, then run ``effects`` in the same transaction."""
    updated = tx.execute(
        "UPDATE jobs SET state = 'succeeded', lease_owner = NULL, lease_expires_at = NULL, "
        f"updated_at = ?, finished_at = ? WHERE {_OWNED}",
        (tx.now, tx.now, job_id, tx.policy.instance),
    )
    if updated.rowcount == 0:
        raise_not_owned(tx, job_id)

    if effects is not None:
        effects(tx)


def fail(
    tx: Tx, job_id: int, error: str, *, retry_after: float | None, permanent: bool
) -> JobState:
    """Record a failed attempt; schedule a retry or, when none is left, mark the job dead."""
    require_retry_after(retry_after)
    row = tx.execute(
        f"SELECT attempts, max_attempts, kind, owner FROM jobs WHERE {_OWNED}",
        (job_id, tx.policy.instance),
    ).fetchone()
    if row is None:
        raise_not_owned(tx, job_id)

    attempts, max_attempts, kind, owner = row
    message = str(error)[:MAX_ERROR_CHARS]
    state = state_after_failure(attempts, max_attempts, permanent=permanent)
    if state is JobState.DEAD:
        _mark_dead(tx, job_id, message)
        log.warning(
            "journal.job_dead",
            extra={
                "job": job_id,
                "kind": kind,
                "owner": owner,
                "attempts": attempts,
                "permanent": permanent,
                "error": message[:200],
            },
        )
        return state

    _schedule_retry(tx, job_id, message, attempts=attempts, retry_after=retry_after)
    return state


def _schedule_retry(
    tx: Tx, job_id: int, message: str, *, attempts: int, retry_after: float | None
) -> None:
    next_run_at = tx.now + retry_delay(attempts, tx.policy, retry_after=retry_after)
    tx.execute(
        "UPDATE jobs SET state = 'failed', last_error = ?, next_run_at = ?, lease_owner = NULL, "
        "lease_expires_at = NULL, updated_at = ? WHERE id = ?",
        (message, next_run_at, tx.now, job_id),
    )


def _mark_dead(tx: Tx, job_id: int, message: str) -> None:
    tx.execute(
        "UPDATE jobs SET state = 'dead', last_error = ?, lease_owner = NULL, "
        "lease_expires_at = NULL, updated_at = ?, finished_at = ? WHERE id = ?",
        (message, tx.now, tx.now, job_id),
    )


def release(tx: Tx, job_id: int) -> None:
    """Hand a running job back as ready without counting the attempt (used when draining)."""
    updated = tx.execute(
        "UPDATE jobs SET state = 'ready', attempts = max(attempts - 1, 0), lease_owner = NULL, "
        f"lease_expires_at = NULL, updated_at = ? WHERE {_OWNED}",
        (tx.now, job_id, tx.policy.instance),
    )
    if updated.rowcount == 0:
        raise_not_owned(tx, job_id)


def release_held(tx: Tx) -> int:
    """Hand back every job this instance is running, as ``release`` does; return the count."""
    released = tx.execute(
        "UPDATE jobs SET state = 'ready', attempts = max(attempts - 1, 0), lease_owner = NULL, "
        "lease_expires_at = NULL, updated_at = ? WHERE state = 'running' AND lease_owner = ?",
        (tx.now, tx.policy.instance),
    )
    return released.rowcount


def extend_lease(tx: Tx, job_id: int, lease_seconds: float | None) -> None:
    """Push the lease of a job this instance is running to ``lease_seconds`` from now."""
    lease = tx.policy.lease_seconds if lease_seconds is None else lease_seconds
    require_lease_seconds(lease)

    updated = tx.execute(
        f"UPDATE jobs SET lease_expires_at = ?, updated_at = ? WHERE {_OWNED}",
        (tx.now + lease, tx.now, job_id, tx.policy.instance),
    )
    if updated.rowcount == 0:
        raise_not_owned(tx, job_id)


def recover_leases(tx: Tx, *, expired_only: bool) -> int:
    """Return running jobs to ready and return how many were recovered.

    With ``expired_only``, only jobs whose lease expired before now return.
    Without it every running job returns, which is right only when no other
    process can hold a lease.  A recovered job that had used its last attempt
    becomes dead instead, so a job that kills its worker every time cannot
    loop forever.
    """
    condition = "AND lease_expires_at < ?" if expired_only else ""
    params = (tx.now, tx.now, tx.now) if expired_only else (tx.now, tx.now)
    rows = tx.execute(_RECOVER.format(condition=condition), params).fetchall()

    for job_id, kind, state, attempts in rows:
        if state == JobState.DEAD:
            log.warning(
                "journal.job_dead",
                extra={"job": job_id, "kind": kind, "attempts": attempts, "error": "lease expired"},
            )
    return len(rows)


def retry(tx: Tx, job_id: int) -> Job:
    """Make a failed or dead job ready now with its attempts reset to 0 (an operator action)."""
    row = tx.execute(
        "UPDATE jobs SET state = 'ready', attempts = 0, next_run_at = ?, lease_owner = NULL, "
        "lease_expires_at = NULL, finished_at = NULL, updated_at = ? "
        f"WHERE id = ? AND state IN ('failed', 'dead') RETURNING {JOB_COLUMNS}",
        (tx.now, tx.now, job_id),
    ).fetchone()
    if row is not None:
        return job_from_row(row)

    state = _state_of(tx, job_id)
    raise IllegalTransitionError(
        f"job {job_id} is {state}; only failed or dead jobs can be retried"
    )


def raise_not_owned(tx: Tx, job_id: int) -> NoReturn:
    """Raise JobNotFoundError or LeaseLostError for a job this instance does not hold."""
    row = tx.execute("SELECT state, lease_owner FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        raise not_found(tx.path, job_id)

    raise LeaseLostError(job_id, state=row[0], lease_owner=row[1], instance=tx.policy.instance)


def not_found(path: Path, job_id: int) -> JobNotFoundError:
    """Build the error for a job id that is not in the journal at ``path``."""
    return JobNotFoundError(f"job {job_id!r} not found in the journal {path}; check the job id")


def _state_of(tx: Tx, job_id: int) -> str:
    row = tx.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        raise not_found(tx.path, job_id)

    return str(row[0])
