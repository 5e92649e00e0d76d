"""Reviewer names, review texts and vendor replies for the sandbox's fake world.

Texts are composed from short phrase lists with a seeded ``random.Random``,
so one seed always yields the same world.
"""

from __future__ import annotations

import random

FIRST_NAMES = (
    "Amara",
    "Ben",
    "Carys",
    "Dev",
    "Elena",
    "Farid",
    "Greta",
    "Hugo",
    "Imogen",
    "Jonah",
    "Keira",
    "Luca",
    "Mei",
    "Niall",
    "Oona",
    "Pablo",
    "Quinn",
    "Rosa",
    "Sanjay",
    "Tess",
    "Uma",
    "Victor",
    "Wren",
    "Yusuf",
    "Zara",
    "Priya",
    "Tomasz",
    "Ingrid",
    "Kofi",
    "Leah",
)
LAST_NAMES = (
    "Abbott",
    "Baptiste",
    "Chen",
    "Delacroix",
    "Eriksen",
    "Fitzgerald",
    "Gallo",
    "Haddad",
    "Iwu",
    "Jansen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Quintero",
    "Rahman",
    "Sato",
    "Thorne",
    "Ueda",
    "Varga",
    "Whitlock",
    "Yilmaz",
    "Zhou",
)
VENUES = (
    "the old mill",
    "a vineyard outside town",
    "the botanical gardens",
    "my grandparents' farm",
    "a lakeside lodge",
    "the city hall steps",
    "a converted barn",
    "the harbour hotel",
    "a small chapel by the sea",
    "the rooftop terrace downtown",
)
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

_OPENINGS_GOOD = (
    "We booked Willow & Vine for our wedding at {venue} and could not be happier.",
    "Maren photographed our {month} wedding at {venue}.",
    "Our wedding at {venue} was a blur, but the photos brought every moment back.",
    "We found Willow & Vine through a friend and they were the best decision we made.",
    "From the engagement shoot to the last dance, the team was wonderful.",
)
_DETAILS_GOOD = (
    "They kept the timeline on track without ever rushing us.",
    "Our families still talk about how relaxed the group photos felt.",
    "The sneak peek arrived two days after the wedding.",
    "Every candid shot of my grandmother made me cry happy tears.",
    "When it rained they calmly moved us indoors and still found beautiful light.",
    "The online gallery was easy to share with all our guests.",
    "The engagement session helped us feel at ease in front of the camera.",
    "They noticed little details we had spent months planning.",
    "The second photographer caught moments we never saw ourselves.",
    "Our album is printed on heavy paper and feels like an heirloom.",
)
_CLOSINGS_GOOD = (
    "Highly recommend!",
    "Worth every penny.",
    "Book them before your date is taken.",
    "Thank you for capturing our day so beautifully.",
    "We will be back for family portraits.",
)
_OPENINGS_MIXED = (
    "Our wedding at {venue} was photographed by Willow & Vine.",
    "We had Maren for our {month} wedding.",
)
_DETAILS_MIXED = (
    "The photos are lovely, but the gallery took almost four months to arrive.",
    "Replies to our e-mails before the day were slow at times.",
    "Some of the reception shots came out darker than we hoped.",
    "The portraits are great, though a few family groupings were missed.",
)
_CLOSINGS_MIXED = (
    "Good overall, with room to improve.",
    "We are happy with most of the pictures.",
)
_DETAILS_BAD = (
    "We waited five months for our photos and had to chase every update.",
    "Several of the family groupings we asked for were missed.",
    "The second shooter left before the first dance.",
    "Many of the ceremony shots are out of focus.",
)
_CLOSINGS_BAD = (
    "Not the experience we expected for the price.",
    "We were disappointed.",
)
_EDIT_BETTER = (
    "Update: the album arrived and it is gorgeous.",
    "Edited to add: they fixed the colour issue within a day.",
    "Update: the team reached out and made things right.",
)
_EDIT_WORSE = (
    "Update: still waiting on the printed album.",
    "Edited: the promised prints never arrived.",
)
_REPLIES_GOOD = (
    "Thank you so much, {first}! It was an honour to be part of your day.",
    "Congratulations again, {first}! We loved working with your families.",
    "Thank you for the kind words, {first}. Enjoy reliving it in your gallery!",
    "{first}, your wedding was a joy to photograph. Thank you for trusting us.",
)
_REPLIES_BAD = (
    "{first}, we are sorry to read this. Please e-mail the studio so we can make it right.",
    "Thank you for the honest feedback, {first}. We have called you to talk it through.",
)


def reviewer_name(rng: random.Random) -> str:
    """Return a reviewer display name such as "Wren Okafor"."""
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def review_text(rng: random.Random, stars: int) -> str:
    """Compose a review text whose tone matches ``stars`` (1 to 5)."""
    parts: tuple[tuple[str, ...], ...]
    if stars >= 4:
        parts = (_OPENINGS_GOOD, _DETAILS_GOOD, _DETAILS_GOOD, _CLOSINGS_GOOD)
    elif stars == 3:
        parts = (_OPENINGS_MIXED, _DETAILS_MIXED, _CLOSINGS_MIXED)
    else:
        parts = (_OPENINGS_MIXED, _DETAILS_BAD, _DETAILS_BAD, _CLOSINGS_BAD)

    sentences: list[str] = []
    for choices in parts:
        sentence = rng.choice(choices)
        if sentence not in sentences:
            sentences.append(sentence)

    text = " ".join(sentences)
    return text.format(venue=rng.choice(VENUES), month=rng.choice(MONTHS))


def edit_note(rng: random.Random, *, better: bool) -> str:
    """Return a sentence a reviewer appends when editing a review."""
    return rng.choice(_EDIT_BETTER if better else _EDIT_WORSE)


def vendor_reply(rng: random.Random, *, reviewer: str, stars: int) -> str:
    """Compose the vendor's reply to a review by ``reviewer``."""
    first = reviewer.split(maxsplit=1)[0]
    choices = _REPLIES_GOOD if stars >= 4 else _REPLIES_BAD
    return rng.choice(choices).format(first=first)
