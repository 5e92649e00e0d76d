"""The pure decision step of the webhook actor: the meaning of an attempt's result.

:func:`decide` takes the attempt's result, the attempt number, the
endpoint's settings and its failure history, and returns a
:class:`Decision`: delivered, retry after an exact delay from the
endpoint's schedule, dead (schedule exhausted or a permanent error), or
disable the endpoint (410 Gone, or failing without a success for
``disable_after`` seconds).  No I/O and no clock: the shell passes ``now``.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, final

import msgspec

from plaudit.webhooks.endpoints import Endpoint


class Outcome(enum.StrEnum):
    """The end state of one delivery job after an attempt."""

    DELIVERED = "delivered"
    # Failed; the next attempt is scheduled.
    RETRY = "retry"
    # Failed for good; ``ctl replay`` can send it again.
    DEAD = "dead"
    # The endpoint was disabled by this attempt (410 Gone or continuous failure).
    DISABLED = "disabled"
    # Not sent, because the endpoint is disabled or no longer configured.
    SKIPPED = "skipped"
    # Not sent, because the endpoint's circuit breaker is open: the job waits
    # without using an attempt.
    DEFERRED = "deferred"


@final
@dataclass(frozen=True, slots=True)
class AttemptResult:
    """The result of one HTTP attempt: a status code, or an error without one."""

    status: int | None
    latency_ms: float
    error: str | None = None
    # Errors that no retry can fix, such as a forbidden target address.
    permanent: bool = False

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@final
@dataclass(frozen=True, slots=True)
class EndpointHealth:
    """An endpoint's delivery history that the decision needs. Times are Unix seconds."""

    disabled: bool = False
    disabled_reason: str | None = None
    # Start of the current run of failures; None after a success.
    failing_since: float | None = None
    last_success_at: float | None = None


@final
@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    health: EndpointHealth
    # Seconds until the next attempt, for RETRY.
    retry_in: float | None = None
    error: str | None = None


def decide(
    result: AttemptResult,
    *,
    attempt: int,
    endpoint: Endpoint,
    health: EndpointHealth,
    now: float,
) -> Decision:
    """Choose what follows attempt number ``attempt`` (1-based) of one delivery.

    An endpoint that ``health`` shows disabled stays disabled whatever the
    result: another attempt in flight at the same time may have disabled it.
    """
    decision = _decide(result, attempt=attempt, endpoint=endpoint, health=health, now=now)
    if health.disabled and not decision.health.disabled:
        reason = health.disabled_reason or "disabled"
        return dataclasses.replace(decision, health=_disabled(decision.health, reason))
    return decision


def _decide(
    result: AttemptResult,
    *,
    attempt: int,
    endpoint: Endpoint,
    health: EndpointHealth,
    now: float,
) -> Decision:
    if result.succeeded:
        healthy = EndpointHealth(failing_since=None, last_success_at=now)
        return Decision(Outcome.DELIVERED, healthy)

    error = describe_failure(result)
    failing_since = health.failing_since if health.failing_since is not None else now
    failing = EndpointHealth(failing_since=failing_since, last_success_at=health.last_success_at)

    if result.status == 410:
        reason = f"the receiver responded 410 Gone at {_iso(now)}"
        return Decision(Outcome.DISABLED, _disabled(failing, reason), error=error)
    if now - failing_since >= endpoint.disable_after:
        reason = (
            f"every delivery failed for {endpoint.disable_after / 86400:g} days "
            f"(since {_iso(failing_since)})"
        )
        return Decision(Outcome.DISABLED, _disabled(failing, reason), error=error)
    if result.permanent or attempt >= endpoint.max_attempts:
        return Decision(Outcome.DEAD, failing, error=error)
    return Decision(
        Outcome.RETRY, failing, retry_in=endpoint.retry_schedule[attempt - 1], error=error
    )


def describe_failure(result: AttemptResult) -> str:
    """Return the text stored as the attempt's error."""
    if result.error is not None:
        return result.error
    if result.status is not None and 300 <= result.status < 400:
        return f"HTTP {result.status}: redirects are not followed; configure the final URL"
    return f"HTTP {result.status}: the receiver did not respond with 2xx"


def _disabled(health: EndpointHealth, reason: str) -> EndpointHealth:
    return EndpointHealth(
        disabled=True,
        disabled_reason=reason,
        failing_since=health.failing_since,
        last_success_at=health.last_success_at,
    )


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def delivery_body(payload: dict[str, Any]) -> bytes:
    """Return the JSON body ``{type, timestamp, data}`` of a delivery job's payload.

    ``timestamp`` is when the event was committed, in RFC 3339 UTC.  The
    encoding is deterministic, so every attempt sends the same bytes.
    """
    body = {
        "type": payload["type"],
        "timestamp": _iso_precise(float(payload["created_at"])),
        "data": payload["data"],
    }
    return msgspec.json.encode(body)


def _iso_precise(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
