"""Measured lift: treatment couples' review conversion against the holdout group.

The unit is a couple within a campaign: it converted when any of its sent
requests converted, and it counts once it converted or all of its sent
requests are settled.  Couples still inside a conversion window are
reported as pending and left out of the rates, so the lift never counts a
review that has not had time to arrive as a failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, final

import msgspec

from plaudit.journal.tx import Tx
from plaudit.personalisation.channel_choice import chosen_channels
from plaudit.personalisation.stats import Interval, newcombe_difference, relative_lift
from plaudit.personalisation.store import (
    DAY,
    DEFAULT_CONVERSION_DAYS,
    review_times,
    sent_assignments,
    settle_outcomes,
    settled_outcome,
)
from plaudit.reviews.store import SupportsExecute

# Fewer settled couples per group than this give an interval too wide to act on.
MIN_COUPLES: Final = 30


@final
class GroupOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """Settled couples of one group and how many of them converted."""

    couples: int
    conversions: int
    rate: float | None


@final
class VariantOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """Sends and settled outcomes of one variant of one step in one group."""

    campaign: str
    step: int
    arm: str
    variant: str
    sent: int
    converted: int
    not_converted: int


@final
class ChannelOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """Sends and settled outcomes of one chosen channel, over steps with channel auto."""

    arm: str
    channel: str
    sent: int
    converted: int
    not_converted: int


@final
class LiftReport(msgspec.Struct, frozen=True, kw_only=True):
    """Treatment against holdout, with 95 % intervals; ``note`` explains a missing lift."""

    campaign: str | None
    holdout: GroupOutcome
    treatment: GroupOutcome
    pending_couples: int
    # rate(treatment) / rate(holdout) - 1, Katz log interval.
    relative_lift: Interval | None
    # rate(treatment) - rate(holdout), Newcombe hybrid score interval.
    absolute_lift: Interval | None
    variants: list[VariantOutcome]
    note: str
    channels: list[ChannelOutcome] = msgspec.field(default_factory=list)


def measure_lift(
    tx: Tx, *, campaign: str | None = None, conversion_days: Mapping[str, int] | None = None
) -> LiftReport:
    """Settle what can be settled, then return the lift of one campaign or all of them.

    ``conversion_days`` maps campaign names to their conversion window.
    Campaigns missing from it use ``DEFAULT_CONVERSION_DAYS``.
    """
    days = conversion_days or {}
    settle_outcomes(tx, now=tx.now, conversion_days=days)
    return read_lift(tx, now=tx.now, campaign=campaign, conversion_days=days)


def read_lift(
    source: SupportsExecute,
    *,
    now: float,
    campaign: str | None = None,
    conversion_days: Mapping[str, int] | None = None,
) -> LiftReport:
    """Return the lift without writing: pending outcomes are settled in memory only.

    ``source`` is a read-only sqlite3 connection or a journal transaction, as
    ``plaudit report`` uses.  A journal without the assignments table (not yet
    migrated by a daemon) gives an empty report.
    """
    if not _has_assignments(source):
        return _report(campaign, {}, [], pending=0)

    days = conversion_days or {}
    rows = sent_assignments(source, campaign)
    reviews = review_times(source, sorted({int(row[0]) for row in rows}))
    # (couple, campaign) -> [arm, converted, all settled]
    couples: dict[tuple[int, str], list[Any]] = {}
    variants: dict[tuple[str, int, str, str], list[int]] = {}
    chosen = chosen_channels(source, campaign)
    channels: dict[tuple[str, str], list[int]] = {}
    for couple_id, name, step, arm, variant, sent_at, stored in rows:
        outcome = stored
        if outcome == "pending":
            window = days.get(name, DEFAULT_CONVERSION_DAYS) * DAY
            outcome, _ = settled_outcome(
                sent_at, reviews.get(couple_id, []), window=window, now=now
            )
        entry = couples.setdefault((couple_id, name), [arm, False, True])
        entry[1] = entry[1] or outcome == "converted"
        entry[2] = entry[2] and outcome != "pending"
        counts = variants.setdefault((name, step, arm, variant), [0, 0, 0])
        counts[0] += 1
        counts[1] += outcome == "converted"
        counts[2] += outcome == "not_converted"
        channel = chosen.get((couple_id, name, step))
        if channel is not None:
            by_channel = channels.setdefault((arm, channel), [0, 0, 0])
            by_channel[0] += 1
            by_channel[1] += outcome == "converted"
            by_channel[2] += outcome == "not_converted"

    groups = {"holdout": [0, 0], "treatment": [0, 0]}
    pending = 0
    for arm, converted, settled in couples.values():
        if not (converted or settled):
            pending += 1
            continue
        groups[arm][0] += 1
        groups[arm][1] += int(converted)
    outcomes = [
        VariantOutcome(
            campaign=name,
            # Stored from 0, reported from 1 like every step shown to people.
            step=step + 1,
            arm=arm,
            variant=variant,
            sent=sent,
            converted=converted,
            not_converted=not_converted,
        )
        for (name, step, arm, variant), (sent, converted, not_converted) in sorted(variants.items())
    ]
    channel_outcomes = [
        ChannelOutcome(
            arm=arm, channel=channel, sent=sent, converted=converted, not_converted=not_converted
        )
        for (arm, channel), (sent, converted, not_converted) in sorted(channels.items())
    ]
    report = _report(campaign, groups, outcomes, pending=pending)
    return msgspec.structs.replace(report, channels=channel_outcomes)


def _report(
    campaign: str | None,
    groups: Mapping[str, list[int]],
    variants: list[VariantOutcome],
    *,
    pending: int,
) -> LiftReport:
    holdout = _group(*groups.get("holdout", [0, 0]))
    treatment = _group(*groups.get("treatment", [0, 0]))
    relative = absolute = None
    if holdout.couples and treatment.couples:
        relative = relative_lift(
            treatment.conversions, treatment.couples, holdout.conversions, holdout.couples
        )
        absolute = newcombe_difference(
            treatment.conversions, treatment.couples, holdout.conversions, holdout.couples
        )
    return LiftReport(
        campaign=campaign,
        holdout=holdout,
        treatment=treatment,
        pending_couples=pending,
        relative_lift=relative,
        absolute_lift=absolute,
        variants=variants,
        note=_note(holdout, treatment),
    )


def _has_assignments(source: SupportsExecute) -> bool:
    row = source.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'personalisation_assignments'",
        (),
    ).fetchone()
    return row is not None


def _group(couples: int, conversions: int) -> GroupOutcome:
    rate = conversions / couples if couples else None
    return GroupOutcome(couples=couples, conversions=conversions, rate=rate)


def _note(holdout: GroupOutcome, treatment: GroupOutcome) -> str:
    if holdout.couples == 0:
        return (
            "no settled holdout couples, so lift cannot be measured; set "
            "[campaigns.personalisation] holdout above 0 and wait for conversion windows to end"
        )
    if treatment.couples == 0:
        return "no settled treatment couples yet"
    if min(holdout.couples, treatment.couples) < MIN_COUPLES:
        return f"fewer than {MIN_COUPLES} settled couples in a group; the interval is wide"
    if holdout.rate == 0:
        return "no holdout couple converted; the relative lift uses a 0.5 correction"
    return ""
