"""Comparing a reviewer's display name with a couple's names.

Platforms give a display name only, written the way the reviewer chose:
"Anna & Ben", "Ben and Anna Smith", "A. and B. Smith", "Annie S." or
"The Smiths".  :func:`parse_people` turns such a name into one
:class:`Person` per partner, and :func:`name_similarity` scores it against
the couple's stored names from 0 to 1, ignoring accents, order and case,
and understanding initials and common nicknames.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Sequence
from itertools import permutations
from typing import Final, final

import msgspec

# Each group lists a given name first and the short forms people use for it.
# A name may sit in several groups ("Alex" is short for Alexander and Alexandra).
NICKNAME_GROUPS: Final[tuple[tuple[str, ...], ...]] = (
    ("alexander", "alex", "xander", "sasha", "sandy"),
    ("alexandra", "alex", "lexi", "sasha", "sandra", "sandy"),
    ("andrew", "andy", "drew"),
    ("anna", "annie", "ann", "anne", "ana"),
    ("anthony", "tony"),
    ("benjamin", "ben", "benny", "benji"),
    ("catherine", "cathy", "cat", "kate", "katie", "kathy", "katherine", "kathryn"),
    ("charles", "charlie", "chuck", "chas"),
    ("charlotte", "lottie", "charlie"),
    ("christopher", "chris", "kit", "topher"),
    ("christina", "chris", "tina", "christine", "kristina"),
    ("daniel", "dan", "danny"),
    ("david", "dave", "davey"),
    ("deborah", "debbie", "deb"),
    ("edward", "ed", "eddie", "ted", "ned"),
    ("elizabeth", "liz", "lizzie", "beth", "betty", "eliza", "libby", "elisabeth", "lisa"),
    ("eleanor", "ellie", "nell", "nora", "elle"),
    ("emily", "em", "emmy"),
    ("gabriel", "gabe"),
    ("gabrielle", "gabby", "gabi", "brie"),
    ("james", "jim", "jimmy", "jamie"),
    ("jennifer", "jen", "jenny", "jenn"),
    ("john", "johnny", "jack", "jon"),
    ("jonathan", "jon", "jonny", "nathan"),
    ("jonah", "jon"),
    ("joseph", "joe", "joey"),
    ("katharina", "katja", "kathi", "kate"),
    ("lawrence", "larry", "laurie"),
    ("margaret", "maggie", "meg", "peggy", "marge", "greta"),
    ("matthew", "matt", "matty"),
    ("michael", "mike", "mikey", "mick", "micha"),
    ("nicholas", "nick", "nicky", "nico", "klaus"),
    ("patricia", "pat", "patty", "trish", "tricia"),
    ("patrick", "pat", "paddy"),
    ("rebecca", "becky", "becca", "bex"),
    ("richard", "rick", "ricky", "dick", "rich"),
    ("robert", "rob", "robbie", "bob", "bobby", "bert"),
    ("samantha", "sam", "sammy"),
    ("samuel", "sam", "sammy"),
    ("stephen", "steve", "stevie", "steven", "stefan"),
    ("susan", "sue", "susie", "suzy"),
    ("theodore", "theo", "ted", "teddy"),
    ("thomas", "tom", "tommy"),
    ("victoria", "vicky", "tori", "vic"),
    ("william", "will", "bill", "billy", "liam", "willy"),
)
# Given-name score for each kind of agreement.  A nickname is almost as good
# as the name itself, and an initial agrees on the first letter only.
SAME_NAME: Final = 1.0
NICKNAME: Final = 0.9
PREFIX: Final = 0.75
INITIAL: Final = 0.6
# difflib ratio from which two spellings count as one name mistyped.
SPELLING_RATIO: Final = 0.8
# A person whose family name is unknown on either side scores at most this
# share of a full match, because a shared given name alone is weaker evidence.
GIVEN_ONLY_WEIGHT: Final = 0.85
GIVEN_WEIGHT: Final = 0.6
FAMILY_WEIGHT: Final = 0.4

# "und" and "et" too; the one-letter conjunctions of other languages would
# split initials such as "E. Smith".
_SEPARATORS = re.compile(r"\s*(?:&|\+|/|,|;|\band\b|\bund\b|\bet\b)\s*")
# Display names are short; more parts than this are not partners' names.
MAX_PEOPLE: Final = 4
# Only this many characters of a name are compared.  Cutting a longer one
# bounds the cost of a hostile or garbled name.
MAX_NAME_CHARS: Final = 200
# Everything but letters, the separators above and the . ' - inside names.
_NON_LETTERS = re.compile(r"[^a-z.\s'&+/,;-]+")


def _nickname_index() -> dict[str, frozenset[int]]:
    index: dict[str, set[int]] = {}
    for number, group in enumerate(NICKNAME_GROUPS):
        for name in group:
            index.setdefault(name, set()).add(number)
    return {name: frozenset(groups) for name, groups in index.items()}


_NICKNAMES: Final = _nickname_index()


@final
class Person(msgspec.Struct, frozen=True, kw_only=True):
    """One partner's name, normalised; either part may be unknown or an initial."""

    given_name: str = ""
    family_name: str = ""


def fold(text: str) -> str:
    """Return ``text`` lower-cased and without accents, keeping only letters and separators."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(char for char in decomposed if not unicodedata.combining(char))
    # Letters outside Latin that NFKD keeps whole.
    plain = plain.replace("ß", "ss").replace("ø", "o").replace("æ", "ae").replace("ł", "l")
    return " ".join(_NON_LETTERS.sub(" ", plain).split())


def parse_people(display_name: str) -> list[Person]:
    """Split a display name into one Person per partner.

    A family name written once after the last partner belongs to every
    partner written with a given name only ("Ben and Anna Smith").  "The
    Smiths" gives one person with only a family name.
    """
    text = fold(display_name[:MAX_NAME_CHARS])
    if not text:
        return []

    family_only = re.fullmatch(r"the ([a-z'-]+?)s?", text)
    if family_only:
        return [Person(family_name=family_only.group(1))]

    parts = [part for part in _SEPARATORS.split(text) if part.strip(" .")][:MAX_PEOPLE]
    people = [_person(part) for part in parts]
    shared_family = people[-1].family_name if people and len(parts) > 1 else ""
    return [
        Person(given_name=person.given_name, family_name=shared_family)
        if not person.family_name and shared_family
        else person
        for person in people
    ]


def _person(part: str) -> Person:
    tokens = [token.strip(".'-") for token in part.replace(".", ". ").split()]
    tokens = [token for token in tokens if token]
    if not tokens:
        return Person()
    if len(tokens) == 1:
        return Person(given_name=tokens[0])
    # Middle names and particles ("van", "de") are dropped: reviewers rarely write them.
    return Person(given_name=tokens[0], family_name=tokens[-1])


def couple_people(names: Sequence[str]) -> list[Person]:
    """Return one Person per stored name, sharing a family name written once."""
    return parse_people(" & ".join(names))


def given_similarity(left: str, right: str) -> float:
    """Score two given names: same, nickname, initial, prefix or near spelling."""
    if not left or not right:
        return 0.0
    if left == right:
        return SAME_NAME
    if len(left) == 1 or len(right) == 1:
        return INITIAL if left[0] == right[0] else 0.0
    if _NICKNAMES.get(left, frozenset()) & _NICKNAMES.get(right, frozenset()):
        return NICKNAME
    shorter, longer = sorted((left, right), key=len)
    if len(shorter) >= 3 and longer.startswith(shorter):
        return PREFIX
    ratio = difflib.SequenceMatcher(None, left, right).ratio()
    return PREFIX * ratio if ratio >= SPELLING_RATIO else 0.0


def family_similarity(left: str, right: str) -> float | None:
    """Score two family names, or None when either is unknown."""
    if not left or not right:
        return None
    if left == right:
        return SAME_NAME
    if len(left) == 1 or len(right) == 1:
        return INITIAL if left[0] == right[0] else 0.0
    ratio = difflib.SequenceMatcher(None, left, right).ratio()
    return ratio if ratio >= SPELLING_RATIO else 0.0


def person_similarity(reviewer: Person, partner: Person) -> float:
    """Score one person of the display name against one partner of the couple."""
    family_score = family_similarity(reviewer.family_name, partner.family_name)
    if not reviewer.given_name:
        # "The Smiths": the family name is all there is.
        return (family_score or 0.0) * GIVEN_ONLY_WEIGHT
    given_score = given_similarity(reviewer.given_name, partner.given_name)
    if family_score is None:
        return given_score * GIVEN_ONLY_WEIGHT
    return GIVEN_WEIGHT * given_score + FAMILY_WEIGHT * family_score


def name_similarity(display_name: str, couple_names: Sequence[str]) -> float:
    """Score a reviewer's display name against a couple's names, from 0 to 1.

    The partners may appear in any order.  A display name with one person
    (one partner wrote the review) scores that person against the closer
    partner.  A display name with more people than the couple has partners
    scores each extra person as a mismatch.
    """
    reviewers = parse_people(display_name)
    partners = couple_people(couple_names)
    if not reviewers or not partners:
        return 0.0

    if len(reviewers) == 1:
        return round(max(person_similarity(reviewers[0], partner) for partner in partners), 3)

    best = 0.0
    slots = max(len(reviewers), len(partners))
    padded = [*partners, *([Person()] * (slots - len(partners)))]
    for order in permutations(padded, len(reviewers)):
        total = sum(
            person_similarity(reviewer, partner)
            for reviewer, partner in zip(reviewers, order, strict=True)
        )
        best = max(best, total / len(reviewers))
    return round(best, 3)
