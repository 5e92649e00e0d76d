"""Checks an AI-drafted opening line must pass before it reaches a couple.

A draft is rejected when it offers anything in return for a review, because
incentives break the platforms' rules.  It is rejected when it steers
sentiment, such as asking for stars or addressing only happy couples, which
is review gating.  It is also rejected when it states a name, date, number
or place that is not in the couple's record or the vendor's notes.
Rejection is the safe side: the step's template is sent instead.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Final, final

import msgspec

_INCENTIVE: Final = re.compile(
    r"\b(discounts?|coupons?|vouchers?|gift\s*cards?|free|freebies?|prizes?|raffles?|"
    r"giveaways?|rewards?|refunds?|rebates?|cash|bonus|credit|in\s+exchange|in\s+return|"
    r"enter\s+to\s+win|chance\s+to\s+win|win\s+an?|off\s+your\s+next)\b|\d+\s*%",
    re.IGNORECASE,
)
_STEERING: Final = re.compile(
    r"\b([1-5]|one|two|three|four|five)[\s-]*stars?\b|\bstar\s+rating\b|"
    r"\bif\s+you\s+(loved|enjoyed|liked|were\s+(happy|pleased|satisfied|delighted|thrilled))\b|"
    r"\bif\s+(everything|all)\s+went\s+well\b|\bonly\s+if\b|"
    r"\b(happy|satisfied|delighted)\s+(couples|clients|customers)\b|"
    r"\b(positive|good|great|glowing|rave|favou?rable|excellent|top)\s+reviews?\b",
    re.IGNORECASE,
)
_LINK: Final = re.compile(r"https?://|www\.|\S+@\S+\.\S+", re.IGNORECASE)
_TEMPLATE_SYNTAX: Final = re.compile(r"\{\{|\{%|%\}|\}\}")
_WORD: Final = re.compile(r"[^\W\d_][\w'\u2019-]*")
_NUMBER: Final = re.compile(r"\d+")
_MONTHS: Final = frozenset(
    date(2000, month, 1).strftime("%B").lower() for month in range(1, 13)
) | frozenset(date(2000, month, 1).strftime("%b").lower() for month in range(1, 13))
_WEEKDAYS: Final = frozenset(
    ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
)
_SENTENCE_END: Final = re.compile(r"[.!?:;]\s*$")
# Words English capitalises anywhere in a sentence that name nothing.
_ALWAYS_CAPITALISED: Final = frozenset(("i", "i'm", "i've", "i'd", "i'll"))


@final
class DraftFacts(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a draft may mention: the couple's record and the vendor's notes."""

    names: list[str]
    wedding_date: str
    venue: str
    vendor: str
    found_on: str
    notes: str


def check_draft(text: str, facts: DraftFacts, *, max_chars: int) -> str | None:
    """Return why ``text`` is rejected, or None when it may be sent."""
    line = " ".join(text.split())
    if not line:
        return "the draft is empty"
    if len(line) > max_chars:
        return f"the draft has {len(line)} characters, more than {max_chars}"
    if _LINK.search(line) or _TEMPLATE_SYNTAX.search(line):
        return "the draft contains a link, an address or template syntax"

    incentive = _INCENTIVE.search(line)
    if incentive:
        return f"the draft offers an incentive ({incentive.group(0)!r})"
    steering = _STEERING.search(line)
    if steering:
        return f"the draft steers sentiment ({steering.group(0)!r})"
    return _invented_fact(line, facts)


def _invented_fact(line: str, facts: DraftFacts) -> str | None:
    known_words, known_numbers = _known(facts)
    for number in _NUMBER.findall(line):
        if number.lstrip("0") not in known_numbers:
            return f"the draft states the number {number}, which is not in the couple's record"

    previous = ""
    for match in _WORD.finditer(line):
        word = match.group(0)
        lowered = _normalise(word)
        starts_sentence = not previous or bool(_SENTENCE_END.search(line[: match.start()]))
        previous = word
        dated = lowered in _MONTHS or lowered in _WEEKDAYS
        proper = word[0].isupper() and not starts_sentence
        if (dated or proper) and lowered not in known_words | _ALWAYS_CAPITALISED:
            return f"the draft mentions {word!r}, which is not in the couple's record or notes"
    return None


def _known(facts: DraftFacts) -> tuple[set[str], set[str]]:
    texts = [*facts.names, facts.venue, facts.vendor, facts.found_on, facts.notes]
    try:
        day = date.fromisoformat(facts.wedding_date)
    except ValueError:
        day = None
    if day is not None:
        texts.append(f"{day:%B %b %A} {day.day} {day.year} {day.month}")
    words = {_normalise(word) for text in texts for word in _WORD.findall(text)}
    numbers = {number.lstrip("0") for text in texts for number in _NUMBER.findall(text)}
    return words, numbers


def _normalise(word: str) -> str:
    """Return ``word`` lower-cased without quotes, dashes or a possessive "'s"."""
    plain = word.replace("\u2019", "'").lower().strip("'-")
    return plain.removesuffix("'s")
