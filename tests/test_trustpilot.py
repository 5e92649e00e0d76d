"""The Trustpilot connector: parsing, tokens, paging, replies and faults on the sandbox."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio

from plaudit.config.model import RetryConfig, TrustpilotConfig
from plaudit.connectors.trustpilot import (
    TrustpilotClient,
    parse_reviews,
    trustpilot_client,
)
from plaudit.errors import PlatformError, ReconnectRequiredError
from plaudit.reviews.model import Contact, Review
from plaudit.sandbox import SandboxOptions, serve_sandbox
from plaudit.sandbox.standin import stand_in_truth_reviews
from plaudit.sandbox.trustpilot import SANDBOX_API_KEY, SANDBOX_API_SECRET, UNIT_IDS

UNIT = UNIT_IDS[0]


def api_review(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "60aa00000000000000000001",
        "stars": 5,
        "title": "Wonderful day",
        "text": "Every detail was looked after.",
        "createdAt": "2024-05-01T10:00:00Z",
        "consumer": {"id": "c1", "displayName": "Ines M"},
        "referenceId": "booking-17",
        "referralEmail": "ines@example.com",
    }
    return body | fields


def client_for(
    base_url: str, *, secret: str = SANDBOX_API_SECRET, **retry: Any
) -> TrustpilotClient:
    config = TrustpilotConfig(
        api_base=f"{base_url}/trustpilot/v1",
        token_url=f"{base_url}/trustpilot/v1/oauth/oauth-business-users-for-applications/accesstoken",
        api_key=SANDBOX_API_KEY,
        page_size=10,
        request_timeout=5.0,
        retry=RetryConfig(**retry),
    )
    return trustpilot_client(config, api_secret=secret, rng=random.Random(5))


async def set_faults(base_url: str, **changes: Any) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{base_url}/_sandbox/trustpilot/faults", json=changes)
        response.raise_for_status()


async def truth_of(base_url: str) -> tuple[list[Review], dict[str, dict[str, Any]]]:
    async with httpx.AsyncClient() as http:
        truth = (await http.get(f"{base_url}/_sandbox/truth")).json()
    reviews = stand_in_truth_reviews(truth, "trustpilot")
    live = [r for r in reviews if r.profile == UNIT and r.deleted_at is None]
    raw = {
        entry["review_id"]: entry
        for profile in truth["trustpilot"]["profiles"]
        for entry in profile["reviews"]
    }
    return sorted(live, key=lambda review: review.review_id), raw


@pytest.fixture
async def base_url(nursery: trio.Nursery, autojump_clock: trio.abc.Clock) -> AsyncIterator[str]:
    url: str = await nursery.start(serve_sandbox, SandboxOptions(seed=6))
    yield url


def test_parse_maps_fields() -> None:
    page = parse_reviews({"reviews": [api_review()]}, unit=UNIT)
    review = page.reviews[0]
    assert review.stars == 5
    assert review.text == "Wonderful day\n\nEvery detail was looked after."
    assert review.author == "Ines M"
    assert review.created_at == "2024-05-01T10:00:00.000Z"
    assert review.reply_text is None
    assert page.contacts[review.review_id] == Contact(
        email="ines@example.com", reference="booking-17"
    )
    assert page.next_page is None


def test_parse_company_reply() -> None:
    reply = {"text": "Thank you!", "createdAt": "2024-05-02T08:00:00Z"}
    review = parse_reviews({"reviews": [api_review(companyReply=reply)]}, unit=UNIT).reviews[0]
    assert review.reply_text == "Thank you!"
    assert review.reply_updated_at == "2024-05-02T08:00:00.000Z"


def test_next_page_link_parsed() -> None:
    links = [{"href": "/v1/x?page=3&perPage=20", "rel": "next-page"}]
    assert parse_reviews({"reviews": [], "links": links}, unit=UNIT).next_page == 3


def test_stars_out_of_range_rejected() -> None:
    with pytest.raises(PlatformError, match=r"\$\.reviews\[0\]\.stars") as caught:
        parse_reviews({"reviews": [api_review(stars=7)]}, unit=UNIT)
    assert caught.value.retryable


def test_wrong_type_is_retryable() -> None:
    with pytest.raises(PlatformError, match="malformed") as caught:
        parse_reviews({"reviews": [api_review(stars="five")]}, unit=UNIT)
    assert caught.value.retryable


async def test_all_reviews_equal_truth(base_url: str) -> None:
    client = client_for(base_url)
    listing = await client.list_all_reviews(UNIT)
    await client.aclose()
    truth, raw = await truth_of(base_url)
    assert listing.complete
    assert listing.pages > 1
    assert sorted(listing.reviews, key=lambda review: review.review_id) == truth
    for review_id, contact in listing.contacts.items():
        assert contact.email == raw[review_id]["email"]
        assert contact.reference == raw[review_id]["reference"]


async def test_token_fetched_once(base_url: str) -> None:
    client = client_for(base_url)
    await client.list_reviews_page(UNIT)
    await client.list_reviews_page(UNIT)
    await client.aclose()
    assert client.token_refreshes == 1


async def test_revoked_token_refreshed_once(base_url: str) -> None:
    client = client_for(base_url)
    await client.list_reviews_page(UNIT)
    await set_faults(base_url, revoke_tokens=True)
    page = await client.list_reviews_page(UNIT)
    await client.aclose()
    assert page.reviews
    assert client.token_refreshes == 2


async def test_wrong_secret_requires_reconnect(base_url: str) -> None:
    client = client_for(base_url, secret="wrong")
    with pytest.raises(ReconnectRequiredError, match="api_secret"):
        await client.list_reviews_page(UNIT)
    await client.aclose()


async def test_missing_token_endpoint_not_retried(base_url: str) -> None:
    config = TrustpilotConfig(
        api_base=f"{base_url}/trustpilot/v1",
        token_url=f"{base_url}/trustpilot/v1/no-such-token-endpoint",
        api_key=SANDBOX_API_KEY,
        retry=RetryConfig(max_attempts=1),
    )
    client = trustpilot_client(config, api_secret=SANDBOX_API_SECRET)
    with pytest.raises(PlatformError, match="HTTP 404") as caught:
        await client.list_reviews_page(UNIT)
    await client.aclose()
    assert not caught.value.retryable


async def test_reply_appears_in_listing(base_url: str) -> None:
    client = client_for(base_url)
    first = (await client.list_reviews_page(UNIT)).reviews[0]
    await client.reply(first.review_id, "Thank you both!")
    listing = await client.list_all_reviews(UNIT)
    await client.aclose()
    replied = {review.review_id: review for review in listing.reviews}[first.review_id]
    assert replied.reply_text == "Thank you both!"


async def test_page_loop_marks_incomplete(base_url: str) -> None:
    await set_faults(base_url, page_loop=True)
    client = client_for(base_url)
    listing = await client.list_all_reviews(UNIT)
    await client.aclose()
    assert not listing.complete
    assert listing.pages == 1


async def test_server_errors_retried(base_url: str) -> None:
    await set_faults(base_url, next_statuses=[503, 429])
    client = client_for(base_url, max_attempts=3)
    page = await client.list_reviews_page(UNIT)
    stats = client.statistics()
    await client.aclose()
    assert page.reviews
    assert stats.retries == 2


async def test_malformed_page_is_retryable(base_url: str) -> None:
    await set_faults(base_url, malformed_rate=1.0)
    client = client_for(base_url, max_attempts=1)
    with pytest.raises(PlatformError, match="malformed") as caught:
        await client.list_reviews_page(UNIT)
    await client.aclose()
    assert caught.value.retryable


async def test_bad_unit_id_rejected() -> None:
    client = client_for("http://127.0.0.1:9")
    with pytest.raises(ValueError, match="business unit id"):
        await client.list_reviews_page("../admin")
    await client.aclose()


async def test_second_401_requires_reconnect(base_url: str) -> None:
    await set_faults(base_url, next_statuses=[401, 401])
    client = client_for(base_url)
    with pytest.raises(ReconnectRequiredError, match="fresh access token"):
        await client.list_reviews_page(UNIT)
    await client.aclose()
    assert client.token_refreshes == 2
