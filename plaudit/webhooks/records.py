"""Journal writes and reads of webhook deliveries: the attempt log and endpoint states.

Every write here runs inside the transaction that records the delivery
job's outcome, so the attempt row, the endpoint's state and the job's next
run commit together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, final

from plaudit.alerts import raise_alert, resolve_alert
from plaudit.journal import Job, Journal, Tx
from plaudit.journal import operations as job_operations
from plaudit.webhooks.delivery import AttemptResult, Decision, EndpointHealth, Outcome
from plaudit.webhooks.router import DELIVER_KIND, OWNER

_UPSERT_ENDPOINT: Final = """
INSERT INTO webhook_endpoints (name, state, disabled_reason, disabled_at, failing_since,
                               last_success_at, updated_at)
VALUES (:name, :state, :reason, :disabled_at, :failing_since, :last_success_at, :now)
ON CONFLICT (name) DO UPDATE SET
    state = excluded.state,
    disabled_reason = excluded.disabled_reason,
    disabled_at = CASE WHEN excluded.state = 'disabled'
        THEN coalesce(webhook_endpoints.disabled_at, excluded.disabled_at) ELSE NULL END,
    failing_since = excluded.failing_since,
    last_success_at = excluded.last_success_at,
    updated_at = excluded.updated_at
"""
_INSERT_ATTEMPTS: Final = """
INSERT INTO webhook_attempts (job_id, endpoint, event_key, event_type, attempt, status_code,
                              latency_ms, error, outcome, attempted_at)
VALUES """
_ATTEMPT_VALUES: Final = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_ATTEMPT: Final = _INSERT_ATTEMPTS + _ATTEMPT_VALUES
# Pending deliveries of one endpoint; the key starts with "webhook:<name>:".
_PENDING_OF_ENDPOINT: Final = """
SELECT id FROM jobs
WHERE kind = ? AND state IN ('ready', 'failed') AND substr(key, 1, ?) = ?
"""
ATTEMPT_COLUMNS: Final = (
    "id",
    "job_id",
    "endpoint",
    "event_key",
    "event_type",
    "attempt",
    "status_code",
    "latency_ms",
    "error",
    "outcome",
    "attempted_at",
)
# The ``source`` of the operator alerts raised here.
ALERT_SOURCE: Final = "webhooks"
# Longer error texts are cut so that a huge response cannot bloat the log.
MAX_ERROR_CHARS: Final = 1000
# Rows per statement: 500 attempt rows bind 5,000 variables, under SQLite's
# limit of 32,766 (since SQLite 3.32).
MAX_ROWS_PER_STATEMENT: Final = 500
# Completes the listed jobs that this instance still holds, like operations.complete.
_COMPLETE_OWNED: Final = """
UPDATE jobs SET state = 'succeeded', lease_owner = NULL, lease_expires_at = NULL,
                updated_at = ?, finished_at = ?
WHERE id IN ({marks}) AND state = 'running' AND lease_owner = ?
RETURNING id
"""


@final
@dataclass(frozen=True, slots=True)
class Delivered:
    """One successful attempt waiting to be written with others."""

    job: Job
    result: AttemptResult
    decision: Decision


def endpoint_prefix(name: str) -> str:
    return f"webhook:{name}:"


def record_decision(tx: Tx, job: Job, *, result: AttemptResult | None, decision: Decision) -> int:
    """Write one attempt's outcome: attempt row, endpoint state, job transition.

    ``result`` is None for a job that was skipped without a request.  Returns
    how many other pending deliveries were stopped because the endpoint was
    disabled.
    """
    endpoint = str(job.payload["endpoint"])
    _insert_attempt(tx, job, result=result, decision=decision)
    save_health(tx, endpoint, decision.health)
    error = decision.error or ""

    if decision.outcome is Outcome.DELIVERED:
        job_operations.complete(tx, job.id, None)
        return 0
    if decision.outcome is Outcome.RETRY:
        retry_in = decision.retry_in or 0.0
        job_operations.fail(tx, job.id, error, retry_after=retry_in, permanent=False)
        # fail() adds the journal's jittered backoff; the webhook schedule is exact.
        tx.execute(
            "UPDATE jobs SET next_run_at = ? WHERE id = ? AND state = 'failed'",
            (tx.now + retry_in, job.id),
        )
        return 0

    job_operations.fail(tx, job.id, error, retry_after=None, permanent=True)
    if decision.outcome is Outcome.DISABLED:
        reason = decision.health.disabled_reason or "disabled"
        stopped = stop_pending(tx, endpoint, f"endpoint {endpoint} disabled: {reason}")
        alert_disabled(tx, endpoint, reason=reason, stopped=stopped, status=disable_status(result))
        return stopped
    return 0


def alert_disabled(tx: Tx, endpoint: str, *, reason: str, stopped: int, status: int | None) -> None:
    """Raise the operator alert for a disabled endpoint, in the transaction that disabled it."""
    cause = disable_cause(status)
    raise_alert(
        tx,
        source=ALERT_SOURCE,
        key=disabled_alert_key(endpoint),
        severity="critical",
        summary=(
            f"Webhook endpoint {endpoint} was disabled: {reason}. Fix the receiver, then run "
            f"`plaudit ctl webhooks --enable {endpoint}` and "
            f"`plaudit ctl replay --endpoint {endpoint} --since TIME` to send what it missed."
        ),
        detail={
            "endpoint": endpoint,
            "cause": cause,
            "reason": reason,
            "deliveries_stopped": stopped,
        },
    )


def disable_status(result: AttemptResult | None) -> int | None:
    return None if result is None else result.status


def disable_cause(status: int | None) -> str:
    """Return the bounded reason label of a disable: "gone" (410) or "failing"."""
    return "gone" if status == 410 else "failing"


def disabled_alert_key(endpoint: str) -> str:
    return f"endpoint_disabled:{endpoint}"


def record_delivered(tx: Tx, deliveries: Sequence[Delivered]) -> set[int]:
    """Write the outcomes of many successful attempts with one statement per table.

    Completes every job this instance still holds, logs one attempt row for
    each of them and saves each endpoint's newest health.  Returns the ids
    of the jobs it completed.  The others lost their lease, so their outcome
    is not written and a later attempt repeats them.
    """
    completed: set[int] = set()
    for first in range(0, len(deliveries), MAX_ROWS_PER_STATEMENT):
        chunk = deliveries[first : first + MAX_ROWS_PER_STATEMENT]
        marks = ", ".join("?" * len(chunk))
        rows = tx.execute(
            _COMPLETE_OWNED.format(marks=marks),
            (tx.now, tx.now, *(item.job.id for item in chunk), tx.policy.instance),
        ).fetchall()
        completed.update(int(job_id) for (job_id,) in rows)

    owned = [item for item in deliveries if item.job.id in completed]
    for first in range(0, len(owned), MAX_ROWS_PER_STATEMENT):
        chunk = owned[first : first + MAX_ROWS_PER_STATEMENT]
        values = ", ".join([_ATTEMPT_VALUES] * len(chunk))
        params = [
            value
            for item in chunk
            for value in _attempt_row(tx, item.job, result=item.result, decision=item.decision)
        ]
        tx.execute(_INSERT_ATTEMPTS + values, params)
    newest = {str(item.job.payload["endpoint"]): item.decision.health for item in owned}
    for name, health in newest.items():
        save_health(tx, name, health)
    return completed


def _insert_attempt(tx: Tx, job: Job, *, result: AttemptResult | None, decision: Decision) -> None:
    tx.execute(_INSERT_ATTEMPT, _attempt_row(tx, job, result=result, decision=decision))


def _attempt_row(
    tx: Tx, job: Job, *, result: AttemptResult | None, decision: Decision
) -> tuple[Any, ...]:
    error = decision.error[:MAX_ERROR_CHARS] if decision.error else None
    return (
        job.id,
        str(job.payload["endpoint"]),
        str(job.payload["event_key"]),
        str(job.payload["type"]),
        job.attempts,
        None if result is None else result.status,
        None if result is None else round(result.latency_ms, 3),
        error,
        decision.outcome.value,
        tx.now,
    )


def save_health(tx: Tx, name: str, health: EndpointHealth) -> None:
    tx.execute(
        _UPSERT_ENDPOINT,
        {
            "name": name,
            "state": "disabled" if health.disabled else "enabled",
            "reason": health.disabled_reason,
            "disabled_at": tx.now if health.disabled else None,
            "failing_since": health.failing_since,
            "last_success_at": health.last_success_at,
            "now": tx.now,
        },
    )


def stop_pending(tx: Tx, endpoint: str, reason: str) -> int:
    """Mark every ready or failed delivery of ``endpoint`` dead; return how many."""
    prefix = endpoint_prefix(endpoint)
    rows = tx.execute(_PENDING_OF_ENDPOINT, (DELIVER_KIND, len(prefix), prefix)).fetchall()
    for (job_id,) in rows:
        tx.execute(
            "UPDATE jobs SET state = 'dead', last_error = ?, next_run_at = ?, updated_at = ?, "
            "finished_at = ? WHERE id = ?",
            (reason, tx.now, tx.now, tx.now, job_id),
        )
    return len(rows)


def enable_endpoint(tx: Tx, name: str) -> None:
    """Clear an endpoint's disabled state and failure run, and resolve its alert."""
    save_health(tx, name, EndpointHealth())
    resolve_alert(tx, source=ALERT_SOURCE, key=disabled_alert_key(name))


def load_health(journal: Journal) -> dict[str, EndpointHealth]:
    """Return every endpoint's stored state, keyed by name."""
    rows = journal.query(
        "SELECT name, state, disabled_reason, failing_since, last_success_at "
        "FROM webhook_endpoints",
        (),
    )
    return {
        str(name): EndpointHealth(
            disabled=state == "disabled",
            disabled_reason=reason,
            failing_since=failing_since,
            last_success_at=last_success_at,
        )
        for name, state, reason, failing_since, last_success_at in rows
    }


def endpoint_rows(journal: Journal) -> list[dict[str, Any]]:
    """Return the stored state of every endpoint with its backlog by job state."""
    states = journal.query(
        "SELECT name, state, disabled_reason, disabled_at, failing_since, last_success_at "
        "FROM webhook_endpoints ORDER BY name",
        (),
    )
    backlog = journal.query(
        "SELECT json_extract(payload, '$.endpoint'), state, count(*) FROM jobs "
        "WHERE kind = ? AND state != 'succeeded' GROUP BY 1, 2",
        (DELIVER_KIND,),
    )
    rows: dict[str, dict[str, Any]] = {}
    for name, state, reason, disabled_at, failing_since, last_success_at in states:
        rows[name] = {
            "name": name,
            "state": state,
            "disabled_reason": reason,
            "disabled_at": disabled_at,
            "failing_since": failing_since,
            "last_success_at": last_success_at,
            "backlog": {},
        }
    for name, state, count in backlog:
        row = rows.setdefault(str(name), {"name": str(name), "state": "enabled", "backlog": {}})
        row["backlog"][state] = count
    return list(rows.values())


def attempts(
    journal: Journal,
    *,
    endpoint: str | None = None,
    outcome: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Return the newest attempts first, optionally of one endpoint or outcome."""
    filters: list[str] = []
    params: list[Any] = []
    for column, value in (("endpoint", endpoint), ("outcome", outcome)):
        if value is not None:
            filters.append(f"{column} = ?")
            params.append(value)
    where = f"WHERE {' AND '.join(filters)}" if filters else ""
    rows = journal.query(
        f"SELECT {', '.join(ATTEMPT_COLUMNS)} FROM webhook_attempts {where} "
        "ORDER BY id DESC LIMIT ?",
        (*params, limit),
    )
    return [dict(zip(ATTEMPT_COLUMNS, row, strict=True)) for row in rows]


def replay_since(tx: Tx, endpoint: str, since: float) -> list[int]:
    """Make every failed or dead delivery of ``endpoint`` created since ``since`` ready."""
    prefix = endpoint_prefix(endpoint)
    rows = tx.execute(
        "SELECT id FROM jobs WHERE kind = ? AND state IN ('failed', 'dead') "
        "AND substr(key, 1, ?) = ? AND created_at >= ? ORDER BY id",
        (DELIVER_KIND, len(prefix), prefix, since),
    ).fetchall()
    return [job_operations.retry(tx, job_id).id for (job_id,) in rows]


def next_due(journal: Journal) -> float | None:
    """Return the earliest next run time of a waiting delivery, or None when none waits."""
    rows = journal.query(
        "SELECT min(next_run_at) FROM jobs WHERE owner = ? AND kind = ? "
        "AND state IN ('ready', 'failed')",
        (OWNER, DELIVER_KIND),
    )
    value = rows[0][0] if rows else None
    return None if value is None else float(value)
