"""Simulate personalisation against a static baseline on a synthetic population.

Run from the repository root:

    python bench/personalisation.py [--json] [--couples N] [--seed S] [--seconds N]

Each synthetic couple has hidden preferences: the hour of day it acts, how
it responds to each wording, and how it responds to e-mail and to SMS
(channel).  The step is ``channel = "auto"`` with channels e-mail then SMS.
Half the couples (split by the notifier's own holdout function) get the
static baseline: the step's own template by e-mail at its due time, 10:00
local.  The other half go through the functions the notifier calls:
:func:`fit_vendor`, :func:`fit_couple` and :func:`choose_send_time` for the
time, :func:`thompson_choice` for the wording and :func:`choose_channel` for
the channel, learning only from outcomes whose conversion window has ended.
The seeds are printed, so a run can be repeated exactly.  With --json the
last line is one JSON object with the figures.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from plaudit.personalisation.channel_choice import choose_channel  # noqa: E402
from plaudit.personalisation.sendtime import (  # noqa: E402
    HOUR,
    choose_send_time,
    fit_couple,
    fit_vendor,
    hour_of_week,
    is_allowed,
)
from plaudit.personalisation.stats import relative_lift  # noqa: E402
from plaudit.personalisation.variants import (  # noqa: E402
    BASE,
    VariantStats,
    choose_arm,
    thompson_choice,
)

TARGET_LIFT = 0.20
TARGET_ORACLE_SHARE = 0.8
CAMPAIGN = "after-wedding"
ZONES = ("America/Chicago", "America/New_York", "America/Los_Angeles", "Europe/London")
# Defaults of [personalisation] and [[campaigns.steps]] in the configuration.
RECIPIENT_WEIGHT = 4.0
VENDOR_WEIGHT = 24.0
WINDOW_HOURS = 24.0
CONVERSION_DAYS = 14
# Hidden population: the hour couples act (share, hour of day), the effect of
# each wording, and channels.  These are the simulation's assumptions, not
# measured facts about couples.
HABITS = ((0.25, 8.5), (0.20, 12.5), (0.15, 16.0), (0.40, 19.5))
HABIT_SPREAD_HOURS = 1.0
WORDING = {BASE: 1.0, "warm": 1.25, "short": 0.9}
BASE_RATE = 0.30
# The step's channels, in config order: the holdout group gets the first.
CHANNELS = ("email", "sms")
# Share of couples who mostly ignore e-mail (they would reply to a text), and
# how much less they convert by e-mail.  The others convert a little less by
# SMS than by e-mail.  Only couples who gave SMS consent and a phone number
# can be texted.
EMAIL_AVERSE_SHARE = 0.3
EMAIL_AVERSE_FACTOR = 0.6
SMS_FACTOR = 0.9
SMS_CONSENT_SHARE = 0.6
# How many pre-wedding clicks a couple has (booking, contract, timeline
# e-mails): Poisson with this mean.
HISTORY_MEAN = 3.0
# Couples arriving per simulated week; outcomes settle CONVERSION_DAYS later.
WEEKLY_COUPLES = 400


@dataclass(frozen=True)
class Couple:
    number: int
    zone: zoneinfo.ZoneInfo
    hour: float
    # Conversion factor per channel; SMS is absent without consent.
    channel_factors: dict[str, float]
    history: tuple[float, ...]
    due_at: float


def time_factor(moment: float, couple: Couple) -> float:
    """Return how much the send hour helps: 1 at the couple's habit, 0.6 far from it."""
    local = datetime.fromtimestamp(moment, couple.zone)
    hour = local.hour + local.minute / 60
    distance = min(abs(hour - couple.hour), 24 - abs(hour - couple.hour))
    return 0.6 + 0.4 * math.exp(-(distance**2) / (2 * 1.5**2))


def conversion_probability(
    moment: float, variant: str, couple: Couple, channel: str = CHANNELS[0]
) -> float:
    factor = couple.channel_factors.get(channel, 0.0)
    return BASE_RATE * WORDING[variant] * time_factor(moment, couple) * factor


def make_population(count: int, rng: random.Random, start: datetime) -> list[Couple]:
    couples = []
    for number in range(count):
        zone = zoneinfo.ZoneInfo(rng.choice(ZONES))
        habit = rng.choices([hour for _share, hour in HABITS], [s for s, _h in HABITS])[0]
        hour = (habit + rng.gauss(0, 0.5)) % 24
        week = number // WEEKLY_COUPLES
        day = (start + timedelta(days=7 * week + rng.randrange(7))).date()
        due_at = datetime.combine(day, datetime.min.time().replace(hour=10), tzinfo=zone)
        history = tuple(
            _click_time(due_at.timestamp(), hour, zone, rng) for _ in range(_poisson(rng))
        )
        averse = rng.random() < EMAIL_AVERSE_SHARE
        factors = {"email": EMAIL_AVERSE_FACTOR if averse else 1.0}
        if rng.random() < SMS_CONSENT_SHARE:
            factors["sms"] = 1.0 if averse else SMS_FACTOR
        couples.append(
            Couple(
                number=number,
                zone=zone,
                hour=hour,
                channel_factors=factors,
                history=history,
                due_at=due_at.timestamp(),
            )
        )
    return couples


def _poisson(rng: random.Random) -> int:
    # Knuth's method; the mean is small.
    limit = math.exp(-HISTORY_MEAN)
    count, product = 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _click_time(due_at: float, hour: float, zone: zoneinfo.ZoneInfo, rng: random.Random) -> float:
    days_before = rng.randint(20, 200)
    local_hour = (hour + rng.gauss(0, HABIT_SPREAD_HOURS)) % 24
    day = datetime.fromtimestamp(due_at - days_before * 86400, zone).date()
    moment = datetime.combine(day, datetime.min.time(), tzinfo=zone) + timedelta(hours=local_hour)
    return moment.timestamp()


def oracle_time(couple: Couple) -> float:
    """Return the allowed whole hour in the window that the couple's habit favours most."""
    candidates = [
        couple.due_at + offset * HOUR
        for offset in range(int(WINDOW_HOURS) + 1)
        if is_allowed(couple.due_at + offset * HOUR, couple.zone)
    ]
    return max(candidates, key=lambda moment: (time_factor(moment, couple), -moment))


@dataclass
class Totals:
    couples: int = 0
    conversions: int = 0


def simulate(
    couples: list[Couple], *, policy_seed: int, outcome_seed: int, deadline: float
) -> dict[str, Any]:
    policy_rng = random.Random(policy_seed)
    outcome_rng = random.Random(outcome_seed)
    variants = list(WORDING)
    settled: dict[str, list[int]] = {name: [0, 0] for name in variants}
    channel_settled: dict[str, list[int]] = {name: [0, 0] for name in CHANNELS}
    # (settles at, variant, channel, converted) for treatment sends still in their window.
    waiting: list[tuple[float, str, str, bool]] = []
    vendor_buckets: list[int] = []
    groups = {"holdout": Totals(), "treatment": Totals()}
    expected = {
        "baseline": 0.0,
        "chosen": 0.0,
        "oracle": 0.0,
        "first_channel": 0.0,
        "learned_channel": 0.0,
    }
    picks = dict.fromkeys(variants, 0)
    channel_picks = dict.fromkeys(CHANNELS, 0)
    simulated = 0

    for week_start in range(0, len(couples), WEEKLY_COUPLES):
        if time.perf_counter() > deadline:
            break
        cohort = couples[week_start : week_start + WEEKLY_COUPLES]
        now = min(couple.due_at for couple in cohort)
        _settle(waiting, settled, channel_settled, now)
        vendor = fit_vendor(vendor_buckets, vendor_weight=VENDOR_WEIGHT)
        stats = [
            VariantStats(name=n, conversions=settled[n][0], failures=settled[n][1])
            for n in variants
        ]
        channel_stats = [
            VariantStats(name=n, conversions=counts[0], failures=counts[1])
            for n, counts in channel_settled.items()
        ]

        for couple in cohort:
            arm = choose_arm(CAMPAIGN, couple.number, holdout=0.5)
            channel = choose_channel(
                CHANNELS, couple.channel_factors, arm=arm, stats=channel_stats, rng=policy_rng
            ).channel
            if arm == "holdout":
                send_at, variant = couple.due_at, BASE
            else:
                model = fit_couple(
                    [hour_of_week(moment, couple.zone) for moment in couple.history],
                    vendor,
                    recipient_weight=RECIPIENT_WEIGHT,
                )
                choice = choose_send_time(
                    model,
                    due_at=couple.due_at,
                    window_hours=WINDOW_HOURS,
                    now=couple.due_at,
                    zone=couple.zone,
                )
                send_at = choice.send_at
                variant = thompson_choice(stats, policy_rng)
                picks[variant] += 1
                base_probability = conversion_probability(couple.due_at, BASE, couple)
                expected["baseline"] += base_probability
                expected["chosen"] += conversion_probability(send_at, BASE, couple)
                expected["oracle"] += conversion_probability(oracle_time(couple), BASE, couple)
                channel_picks[channel] += 1
                expected["first_channel"] += conversion_probability(send_at, variant, couple)
                expected["learned_channel"] += conversion_probability(
                    send_at, variant, couple, channel
                )

            probability = conversion_probability(send_at, variant, couple, channel)
            converted = outcome_rng.random() < probability
            groups[arm].couples += 1
            groups[arm].conversions += converted
            if arm == "treatment":
                waiting.append((send_at + CONVERSION_DAYS * 86400, variant, channel, converted))
            # Every couple's pre-wedding clicks reach the vendor level.
            vendor_buckets.extend(hour_of_week(moment, couple.zone) for moment in couple.history)
            simulated += 1

    return {
        "groups": groups,
        "expected": expected,
        "picks": picks,
        "channel_picks": channel_picks,
        "simulated": simulated,
    }


def _settle(
    waiting: list[tuple[float, str, str, bool]],
    settled: dict[str, list[int]],
    channel_settled: dict[str, list[int]],
    now: float,
) -> None:
    still = []
    for entry in waiting:
        settles_at, variant, channel, converted = entry
        if settles_at <= now:
            settled[variant][0 if converted else 1] += 1
            channel_settled[channel][0 if converted else 1] += 1
        else:
            still.append(entry)
    waiting[:] = still


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="end the output with one JSON line")
    parser.add_argument(
        "--couples",
        type=int,
        default=40_000,
        help="synthetic couples, half of them baseline (default 40000)",
    )
    parser.add_argument("--seed", type=int, default=20261204, help="base seed (default 20261204)")
    parser.add_argument(
        "--seconds", type=float, default=120.0, help="stop after this many seconds (default 120)"
    )
    return parser.parse_args()


def main() -> None:
    arguments = parse_arguments()
    if arguments.couples < 2 * WEEKLY_COUPLES:
        raise SystemExit(
            f"--couples must be at least {2 * WEEKLY_COUPLES}, got {arguments.couples}"
        )
    seeds = {
        "population": arguments.seed,
        "policy": arguments.seed + 1,
        "outcomes": arguments.seed + 2,
    }
    print(
        f"seeds: population {seeds['population']}, policy {seeds['policy']}, "
        f"outcomes {seeds['outcomes']}"
    )

    began = time.perf_counter()
    population = make_population(
        arguments.couples, random.Random(seeds["population"]), datetime(2026, 1, 5)
    )
    result = simulate(
        population,
        policy_seed=seeds["policy"],
        outcome_seed=seeds["outcomes"],
        deadline=began + arguments.seconds,
    )
    elapsed = time.perf_counter() - began

    holdout = result["groups"]["holdout"]
    treatment = result["groups"]["treatment"]
    lift = relative_lift(
        treatment.conversions, treatment.couples, holdout.conversions, holdout.couples
    )
    expected = result["expected"]
    oracle_gain = expected["oracle"] - expected["baseline"]
    share = (expected["chosen"] - expected["baseline"]) / oracle_gain if oracle_gain > 0 else None
    first = expected["first_channel"]
    channel_lift = expected["learned_channel"] / first - 1 if first > 0 else None

    figures: dict[str, Any] = {
        "relative_lift": None if lift is None else round(lift.estimate, 4),
        "lift_ci_low": None if lift is None else round(lift.low, 4),
        "lift_ci_high": None if lift is None else round(lift.high, 4),
        "send_time_oracle_share": None if share is None else round(share, 4),
        "channel_lift": None if channel_lift is None else round(channel_lift, 4),
        "seeds": seeds,
    }
    rows = [
        ("relative_lift", figures["relative_lift"], f">= {TARGET_LIFT}"),
        ("lift_ci_low", figures["lift_ci_low"], "95 % interval"),
        ("lift_ci_high", figures["lift_ci_high"], "95 % interval"),
        ("send_time_oracle_share", figures["send_time_oracle_share"], f">= {TARGET_ORACLE_SHARE}"),
        ("channel_lift", figures["channel_lift"], "over the first channel"),
    ]
    print(f"{'figure':<24} {'value':>10}  target")
    for name, value, target in rows:
        print(f"{name:<24} {_text(value):>10}  {target}")
    print(
        f"baseline {holdout.conversions}/{holdout.couples}, learning {treatment.conversions}/"
        f"{treatment.couples}; wording picks {result['picks']}; "
        f"channel picks {result['channel_picks']}; "
        f"{result['simulated']} couples in {elapsed:.1f} s"
    )
    if arguments.json:
        details = {
            "couples": result["simulated"],
            "baseline": [holdout.conversions, holdout.couples],
            "learning": [treatment.conversions, treatment.couples],
            "wording_picks": result["picks"],
            "channel_picks": result["channel_picks"],
            # Expected conversions of the learning group with the base wording:
            # the gain from send time alone, chosen and at best.
            "send_time_gain": round(expected["chosen"] / expected["baseline"] - 1, 4),
            "oracle_send_time_gain": round(expected["oracle"] / expected["baseline"] - 1, 4),
            "seconds": round(elapsed, 1),
        }
        print(json.dumps({**figures, "details": details}))


def _text(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    main()
