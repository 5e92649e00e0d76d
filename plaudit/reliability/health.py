"""Platform health as a pure decision step: observations in, state changes and incidents out.

Each subject is a platform (profile ``""``) or one profile of it.  Its state
follows from what it last observed, in this order of precedence:

1. ``paused``: an operator paused the platform's actor.
2. ``reconnect-required``: the platform revoked the credentials.
3. ``down``: the platform's circuit breaker is open or half-open, or the
   last ``down_after_failures`` jobs failed.
4. ``degraded``: the last ``degraded_after_failures`` jobs failed, or at
   least ``degraded_ratio`` of the jobs within ``window_seconds`` failed (once
   there are ``minimum_jobs``).

The thresholds are the ``[health]`` table of the configuration
(:class:`~plaudit.config.model.HealthConfig`).
5. ``healthy`` otherwise.

Leaving ``healthy`` for any state but ``paused`` opens an incident; a change
between unhealthy states escalates it; returning to ``healthy`` resolves it.
:class:`~plaudit.reliability.monitor.PlatformHealthMonitor` is the shell that
performs the resulting actions.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Sequence
from typing import Final, final

import msgspec

from plaudit.config.model import HealthConfig


class HealthState(enum.StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    DOWN = "down"
    PAUSED = "paused"
    RECONNECT_REQUIRED = "reconnect-required"


# Time in these states counts as up, in DOWN_STATES as down.  Paused time
# counts as neither, and neither does time the daemon was not running.
UP_STATES: Final = frozenset({HealthState.HEALTHY, HealthState.DEGRADED})
DOWN_STATES: Final = frozenset({HealthState.DOWN, HealthState.RECONNECT_REQUIRED})
INCIDENT_STATES: Final = frozenset(
    {HealthState.DEGRADED, HealthState.DOWN, HealthState.RECONNECT_REQUIRED}
)
# Uptime windows reported by ``ctl health`` and the metrics, in seconds.
UPTIME_WINDOWS: Final = {"1h": 3600.0, "24h": 86_400.0, "30d": 30 * 86_400.0}
# Job outcomes kept per subject for the error rate and latency percentiles.
MAX_OUTCOMES: Final = 200


# The thresholds of the degraded and down states: the ``[health]`` table.
HealthPolicy = HealthConfig


# Observations.


@final
class JobObserved(msgspec.Struct, frozen=True, kw_only=True):
    """A platform job finished: ``ok`` False for a retryable platform failure."""

    at: float
    ok: bool
    seconds: float
    error: str | None = None


@final
class BreakerObserved(msgspec.Struct, frozen=True, kw_only=True):
    at: float
    # True while the breaker is open or half-open.
    tripped: bool


@final
class PauseObserved(msgspec.Struct, frozen=True, kw_only=True):
    at: float
    paused: bool


@final
class ReconnectObserved(msgspec.Struct, frozen=True, kw_only=True):
    """The credentials were revoked (``required``), or a new configuration was loaded."""

    at: float
    required: bool
    error: str | None = None


Observation = JobObserved | BreakerObserved | PauseObserved | ReconnectObserved


# Actions.


@final
class StateChanged(msgspec.Struct, frozen=True, kw_only=True):
    at: float
    old: HealthState
    new: HealthState
    cause: str


@final
class IncidentOpened(msgspec.Struct, frozen=True, kw_only=True):
    at: float
    state: HealthState
    cause: str


@final
class IncidentEscalated(msgspec.Struct, frozen=True, kw_only=True):
    """The open incident's state changed (for example, degraded to down)."""

    at: float
    state: HealthState
    cause: str


@final
class IncidentResolved(msgspec.Struct, frozen=True, kw_only=True):
    at: float


Action = StateChanged | IncidentOpened | IncidentEscalated | IncidentResolved


@final
class SubjectHealth(msgspec.Struct, frozen=True, kw_only=True):
    """One subject's observations, and the state that follows from them."""

    platform: str
    profile: str = ""
    state: HealthState = HealthState.HEALTHY
    since: float = 0.0
    cause: str = ""
    incident_open: bool = False
    paused: bool = False
    reconnect_required: bool = False
    breaker_tripped: bool = False
    consecutive_failures: int = 0
    # (time, ok, seconds) of recent jobs, oldest first.
    outcomes: tuple[tuple[float, bool, float], ...] = ()
    last_success_at: float | None = None
    last_error: str | None = None


def decide(
    subject: SubjectHealth, observation: Observation, policy: HealthPolicy
) -> tuple[SubjectHealth, list[Action]]:
    """Fold one observation into ``subject`` and return the new subject and the actions."""
    subject = _absorb(subject, observation, policy)
    new, cause = derive_state(subject, policy, now=observation.at)
    return transition(subject, new, cause, at=observation.at)


def _absorb(
    subject: SubjectHealth, observation: Observation, policy: HealthPolicy
) -> SubjectHealth:
    replace = msgspec.structs.replace
    match observation:
        case JobObserved(at=at, ok=ok, seconds=seconds, error=error):
            horizon = at - policy.window_seconds
            kept = [outcome for outcome in subject.outcomes if outcome[0] >= horizon]
            kept.append((at, ok, seconds))
            outcomes = tuple(kept[-MAX_OUTCOMES:])
            if ok:
                return replace(
                    subject, outcomes=outcomes, consecutive_failures=0, last_success_at=at
                )
            return replace(
                subject,
                outcomes=outcomes,
                consecutive_failures=subject.consecutive_failures + 1,
                last_error=error,
            )
        case BreakerObserved(tripped=tripped):
            return replace(subject, breaker_tripped=tripped)
        case PauseObserved(paused=paused):
            return replace(subject, paused=paused)
        case ReconnectObserved(required=required, error=error):
            last_error = error if required else subject.last_error
            return replace(subject, reconnect_required=required, last_error=last_error)


def derive_state(
    subject: SubjectHealth, policy: HealthPolicy, *, now: float
) -> tuple[HealthState, str]:
    """Return the state that follows from ``subject``'s observations, and why."""
    if subject.paused:
        return HealthState.PAUSED, "paused by an operator"

    if subject.reconnect_required:
        return HealthState.RECONNECT_REQUIRED, subject.last_error or "credentials revoked"

    if subject.breaker_tripped:
        return HealthState.DOWN, f"circuit breaker open: {subject.last_error or 'failures'}"

    failures = subject.consecutive_failures
    if failures >= policy.down_after_failures:
        return HealthState.DOWN, f"{failures} jobs failed in a row: {subject.last_error}"

    if failures >= policy.degraded_after_failures:
        return HealthState.DEGRADED, subject.last_error or "the last job failed"

    rate = error_rate(subject, policy, now=now)
    recent = _recent(subject, policy, now=now)
    if len(recent) >= policy.minimum_jobs and rate is not None and rate >= policy.degraded_ratio:
        return HealthState.DEGRADED, f"{rate:.0%} of jobs failed within {policy.window_seconds:g} s"

    return HealthState.HEALTHY, "jobs succeed"


def transition(
    subject: SubjectHealth, new: HealthState, cause: str, *, at: float
) -> tuple[SubjectHealth, list[Action]]:
    """Move ``subject`` to ``new`` and return the state change and incident actions it causes."""
    old = subject.state
    if new is old:
        return subject, []

    actions: list[Action] = [StateChanged(at=at, old=old, new=new, cause=cause)]
    incident_open = subject.incident_open
    if new in INCIDENT_STATES and not incident_open:
        actions.append(IncidentOpened(at=at, state=new, cause=cause))
        incident_open = True
    elif new in INCIDENT_STATES:
        actions.append(IncidentEscalated(at=at, state=new, cause=cause))
    elif new is HealthState.HEALTHY and incident_open:
        actions.append(IncidentResolved(at=at))
        incident_open = False

    updated = msgspec.structs.replace(
        subject, state=new, since=at, cause=cause, incident_open=incident_open
    )
    return updated, actions


def _recent(
    subject: SubjectHealth, policy: HealthPolicy, *, now: float
) -> list[tuple[float, bool, float]]:
    horizon = now - policy.window_seconds
    return [outcome for outcome in subject.outcomes if outcome[0] >= horizon]


def error_rate(subject: SubjectHealth, policy: HealthPolicy, *, now: float) -> float | None:
    """Return the share of failed jobs within the window, or None without jobs."""
    recent = _recent(subject, policy, now=now)
    if not recent:
        return None

    return sum(1 for _, ok, _ in recent if not ok) / len(recent)


def latency_percentiles(
    subject: SubjectHealth, quantiles: Sequence[float] = (0.5, 0.95, 0.99)
) -> dict[str, float | None]:
    """Return job durations in seconds at ``quantiles`` (nearest rank) over the kept outcomes."""
    durations = sorted(seconds for _, _, seconds in subject.outcomes)
    result: dict[str, float | None] = {}
    for quantile in quantiles:
        key = f"p{round(quantile * 100)}"
        if not durations:
            result[key] = None
            continue
        rank = max(1, math.ceil(quantile * len(durations)))
        result[key] = durations[rank - 1]
    return result


def uptime(
    intervals: Iterable[tuple[str, float, float]], *, now: float, window: float
) -> float | None:
    """Return the time-weighted share of up time within ``window`` seconds before ``now``.

    ``intervals`` are (state, start, end) in Unix seconds.  Only observed up
    and down time counts: paused time and gaps (the daemon was not running)
    are left out.  None when the window contains no up or down time at all.
    """
    begin = now - window
    up = 0.0
    down = 0.0
    for state, start, end in intervals:
        overlap = min(end, now) - max(start, begin)
        if overlap <= 0:
            continue
        if state in UP_STATES:
            up += overlap
        elif state in DOWN_STATES:
            down += overlap

    observed = up + down
    return None if observed == 0 else up / observed
