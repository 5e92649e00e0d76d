"""Real Google Business Profile API responses from the corpus, through the pure parsers."""

from __future__ import annotations

from pathlib import Path

import pytest

from plaudit.connectors.google import parse_review, parse_review_list

pytestmark = pytest.mark.conformance

PROFILE = "accounts/108494581129006735086/locations/6394464039148850881"
REPEATED_ID = "AbFvOqmDfUP0EhJuYm-w3KXy3gSxYn-NS9CiDOo4tOjO4PRuq4PWUWbGkh6K-fePdKQaXi0cycFGGg"


def corpus_file(corpus_dir: Path, name: str) -> bytes:
    path = corpus_dir / "platform-json" / name
    if not path.is_file():
        pytest.skip(f"corpus file {path} is absent")

    return path.read_bytes()


def test_review_list_parses(corpus_dir: Path) -> None:
    page = parse_review_list(
        corpus_file(corpus_dir, "gbpmock_review_list_response.json"), profile=PROFILE
    )
    assert page.average_rating == 5
    assert page.total_review_count == 2
    assert page.next_page_token is None


def test_review_list_repeated_id_kept_once(corpus_dir: Path) -> None:
    page = parse_review_list(
        corpus_file(corpus_dir, "gbpmock_review_list_response.json"), profile=PROFILE
    )
    assert [review.review_id for review in page.reviews] == [REPEATED_ID]
    assert page.duplicate_ids == [REPEATED_ID]


def test_review_list_tie_keeps_first_copy(corpus_dir: Path) -> None:
    # Both copies carry the same updateTime, so the first one wins.
    page = parse_review_list(
        corpus_file(corpus_dir, "gbpmock_review_list_response.json"), profile=PROFILE
    )
    (review,) = page.reviews
    assert review.author == "Ihor K"
    assert review.text == "Awesome service!"
    assert review.stars == 5
    assert review.reply_text == "Thx :)"
    assert review.reply_updated_at == "2021-03-02T11:03:45.142Z"


def test_review_detail_parses(corpus_dir: Path) -> None:
    review = parse_review(
        corpus_file(corpus_dir, "gbpmock_review_detail_response.json"), profile=PROFILE
    )
    assert review.review_id == REPEATED_ID
    assert review.platform == "google"
    assert review.profile == PROFILE
    assert review.stars == 5
    assert review.text == "Awesome service!"
    assert review.author == "Ihor K"
    assert review.created_at == "2021-03-02T10:47:32.807Z"
    assert review.updated_at == "2021-03-02T10:47:32.807Z"
    assert review.reply_text == "Thx :)"
    assert review.deleted_at is None


def test_detail_equals_list_entry(corpus_dir: Path) -> None:
    page = parse_review_list(
        corpus_file(corpus_dir, "gbpmock_review_list_response.json"), profile=PROFILE
    )
    detail = parse_review(
        corpus_file(corpus_dir, "gbpmock_review_detail_response.json"), profile=PROFILE
    )
    assert page.reviews == [detail]
