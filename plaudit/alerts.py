"""Operator alerts: durable records of conditions an operator must act on.

Any part of Plaudit raises an alert inside its own journal transaction, so the
alert exists exactly when the state change that caused it does.  One alert is
open per ``(source, key)``: raising it again while it is open counts a repeat
instead of opening a second one, so a flapping cause never floods the
operator.  A new alert also enqueues one ``alert.send`` job for the notifier,
which delivers it over the operator's configured channels.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Final, Literal, final

import msgspec

from plaudit.journal.tx import Tx

log = logging.getLogger(__name__)

# The job kind the notifier claims to deliver an alert to the operator.
ALERT_JOB: Final = "alert.send"
ALERT_OWNER: Final = "notifier"

Severity = Literal["warning", "critical"]


@final
class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """One operator alert as stored in the journal."""

    id: int
    source: str
    key: str
    severity: str
    summary: str
    detail: dict[str, Any]
    raised_at: float
    updated_at: float
    repeats: int
    resolved_at: float | None


_COLUMNS: Final = (
    "id, source, key, severity, summary, detail, raised_at, updated_at, repeats, resolved_at"
)


def raise_alert(
    tx: Tx,
    *,
    source: str,
    key: str,
    severity: Severity,
    summary: str,
    detail: dict[str, Any] | None = None,
) -> int:
    """Open an alert, or count a repeat of the open one; return its id.

    Only a newly opened alert enqueues an ``alert.send`` job, so the operator
    hears of each cause once until it is resolved.
    """
    if not source or not key:
        raise ValueError("an alert needs a non-empty source and key")
    if severity not in ("warning", "critical"):
        raise ValueError(f"alert severity {severity!r} is not one of warning, critical")
    body = json.dumps(detail or {}, sort_keys=True, default=str)

    row = tx.execute(
        "SELECT id FROM alerts WHERE source = ? AND key = ? AND resolved_at IS NULL",
        (source, key),
    ).fetchone()
    if row is not None:
        alert_id = int(row[0])
        tx.execute(
            "UPDATE alerts SET repeats = repeats + 1, updated_at = ?, summary = ?, detail = ?,"
            " severity = CASE WHEN ? = 'critical' THEN 'critical' ELSE severity END"
            " WHERE id = ?",
            (tx.now, summary, body, severity, alert_id),
        )
        return alert_id

    cursor = tx.execute(
        "INSERT INTO alerts (source, key, severity, summary, detail, raised_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (source, key, severity, summary, body, tx.now, tx.now),
    )
    alert_id = int(cursor.fetchone()[0])
    tx.enqueue(
        kind=ALERT_JOB,
        owner=ALERT_OWNER,
        key=f"alert:{alert_id}",
        payload={"alert": alert_id},
    )
    log.warning(
        "alert.raised",
        extra={"alert": alert_id, "source": source, "key": key, "severity": severity},
    )
    return alert_id


def resolve_alert(tx: Tx, *, source: str, key: str) -> bool:
    """Mark the open alert for ``(source, key)`` resolved; return False when none is open."""
    cursor = tx.execute(
        "UPDATE alerts SET resolved_at = ?, updated_at = ?"
        " WHERE source = ? AND key = ? AND resolved_at IS NULL",
        (tx.now, tx.now, source, key),
    )
    if cursor.rowcount == 0:
        return False
    log.info("alert.resolved", extra={"source": source, "key": key})
    return True


def get_alert(tx: Tx, alert_id: int) -> Alert | None:
    """Return one alert by id, or None when there is no such alert."""
    row = tx.execute(f"SELECT {_COLUMNS} FROM alerts WHERE id = ?", (alert_id,)).fetchone()
    return None if row is None else _alert(row)


def list_alerts(tx: Tx, *, open_only: bool = False, limit: int = 100) -> list[Alert]:
    """Return the newest alerts first; only unresolved ones when ``open_only``."""
    where = "WHERE resolved_at IS NULL" if open_only else ""
    rows = tx.execute(
        f"SELECT {_COLUMNS} FROM alerts {where} ORDER BY raised_at DESC, id DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [_alert(row) for row in rows]


def _alert(row: Any) -> Alert:
    detail = json.loads(row[5])
    return Alert(
        id=int(row[0]),
        source=str(row[1]),
        key=str(row[2]),
        severity=str(row[3]),
        summary=str(row[4]),
        detail=detail if isinstance(detail, dict) else {},
        raised_at=float(row[6]),
        updated_at=float(row[7]),
        repeats=int(row[8]),
        resolved_at=None if row[9] is None else float(row[9]),
    )
