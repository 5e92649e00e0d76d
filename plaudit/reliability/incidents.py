"""The journal side of platform health: state intervals, incidents and their events.

Every function here runs inside one journal transaction (a :class:`Tx`), so an
incident row and the event that announces it commit together or not at all.
"""

from __future__ import annotations

from typing import Any, Final

from plaudit import metrics
from plaudit.alerts import raise_alert, resolve_alert
from plaudit.journal import Tx
from plaudit.reliability.health import (
    Action,
    HealthState,
    IncidentEscalated,
    IncidentOpened,
    IncidentResolved,
    StateChanged,
    SubjectHealth,
)

SubjectKey = tuple[str, str]
"""(platform, profile); profile "" stands for the platform as a whole."""

_EVENT_TYPES: Final = {
    HealthState.DEGRADED: "platform.degraded",
    HealthState.DOWN: "platform.down",
    HealthState.RECONNECT_REQUIRED: "platform.down",
}

# Incidents in these states alert the operator; a degraded platform still
# syncs, so it emits its event without mailing anyone.
_ALERTING: Final = frozenset({HealthState.DOWN, HealthState.RECONNECT_REQUIRED})
_ALERT_SOURCE: Final = "health"


def apply_action(
    tx: Tx,
    key: SubjectKey,
    action: Action,
    intervals: dict[SubjectKey, int],
    incidents: dict[SubjectKey, int],
) -> None:
    platform, profile = key
    match action:
        case StateChanged(at=at, new=new):
            if key in intervals:
                tx.execute(
                    "UPDATE health_intervals SET ended_at = ? WHERE id = ?", (at, intervals[key])
                )
            intervals[key] = _insert_interval(tx, key, str(new), at)
        case IncidentOpened(at=at, state=state, cause=cause):
            row = tx.execute(
                "INSERT INTO incidents (platform, profile, state, cause, opened_at) "
                "VALUES (?, ?, ?, ?, ?) RETURNING id",
                (platform, profile, str(state), cause, at),
            ).fetchone()
            incidents[key] = int(row[0])
            if not profile:
                metrics.PLATFORM_INCIDENTS.labels(platform, str(state)).inc()
            _emit(tx, key, incidents[key], _EVENT_TYPES[state], at, state=state, cause=cause)
            _alert(tx, key, incidents[key], state, cause)
        case IncidentEscalated(at=at, state=state, cause=cause):
            incident = incidents.get(key)
            if incident is None:
                return
            tx.execute(
                "UPDATE incidents SET state = ?, cause = ? WHERE id = ?",
                (str(state), cause, incident),
            )
            _emit(tx, key, incident, _EVENT_TYPES[state], at, state=state, cause=cause)
            _alert(tx, key, incident, state, cause)
        case IncidentResolved(at=at):
            incident = incidents.pop(key, None)
            if incident is None:
                return
            tx.execute(
                "UPDATE incidents SET resolved_at = ?, duration = ? - opened_at WHERE id = ?",
                (at, at, incident),
            )
            _emit(tx, key, incident, "platform.recovered", at, state=HealthState.HEALTHY, cause="")
            resolve_alert(tx, source=_ALERT_SOURCE, key=_subject(key))


def _subject(key: SubjectKey) -> str:
    platform, profile = key
    return f"{platform}/{profile}" if profile else platform


def _alert(tx: Tx, key: SubjectKey, incident: int, state: HealthState, cause: str) -> None:
    if state not in _ALERTING:
        return
    subject = _subject(key)
    if state is HealthState.RECONNECT_REQUIRED:
        summary = (
            f"{subject} needs reconnecting: {cause}. Authorise Plaudit again and put the new "
            "refresh token in the platform's secret file, then run `plaudit ctl reload`."
        )
    else:
        summary = f"{subject} is down: {cause}. Plaudit keeps retrying and reports the recovery."
    raise_alert(
        tx,
        source=_ALERT_SOURCE,
        key=subject,
        severity="critical",
        summary=summary,
        detail={"incident": incident, "state": str(state), "cause": cause},
    )


def _emit(
    tx: Tx,
    key: SubjectKey,
    incident: int,
    event_type: str,
    at: float,
    *,
    state: HealthState,
    cause: str,
) -> None:
    platform, profile = key
    row = tx.execute(
        "SELECT opened_at, resolved_at, duration FROM incidents WHERE id = ?", (incident,)
    ).fetchone()
    tx.emit(
        type=event_type,
        key=f"incident:{incident}:{event_type}:{at:.6f}",
        platform=platform,
        subject=profile or platform,
        payload={
            "incident": incident,
            "platform": platform,
            "profile": profile,
            "state": str(state),
            "cause": cause,
            "opened_at": row[0],
            "resolved_at": row[1],
            "duration_seconds": row[2],
        },
    )


def _insert_interval(tx: Tx, key: SubjectKey, state: str, at: float) -> int:
    row = tx.execute(
        "INSERT INTO health_intervals (platform, profile, state, started_at, ended_at) "
        "VALUES (?, ?, ?, ?, ?) RETURNING id",
        (key[0], key[1], state, at, at),
    ).fetchone()
    return int(row[0])


def extend_intervals(
    tx: Tx,
    subjects: dict[SubjectKey, SubjectHealth],
    intervals: dict[SubjectKey, int],
    *,
    now: float,
    started_at: float,
) -> None:
    """Open an interval for subjects without one, and extend every current interval to now."""
    for key, subject in subjects.items():
        if key not in intervals:
            intervals[key] = _insert_interval(
                tx, key, str(subject.state), max(started_at, subject.since)
            )
        tx.execute(
            "UPDATE health_intervals SET ended_at = max(ended_at, ?) WHERE id = ?",
            (now, intervals[key]),
        )


def read_intervals(tx: Tx, horizon: float) -> dict[SubjectKey, list[tuple[str, float, float]]]:
    rows = tx.execute(
        "SELECT platform, profile, state, started_at, ended_at FROM health_intervals "
        "WHERE ended_at >= ? ORDER BY started_at",
        (horizon,),
    ).fetchall()
    result: dict[SubjectKey, list[tuple[str, float, float]]] = {}
    for platform, profile, state, started_at, ended_at in rows:
        result.setdefault((platform, profile), []).append((state, started_at, ended_at))
    return result


def read_incidents(tx: Tx, limit: int = 20) -> list[dict[str, Any]]:
    rows = tx.execute(
        "SELECT id, platform, profile, state, cause, opened_at, resolved_at, duration "
        "FROM incidents ORDER BY resolved_at IS NOT NULL, opened_at DESC LIMIT ?",
        (limit,),
    ).fetchall()
    names = ("id", "platform", "profile", "state", "cause", "opened_at", "resolved_at")
    return [dict(zip((*names, "duration_seconds"), row, strict=True)) for row in rows]


def read_open_incidents(tx: Tx) -> list[tuple[int, str, str, str, str]]:
    rows = tx.execute(
        "SELECT id, platform, profile, state, cause FROM incidents WHERE resolved_at IS NULL"
    ).fetchall()
    return [(int(row[0]), row[1], row[2], row[3], row[4]) for row in rows]
