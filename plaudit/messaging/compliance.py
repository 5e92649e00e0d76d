"""Compliance checks of campaign templates, run by ``check-config`` and on every reload.

Many review platforms forbid offering incentives for reviews, and the US
FTC's rule on consumer reviews (16 CFR 465.4, 2024) forbids incentives
conditioned on a review's sentiment.  So a template may not offer any
incentive within :data:`NEARBY_WORDS` words of "review" (reviews,
reviewing...).  The incentives are in :data:`INCENTIVE_PHRASES`: discount,
gift card or certificate, free, coupon, voucher, in exchange, reward, prize,
giveaway, raffle, sweepstakes, cash back, "% off" and "money off".  "Feel
free" and hyphenated words such as "hassle-free" are not incentives and
pass.  Yelp forbids asking for reviews, so a template may not mention Yelp
at all.

The check reads the template text with Liquid tags removed, so a variable
name such as ``review_links`` does not count as the word "review".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

from plaudit.config.locate import KeyPath
from plaudit.config.model import Config

# Words on either side of "review" within which incentive wording is rejected.
NEARBY_WORDS: Final = 15
INCENTIVE_PHRASES: Final = (
    "discount",
    "gift card",
    "gift certificate",
    "free",
    "coupon",
    "voucher",
    "in exchange",
    "reward",
    "prize",
    "giveaway",
    "raffle",
    "sweepstake",
    "cash back",
    "% off",
    "money off",
)
_LIQUID = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_HTML_TAG = re.compile(r"<[^>]*>")
_WORD = re.compile(r"[\w%'-]+")
_FEEL_FREE = re.compile(r"\bfeel\s+free\b", re.IGNORECASE)
_YELP = re.compile(r"\byelp\b", re.IGNORECASE)


def incentive_wording(source: str) -> str | None:
    """Return the first incentive phrase near "review" in ``source``, or None."""
    text = _HTML_TAG.sub(" ", _LIQUID.sub(" ", source))
    text = _FEEL_FREE.sub(" ", text).lower()
    words = _WORD.findall(text)
    reviews = [index for index, word in enumerate(words) if word.startswith("review")]
    if not reviews:
        return None
    for phrase in INCENTIVE_PHRASES:
        length = len(phrase.split())
        for start in range(len(words) - length + 1):
            if not _matches(words[start : start + length], phrase):
                continue
            if any(abs(start - index) <= NEARBY_WORDS for index in reviews):
                return phrase
    return None


def _matches(words: list[str], phrase: str) -> bool:
    if phrase.startswith("%"):
        # "20% off": the number and the sign are one word.
        return words[0].endswith("%") and words[1] == phrase.split()[1]
    parts = phrase.split()
    # A word that starts with the phrase's last word covers plurals ("vouchers").
    return words[:-1] == parts[:-1] and (
        words[-1] == parts[-1] or (words[-1].startswith(parts[-1]) and "-" not in words[-1])
    )


def check_compliance(config: Config) -> Iterator[tuple[KeyPath, str]]:
    """Yield each template that offers an incentive for a review or mentions Yelp."""
    for index, campaign in enumerate(config.campaigns):
        for number, step in enumerate(campaign.steps):
            where: KeyPath = ("campaigns", index, "steps", number)
            parts: list[tuple[KeyPath, str]] = [
                (("subject",), step.subject),
                (("text",), step.text),
                (("html",), step.html),
            ]
            for variant_index, variant in enumerate(step.variants):
                at: KeyPath = ("variants", variant_index)
                parts += [
                    ((*at, "subject"), variant.subject),
                    ((*at, "text"), variant.text),
                    ((*at, "html"), variant.html),
                ]
            for part, source in parts:
                yield from _check_part((*where, *part), source)


def _check_part(path: KeyPath, source: str) -> Iterator[tuple[KeyPath, str]]:
    if not source:
        return
    phrase = incentive_wording(source)
    if phrase is not None:
        yield (
            path,
            f"offers an incentive ({phrase!r}) near the word review; review platforms forbid "
            "incentives for reviews, so remove the offer",
        )
    if _YELP.search(_LIQUID.sub(" ", source)):
        yield path, "mentions Yelp; Yelp forbids asking for reviews, so remove it"
