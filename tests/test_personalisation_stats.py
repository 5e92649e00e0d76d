"""Confidence intervals, the holdout split and Thompson sampling."""

from __future__ import annotations

import math
import random

import pytest

from plaudit.personalisation.stats import (
    Z_95,
    newcombe_difference,
    relative_lift,
    wilson_interval,
)
from plaudit.personalisation.variants import (
    BASE,
    VariantStats,
    choose_arm,
    holdout_position,
    thompson_choice,
)


def closed_form_wilson(successes: int, trials: int) -> tuple[float, float]:
    """Wilson limits written the other common way: (2np + z^2 +- z sqrt(...)) / 2(n + z^2)."""
    share = successes / trials
    root = Z_95 * math.sqrt(4 * trials * share * (1 - share) + Z_95**2)
    denominator = 2 * (trials + Z_95**2)
    centre = 2 * trials * share + Z_95**2
    return (centre - root) / denominator, (centre + root) / denominator


@pytest.mark.parametrize(("successes", "trials"), [(81, 263), (1, 10), (0, 20), (20, 20)])
def test_wilson_matches_closed_form(successes: int, trials: int) -> None:
    low, high = closed_form_wilson(successes, trials)
    interval = wilson_interval(successes, trials)

    assert interval.estimate == pytest.approx(successes / trials)
    assert interval.low == pytest.approx(max(0.0, low), abs=1e-12)
    assert interval.high == pytest.approx(min(1.0, high), abs=1e-12)


def test_wilson_zero_trials_is_uninformative() -> None:
    interval = wilson_interval(0, 0)

    assert (interval.low, interval.high) == (0.0, 1.0)


def test_newcombe_combines_wilson_limits() -> None:
    interval = newcombe_difference(56, 70, 48, 80)
    low_a, high_a = closed_form_wilson(56, 70)
    low_b, high_b = closed_form_wilson(48, 80)

    assert interval.estimate == pytest.approx(0.2)
    assert interval.low == pytest.approx(0.2 - math.hypot(0.8 - low_a, high_b - 0.6))
    assert interval.high == pytest.approx(0.2 + math.hypot(high_a - 0.8, 0.6 - low_b))
    assert interval.low == pytest.approx(0.0524, abs=1e-4)


def test_newcombe_stays_within_bounds() -> None:
    interval = newcombe_difference(0, 5, 5, 5)

    assert interval.low >= -1.0
    assert interval.high <= 1.0


def test_relative_lift_contains_estimate() -> None:
    interval = relative_lift(60, 400, 40, 400)

    assert interval is not None
    assert interval.estimate == pytest.approx(0.5)
    assert interval.low < 0.5 < interval.high
    assert interval.low > -1.0


def test_relative_lift_with_zero_counts_is_finite() -> None:
    interval = relative_lift(5, 50, 0, 50)

    assert interval is not None
    assert interval.high < float("inf")
    assert interval.low > -1.0


def test_relative_lift_without_trials_is_none() -> None:
    assert relative_lift(3, 10, 0, 0) is None


def test_counts_above_trials_rejected() -> None:
    with pytest.raises(ValueError, match="0 <= successes <= trials"):
        wilson_interval(5, 3)


def test_holdout_split_is_stable_and_sized() -> None:
    arms = [choose_arm("after-wedding", couple, holdout=0.2) for couple in range(5000)]

    assert arms == [choose_arm("after-wedding", couple, holdout=0.2) for couple in range(5000)]
    assert arms.count("holdout") / len(arms) == pytest.approx(0.2, abs=0.02)


def test_holdout_zero_and_one() -> None:
    assert {choose_arm("c", couple, holdout=0.0) for couple in range(200)} == {"treatment"}
    assert {choose_arm("c", couple, holdout=1.0) for couple in range(200)} == {"holdout"}
    assert 0.0 <= holdout_position("c", 1) < 1.0


def test_thompson_prefers_better_variant() -> None:
    rng = random.Random(7)
    stats = [
        VariantStats(name=BASE, conversions=10, failures=90),
        VariantStats(name="warm", conversions=30, failures=70),
    ]
    picks = [thompson_choice(stats, rng) for _ in range(500)]

    assert picks.count("warm") > 450


def test_thompson_explores_without_data() -> None:
    rng = random.Random(7)
    stats = [VariantStats(name=BASE, conversions=0, failures=0)]
    stats.append(VariantStats(name="warm", conversions=0, failures=0))
    picks = [thompson_choice(stats, rng) for _ in range(400)]

    assert 100 < picks.count("warm") < 300


def test_thompson_without_variants_is_base() -> None:
    assert thompson_choice([], random.Random(1)) == BASE
