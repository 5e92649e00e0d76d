"""Confidence intervals for conversion rates and for the lift between two groups.

All functions are pure and take counts, so ``plaudit report``, ``plaudit ctl
personalisation lift`` and the simulation in ``bench/personalisation.py``
compute the same figures the same way.
"""

from __future__ import annotations

import math
from typing import Final, final

import msgspec

# Two-sided 95 %: the 0.975 quantile of the standard normal distribution.
Z_95: Final = 1.959963984540054


@final
class Interval(msgspec.Struct, frozen=True, kw_only=True):
    """A point estimate with its lower and upper confidence bounds."""

    estimate: float
    low: float
    high: float


def wilson_interval(successes: int, trials: int, *, z: float = Z_95) -> Interval:
    """Return the Wilson score interval of a proportion; (0, 0, 1) when ``trials`` is 0."""
    _require_counts(successes, trials)
    if trials == 0:
        return Interval(estimate=0.0, low=0.0, high=1.0)

    share = successes / trials
    spread = z * z / trials
    centre = (share + spread / 2) / (1 + spread)
    half = z * math.sqrt(share * (1 - share) / trials + spread / (4 * trials)) / (1 + spread)
    return Interval(estimate=share, low=max(0.0, centre - half), high=min(1.0, centre + half))


def newcombe_difference(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int, *, z: float = Z_95
) -> Interval:
    """Return the difference of proportions a - b with Newcombe's hybrid score interval.

    Newcombe (1998), method 10: it combines the two Wilson intervals and stays
    inside [-1, 1] even with zero counts.
    """
    a = wilson_interval(successes_a, trials_a, z=z)
    b = wilson_interval(successes_b, trials_b, z=z)
    difference = a.estimate - b.estimate
    low = difference - math.sqrt((a.estimate - a.low) ** 2 + (b.high - b.estimate) ** 2)
    high = difference + math.sqrt((a.high - a.estimate) ** 2 + (b.estimate - b.low) ** 2)
    return Interval(estimate=difference, low=max(-1.0, low), high=min(1.0, high))


def relative_lift(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int, *, z: float = Z_95
) -> Interval | None:
    """Return rate(a) / rate(b) - 1 with the Katz log interval of the rate ratio.

    A zero count gets 0.5 added to every cell (Haldane's correction), so the
    interval stays finite.  Returns None when either group has no trials.
    """
    _require_counts(successes_a, trials_a)
    _require_counts(successes_b, trials_b)
    if trials_a == 0 or trials_b == 0:
        return None

    rate_a = successes_a / trials_a
    rate_b = successes_b / trials_b
    correction = 0.5 if 0 in (successes_a, successes_b) else 0.0
    a = successes_a + correction
    b = successes_b + correction
    n_a = trials_a + 2 * correction
    n_b = trials_b + 2 * correction
    log_ratio = math.log((a / n_a) / (b / n_b))
    error = math.sqrt(max(0.0, 1 / a - 1 / n_a + 1 / b - 1 / n_b))
    estimate = rate_a / rate_b - 1 if rate_b > 0 else math.exp(log_ratio) - 1
    return Interval(
        estimate=estimate,
        low=math.exp(log_ratio - z * error) - 1,
        high=math.exp(log_ratio + z * error) - 1,
    )


def _require_counts(successes: int, trials: int) -> None:
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(
            f"counts must satisfy 0 <= successes <= trials, got {successes} of {trials}"
        )
