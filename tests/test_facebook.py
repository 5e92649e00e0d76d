"""The Facebook connector: rating parsing, Graph errors, webhook checks and the sandbox."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio

from plaudit.config.model import FacebookConfig, RetryConfig
from plaudit.connectors.base import Capability, IngestionMode
from plaudit.connectors.facebook import (
    ApiVersionUnsupportedError,
    FacebookClient,
    RatingChange,
    WebhookVerificationError,
    derived_id,
    facebook_client,
    parse_page_webhook,
    parse_ratings,
    same_comment_text,
    signature_of,
    verify_signature,
    verify_subscription,
)
from plaudit.errors import PlatformError, ReconnectRequiredError
from plaudit.reviews.model import Review
from plaudit.sandbox import SandboxOptions, serve_sandbox
from plaudit.sandbox.facebook import PAGE_IDS, SANDBOX_PAGE_TOKEN
from plaudit.sandbox.standin import stand_in_truth_reviews

PAGE = PAGE_IDS[0]


def rating(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "created_time": "2024-05-01T10:00:00+0000",
        "recommendation_type": "positive",
        "review_text": "They caught every glance.",
        "reviewer": {"id": "77", "name": "Ines M"},
        "open_graph_story": {"id": f"{PAGE}_88"},
    }
    return body | fields


def client_for(
    base_url: str, *, version: str = "v19.0", token: str = SANDBOX_PAGE_TOKEN, **retry: Any
) -> FacebookClient:
    config = FacebookConfig(
        api_base=f"{base_url}/facebook/{version}",
        request_timeout=5.0,
        page_size=10,
        retry=RetryConfig(**retry),
    )
    return facebook_client(
        config, page_tokens={page: token for page in PAGE_IDS}, rng=random.Random(3)
    )


async def set_faults(base_url: str, **changes: Any) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{base_url}/_sandbox/facebook/faults", json=changes)
        response.raise_for_status()


async def truth_of(base_url: str, page_id: str) -> list[Review]:
    async with httpx.AsyncClient() as http:
        truth = (await http.get(f"{base_url}/_sandbox/truth")).json()
    reviews = stand_in_truth_reviews(truth, "facebook")
    live = [r for r in reviews if r.profile == page_id and r.deleted_at is None]
    return sorted(live, key=lambda review: review.review_id)


def by_id(reviews: list[Review]) -> list[Review]:
    return sorted(reviews, key=lambda review: review.review_id)


@pytest.fixture
async def base_url(nursery: trio.Nursery, autojump_clock: trio.abc.Clock) -> AsyncIterator[str]:
    url: str = await nursery.start(serve_sandbox, SandboxOptions(seed=4))
    yield url


# Pure parsing.


def test_parse_recommendation_rating() -> None:
    page = parse_ratings({"data": [rating()]}, page_id=PAGE)
    review = page.reviews[0]
    assert review.review_id == f"{PAGE}_88"
    assert review.recommendation == "positive"
    assert review.stars is None
    assert review.author == "Ines M"
    assert review.created_at == "2024-05-01T10:00:00.000Z"
    assert review.updated_at == review.created_at
    assert page.after is None


def test_parse_legacy_star_rating() -> None:
    body = {"data": [rating(rating=4, recommendation_type=None)]}
    review = parse_ratings(body, page_id=PAGE).reviews[0]
    assert review.stars == 4
    assert review.recommendation is None


def test_unknown_recommendation_maps_to_none() -> None:
    review = parse_ratings({"data": [rating(recommendation_type="neutral")]}, page_id=PAGE)
    assert review.reviews[0].recommendation is None


def test_out_of_range_stars_dropped() -> None:
    review = parse_ratings({"data": [rating(rating=9)]}, page_id=PAGE).reviews[0]
    assert review.stars is None


def test_page_comment_is_the_reply() -> None:
    story = {
        "id": f"{PAGE}_88",
        "comments": {
            "data": [
                {"id": "c1", "from": {"id": "77"}, "message": "Thanks!"},
                {
                    "id": "c2",
                    "from": {"id": PAGE},
                    "message": "It was our joy.",
                    "created_time": "2024-05-02T09:00:00+0000",
                },
            ]
        },
    }
    review = parse_ratings({"data": [rating(open_graph_story=story)]}, page_id=PAGE).reviews[0]
    assert review.reply_text == "It was our joy."
    assert review.reply_updated_at == "2024-05-02T09:00:00.000Z"


@pytest.mark.parametrize(
    "posted",
    [
        "It was our joy.\nSee you soon!",
        "It was our joy.\r\nSee you soon!",
        "  It was our joy.  See you soon!\n",
    ],
)
def test_stored_comment_with_other_spacing_is_the_reply(posted: str) -> None:
    assert same_comment_text(posted, "It was our joy.\nSee you soon!")


@pytest.mark.parametrize("posted", ["It was our joy.", "It was our joy. See you soon?", ""])
def test_other_comment_text_is_not_the_reply(posted: str) -> None:
    assert not same_comment_text(posted, "It was our joy.\nSee you soon!")


def test_rating_without_story_gets_stable_id() -> None:
    body = {"data": [rating(open_graph_story=None)]}
    first = parse_ratings(body, page_id=PAGE).reviews[0]
    second = parse_ratings(body, page_id=PAGE).reviews[0]
    assert first.review_id.startswith("derived-")
    assert first.review_id == second.review_id
    assert first.review_id == derived_id(PAGE, "Ines M", "2024-05-01T10:00:00.000Z")


def test_cursor_followed_only_with_next() -> None:
    cursors = {"cursors": {"before": "b", "after": "a1"}}
    assert parse_ratings({"data": [], "paging": cursors}, page_id=PAGE).after is None
    with_next = {"data": [], "paging": cursors | {"next": "https://next"}}
    assert parse_ratings(with_next, page_id=PAGE).after == "a1"


def test_missing_data_is_retryable() -> None:
    with pytest.raises(PlatformError, match=r"malformed .* from facebook") as caught:
        parse_ratings(b'{"paging": {}}', page_id=PAGE)
    assert caught.value.retryable


def test_bad_time_names_path() -> None:
    with pytest.raises(PlatformError, match=r"\$\.data\[0\]\.created_time"):
        parse_ratings({"data": [rating(created_time="yesterday")]}, page_id=PAGE)


def test_truncated_body_is_retryable() -> None:
    with pytest.raises(PlatformError) as caught:
        parse_ratings(b'{"data": [', page_id=PAGE)
    assert caught.value.retryable


# Webhook checks.


def test_handshake_returns_challenge() -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": "tok", "hub.challenge": "1158201444"}
    assert verify_subscription(query, "tok") == "1158201444"


@pytest.mark.parametrize(
    "query",
    [
        {"hub.mode": "unsubscribe", "hub.verify_token": "tok", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.verify_token": "other", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.verify_token": "tok"},
    ],
)
def test_handshake_rejects_bad_request(query: dict[str, str]) -> None:
    with pytest.raises(WebhookVerificationError):
        verify_subscription(query, "tok")


def test_handshake_rejects_unset_token() -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"}
    with pytest.raises(WebhookVerificationError):
        verify_subscription(query, "")


def test_signature_accepts_raw_body() -> None:
    body = b'{"object":"page","entry":[]}'
    verify_signature(body, signature_of(body, "s3cret"), "s3cret")


@pytest.mark.parametrize(
    "header",
    [None, "", "sha1=abc", "sha256=" + "0" * 64],
)
def test_signature_rejects_bad_header(header: str | None) -> None:
    with pytest.raises(WebhookVerificationError):
        verify_signature(b"{}", header, "s3cret")


def test_signature_rejects_changed_body() -> None:
    header = signature_of(b'{"a":1}', "s3cret")
    with pytest.raises(WebhookVerificationError):
        verify_signature(b'{"a": 1}', header, "s3cret")


def test_signature_needs_app_secret() -> None:
    with pytest.raises(WebhookVerificationError, match="app_secret"):
        verify_signature(b"{}", signature_of(b"{}", ""), "")


def test_client_declares_capabilities() -> None:
    assert Capability.REPLY in FacebookClient.capabilities
    assert Capability.PUSH in FacebookClient.capabilities
    assert IngestionMode.PUSH in FacebookClient.ingestion_modes
    assert Capability.REQUEST_LINK not in FacebookClient.capabilities


# Against the sandbox.


async def test_all_ratings_equal_truth(base_url: str) -> None:
    client = client_for(base_url)
    listing = await client.list_all_ratings(PAGE)
    await client.aclose()
    assert listing.complete
    assert listing.pages > 1
    assert by_id(listing.reviews) == await truth_of(base_url, PAGE)


async def test_both_rating_kinds_in_sandbox(base_url: str) -> None:
    client = client_for(base_url)
    listing = await client.list_all_ratings(PAGE)
    await client.aclose()
    assert any(review.stars is not None for review in listing.reviews)
    assert any(review.stars is None for review in listing.reviews)
    assert all(review.recommendation is not None for review in listing.reviews)


async def test_listing_after_script_equals_truth(
    base_url: str, autojump_clock: trio.abc.Clock
) -> None:
    await trio.sleep(30)
    client = client_for(base_url)
    listing = await client.list_all_ratings(PAGE_IDS[1])
    await client.aclose()
    assert by_id(listing.reviews) == await truth_of(base_url, PAGE_IDS[1])


async def test_reply_appears_in_listing(base_url: str) -> None:
    client = client_for(base_url)
    first = (await client.list_ratings_page(PAGE)).reviews[0]
    comment_id = await client.reply(PAGE, first.review_id, "Thank you both!")
    listing = await client.list_all_ratings(PAGE)
    await client.aclose()
    replied = {review.review_id: review for review in listing.reviews}[first.review_id]
    assert comment_id.startswith(first.review_id)
    assert replied.reply_text == "Thank you both!"


async def test_deprecated_version_not_retried(base_url: str) -> None:
    client = client_for(base_url, version="v22.0")
    with pytest.raises(ApiVersionUnsupportedError, match="unsupported by this Graph API version"):
        await client.list_ratings_page(PAGE)
    requests = client.statistics().requests
    await client.aclose()
    assert requests == 1


async def test_invalid_token_requires_reconnect(base_url: str) -> None:
    client = client_for(base_url, token="expired")
    with pytest.raises(ReconnectRequiredError, match="code 190"):
        await client.list_ratings_page(PAGE)
    await client.aclose()


async def test_rate_limit_retried(base_url: str) -> None:
    await set_faults(base_url, next_statuses=[429, 500])
    client = client_for(base_url, max_attempts=3)
    page = await client.list_ratings_page(PAGE)
    stats = client.statistics()
    await client.aclose()
    assert page.reviews
    assert stats.retries == 2


async def test_persistent_errors_raise_retryable(base_url: str) -> None:
    await set_faults(base_url, error_rate=1.0)
    client = client_for(base_url, max_attempts=2)
    with pytest.raises(PlatformError) as caught:
        await client.list_ratings_page(PAGE)
    await client.aclose()
    assert caught.value.retryable


async def test_malformed_page_raises_retryable(base_url: str) -> None:
    await set_faults(base_url, malformed_rate=1.0)
    client = client_for(base_url, max_attempts=1)
    with pytest.raises(PlatformError, match="malformed") as caught:
        await client.list_ratings_page(PAGE)
    await client.aclose()
    assert caught.value.retryable


async def test_cursor_loop_marks_incomplete(base_url: str) -> None:
    await set_faults(base_url, cursor_loop=True)
    client = client_for(base_url)
    listing = await client.list_all_ratings(PAGE, max_pages=50)
    await client.aclose()
    assert not listing.complete
    assert listing.pages == 2


async def test_latency_past_timeout_retried(base_url: str) -> None:
    await set_faults(base_url, latency=10.0)
    client = client_for(base_url, max_attempts=2, attempt_timeout=2.0, deadline=30.0)
    with pytest.raises(PlatformError, match="attempt timeout") as caught:
        await client.list_ratings_page(PAGE)
    await client.aclose()
    assert caught.value.retryable


async def test_unknown_page_not_retried(base_url: str) -> None:
    client = client_for(base_url)
    with pytest.raises(ValueError, match="no access token"):
        await client.list_ratings_page("999")
    await client.aclose()


async def test_reply_to_derived_id_rejected(base_url: str) -> None:
    client = client_for(base_url)
    with pytest.raises(ValueError, match="open_graph_story"):
        await client.reply(PAGE, "derived-abc", "Thanks")
    await client.aclose()


def test_page_webhook_lists_rating_changes() -> None:
    body = (
        b'{"object":"page","entry":[{"id":"301001","time":1,"changes":['
        b'{"field":"ratings","value":{"item":"rating","verb":"add",'
        b'"open_graph_story_id":"301001_9","reviewer_id":"5"}},'
        b'{"field":"feed","value":{"item":"status","verb":"add"}}]}]}'
    )
    assert parse_page_webhook(body) == [
        RatingChange(page_id="301001", verb="add", story_id="301001_9")
    ]


@pytest.mark.parametrize(
    "body",
    [b"{", b'{"object":"user","entry":[]}', b'{"object":"page"}', b"[]"],
)
def test_page_webhook_rejects_bad_body(body: bytes) -> None:
    with pytest.raises(WebhookVerificationError):
        parse_page_webhook(body)
