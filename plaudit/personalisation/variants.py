"""Template variants: the holdout group and Thompson sampling on review conversion.

Every couple is placed in the holdout group or the treatment group once per
campaign, by a hash of the campaign and the couple id, so the choice is
stable across restarts and steps without storing a random state.  Holdout
couples always get the step's own template (variant ``base``) at its due
time; they are the baseline that lift is measured against.

Treatment couples get the variant with the highest draw from each variant's
Beta(1 + conversions, 1 + non-conversions) posterior (Thompson sampling), so
better wordings are sent more often while worse ones are still tried now and
then.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from typing import Final, Literal, final

import msgspec

BASE: Final = "base"
Arm = Literal["holdout", "treatment"]


@final
class VariantStats(msgspec.Struct, frozen=True, kw_only=True):
    """Settled outcomes of one variant of a step in the treatment group."""

    name: str
    conversions: int
    failures: int


def holdout_position(campaign: str, couple_id: int) -> float:
    """Return a stable number in [0, 1) for the couple within the campaign."""
    digest = hashlib.sha256(f"{campaign}\x00{couple_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def choose_arm(campaign: str, couple_id: int, *, holdout: float) -> Arm:
    """Return ``holdout`` for the first ``holdout`` share of couples, else ``treatment``."""
    return "holdout" if holdout_position(campaign, couple_id) < holdout else "treatment"


def thompson_choice(stats: Sequence[VariantStats], rng: random.Random) -> str:
    """Return the variant whose Beta posterior draw is highest; ``base`` when there is none."""
    if not stats:
        return BASE
    draws = [
        (rng.betavariate(1 + entry.conversions, 1 + entry.failures), entry.name) for entry in stats
    ]
    return max(draws)[1]


def variant_names(variants: Sequence[str]) -> list[str]:
    """Return ``base`` followed by the configured variant names, in config order."""
    return [BASE, *variants]
