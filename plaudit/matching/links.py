"""Grouping one couple's reviews across platforms.

A group only lists the reviews that confirmed matches link to the couple.
Each review stays as its platform shows it: nothing is merged, edited or
copied from one platform to another.
"""

from __future__ import annotations

from typing import final

import msgspec

from plaudit.reviews.store import SupportsExecute


@final
class LinkedReview(msgspec.Struct, frozen=True, kw_only=True):
    """A reference to one review in a couple's group, with the figures a report shows."""

    platform: str
    profile: str
    review_id: str
    stars: int | None
    recommendation: str | None
    created_at: str
    # Set when the platform no longer lists the review.
    deleted_at: str | None
    match_id: int


@final
class ReviewGroup(msgspec.Struct, frozen=True, kw_only=True):
    """One couple and every review confirmed as theirs, ordered by platform."""

    couple_id: int
    names: list[str]
    reviews: list[LinkedReview]

    @property
    def platforms(self) -> list[str]:
        return sorted({review.platform for review in self.reviews})


def review_groups(source: SupportsExecute, *, couple_id: int | None = None) -> list[ReviewGroup]:
    """Return the review group of every couple with a confirmed match, or of one couple."""
    where = "" if couple_id is None else " AND m.couple_id = ?"
    params = () if couple_id is None else (couple_id,)
    rows = source.execute(
        "SELECT m.couple_id, c.names, r.platform, r.profile, r.review_id, r.stars,"
        " r.recommendation, r.created_at, r.deleted_at, m.id"
        " FROM review_matches m"
        " JOIN couples c ON c.id = m.couple_id"
        " JOIN reviews r ON r.platform = m.platform AND r.review_id = m.review_id"
        f" WHERE m.state = 'confirmed'{where}"
        " ORDER BY m.couple_id, r.platform, r.created_at, r.review_id",
        params,
    ).fetchall()
    groups: dict[int, ReviewGroup] = {}
    for row in rows:
        group = groups.get(int(row[0]))
        if group is None:
            names = msgspec.json.decode(row[1], type=list[str])
            group = ReviewGroup(couple_id=int(row[0]), names=names, reviews=[])
            groups[group.couple_id] = group
        group.reviews.append(
            LinkedReview(
                platform=row[2],
                profile=row[3],
                review_id=row[4],
                stars=row[5],
                recommendation=row[6],
                created_at=row[7],
                deleted_at=row[8],
                match_id=int(row[9]),
            )
        )
    return list(groups.values())
