"""Lease and retry settings, and the pure decisions made on a failed attempt."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import final

from plaudit.journal.models import JobState

# 2**64 times any sensible initial delay is far past retry_max; capping the
# exponent keeps the float finite for jobs with very many attempts.
_MAX_EXPONENT = 64


@final
@dataclass(frozen=True, slots=True)
class JobPolicy:
    """How long leases last and how failed jobs are retried. Durations are seconds."""

    # The daemon instance whose leases this journal handle owns.
    instance: str
    lease_seconds: float
    # Default for jobs enqueued without their own max_attempts.
    max_attempts: int
    retry_initial: float
    retry_max: float
    rng: random.Random

    def __post_init__(self) -> None:
        _require_positive("lease_seconds", self.lease_seconds)
        _require_positive("retry_initial", self.retry_initial)
        _require_positive("retry_max", self.retry_max)
        require_max_attempts(self.max_attempts)

        if not self.instance:
            raise ValueError("instance must be a non-empty daemon instance id")


def require_max_attempts(value: int) -> None:
    """Raise ValueError unless ``value`` is a usable max_attempts (an int of at least 1)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"max_attempts must be an integer, got {value!r}")

    if value < 1:
        raise ValueError(f"max_attempts must be at least 1, got {value!r}")


def require_lease_seconds(value: float) -> None:
    """Raise ValueError unless ``value`` is a positive, finite number of seconds."""
    _require_positive("lease_seconds", value)


def _require_positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")

    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive, finite number of seconds, got {value!r}")


def retry_delay(attempts: int, policy: JobPolicy, *, retry_after: float | None) -> float:
    """Return the seconds to wait before the next attempt of a job that failed.

    Exponential backoff with full jitter: a uniform draw between 0 and
    ``min(retry_max, retry_initial * 2**(attempts - 1))``.  A platform's
    ``retry_after`` hint is a lower bound on the result.
    """
    exponent = min(max(attempts - 1, 0), _MAX_EXPONENT)
    ceiling = min(policy.retry_max, policy.retry_initial * 2.0**exponent)
    backoff = policy.rng.uniform(0.0, ceiling)
    return max(retry_after or 0.0, backoff)


def state_after_failure(attempts: int, max_attempts: int, *, permanent: bool) -> JobState:
    """Return DEAD when the failure is permanent or the attempts are used up, else FAILED."""
    if permanent or attempts >= max_attempts:
        return JobState.DEAD

    return JobState.FAILED


def require_retry_after(value: float | None) -> None:
    """Raise ValueError unless ``value`` is None or a finite, non-negative number of seconds."""
    if value is None:
        return

    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"retry_after must be a finite number of seconds or None, got {value!r}")

    if value < 0:
        raise ValueError(f"retry_after must not be negative, got {value!r}")
