"""The Google actor's pure decision step and its schedule, without network or clock."""

from __future__ import annotations

from plaudit.actors.google import (
    MAX_PAGES,
    FetchPage,
    Finish,
    PageArrived,
    begin,
    current_slot,
    decide,
    sync_job,
)
from plaudit.config.model import GoogleLocation
from plaudit.connectors.google import ReviewPage
from plaudit.reviews.model import Review

PROFILE = "accounts/1/locations/2"


def review(review_id: str, text: str = "Lovely photos") -> Review:
    return Review(
        platform="google",
        profile=PROFILE,
        review_id=review_id,
        stars=5,
        text=text,
        author="Ana P",
        created_at="2026-06-01T10:00:00.000Z",
        updated_at="2026-06-01T10:00:00.000Z",
    )


def page(reviews: list[Review], token: str | None) -> ReviewPage:
    return ReviewPage(
        reviews=reviews, next_page_token=token, average_rating=5.0, total_review_count=len(reviews)
    )


def test_listing_starts_with_first_page() -> None:
    _state, action = begin(PROFILE)
    assert action == FetchPage(token=None)


def test_listing_follows_page_tokens() -> None:
    state, _ = begin(PROFILE)
    state, action = decide(state, PageArrived(page([review("a")], "t2")))
    assert action == FetchPage(token="t2")
    assert state.pages == 1


def test_last_page_finishes_complete_listing() -> None:
    state, _ = begin(PROFILE)
    state, _ = decide(state, PageArrived(page([review("a")], "t2")))
    _state, action = decide(state, PageArrived(page([review("b")], None)))
    assert isinstance(action, Finish)
    assert action.complete
    assert sorted(item.review_id for item in action.reviews) == ["a", "b"]


def test_repeated_review_id_keeps_later_page() -> None:
    state, _ = begin(PROFILE)
    state, _ = decide(state, PageArrived(page([review("a", "first")], "t2")))
    _state, action = decide(state, PageArrived(page([review("a", "second")], None)))
    assert isinstance(action, Finish)
    assert [item.text for item in action.reviews] == ["second"]


def test_page_limit_finishes_incomplete_listing() -> None:
    state, action = begin(PROFILE)
    for number in range(MAX_PAGES):
        state, action = decide(state, PageArrived(page([review(f"r{number}")], f"t{number + 1}")))
    assert isinstance(action, Finish)
    assert not action.complete
    assert len(action.reviews) == MAX_PAGES


def test_sync_job_key_names_profile_and_slot() -> None:
    location = GoogleLocation(account="accounts/1", location="locations/2")
    job = sync_job(location, slot=17, interval=300.0)
    assert job["key"] == "google.sync:accounts/1/locations/2:17"
    assert job["run_at"] == 17 * 300.0
    assert job["payload"] == {"account": "accounts/1", "location": "locations/2", "slot": 17}


def test_current_slot_is_floor_of_interval() -> None:
    assert current_slot(599.9, 300.0) == 1
    assert current_slot(600.0, 300.0) == 2
