"""Reconciliation against the sandbox truth: the journal agrees after every full listing.

The sandbox's Google world runs its script of creations, edits, replies and
deletions step by step.  After each step the listing the API would return
goes through the Google connector's parser into the journal, and the
journal must then equal the truth exactly, field by field.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from plaudit.connectors.google import parse_review_list
from plaudit.demo import compare
from plaudit.journal import Journal
from plaudit.reviews.store import apply_snapshot, load_reviews
from plaudit.sandbox.truth import truth_reviews
from plaudit.sandbox.world import GoogleWorld, WorldOptions

SCRIPT_SECONDS = 40.0
STEP_SECONDS = 2.5


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    opened = Journal.open(tmp_path / "journal.sqlite3")
    yield opened
    opened.close()


def reconcile(journal: Journal, world: GoogleWorld, *, complete: bool = True) -> None:
    """Store every location's listing, as one full sync of the Google actor would."""
    for location in world.locations.values():
        body = {"reviews": [review.to_api(location.profile) for review in location.live_reviews()]}
        page = parse_review_list(body, profile=location.profile)
        with journal.transaction() as tx:
            apply_snapshot(
                tx,
                platform="google",
                profile=location.profile,
                reviews=page.reviews,
                complete=complete,
            )


def differences(journal: Journal, world: GoogleWorld) -> list[str]:
    with journal.transaction() as tx:
        stored = load_reviews(tx, include_deleted=True)
    found = compare(stored, truth_reviews(world.truth()))
    return [f"{item.review_id}: {item.problem}" for item in found]


def test_journal_agrees_after_each_reconciliation(journal: Journal) -> None:
    world = GoogleWorld(
        WorldOptions(seed=11, reviews_per_location=(15, 6), script_seconds=SCRIPT_SECONDS)
    )
    kinds: Counter[str] = Counter()
    steps = int(SCRIPT_SECONDS / STEP_SECONDS) + 2
    for step in range(steps):
        kinds.update(event.kind for event in world.advance_to(step * STEP_SECONDS))
        reconcile(journal, world)
        assert differences(journal, world) == [], f"after step {step}"

    # The script exercised every kind of change the agreement has to cover.
    assert kinds["create"] > 0
    assert kinds["edit"] > 0
    assert kinds["reply"] > 0
    assert kinds["delete"] > 0


def test_partial_listing_never_deletes(journal: Journal) -> None:
    world = GoogleWorld(WorldOptions(seed=11, reviews_per_location=(15, 6), script_seconds=40.0))
    reconcile(journal, world)
    world.advance_to(SCRIPT_SECONDS + 1)
    deleted = sum(
        1
        for location in world.locations.values()
        for review in location.reviews.values()
        if review.delete_time is not None
    )
    assert deleted > 0

    reconcile(journal, world, complete=False)

    # Deletions are missed until a complete listing, and nothing else differs.
    problems = differences(journal, world)
    assert problems
    assert all("deleted: journal says False" in problem for problem in problems)
    reconcile(journal, world)
    assert differences(journal, world) == []
