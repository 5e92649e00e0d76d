"""The Yelp connector: excerpt parsing, the link rule, and the sandbox stand-in."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from plaudit.config import load_config
from plaudit.config.model import RetryConfig, YelpConfig
from plaudit.connectors.base import Capability
from plaudit.connectors.yelp import (
    YelpClient,
    is_yelp_link,
    parse_excerpts,
    yelp_client,
)
from plaudit.errors import ConfigError, PlatformError, ReconnectRequiredError
from plaudit.sandbox import SandboxOptions, serve_sandbox
from plaudit.sandbox.yelp import BUSINESS_IDS, SANDBOX_API_KEY

BUSINESS = BUSINESS_IDS[0]


def excerpt(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "xAG4O7l-t1ubbwVAlPnDKg",
        "url": "https://www.yelp.com/biz/x?hrid=xAG4O7l-t1ubbwVAlPnDKg",
        "text": "Gorgeous flowers and on time...",
        "rating": 5,
        "time_created": "2024-05-01 10:00:00",
        "user": {"id": "u1", "name": "Ella A."},
    }
    return body | fields


def client_for(base_url: str, *, key: str = SANDBOX_API_KEY, **retry: Any) -> YelpClient:
    config = YelpConfig(
        api_base=f"{base_url}/yelp/v3", request_timeout=5.0, retry=RetryConfig(**retry)
    )
    return yelp_client(config, api_key=key, rng=random.Random(9))


@pytest.fixture
async def base_url(nursery: trio.Nursery, autojump_clock: trio.abc.Clock) -> AsyncIterator[str]:
    url: str = await nursery.start(serve_sandbox, SandboxOptions(seed=8))
    yield url


def test_parse_current_shape() -> None:
    listing = parse_excerpts({"reviews": [excerpt()], "total": 12}, business=BUSINESS)
    review = listing.reviews[0]
    assert review.review_id == "xAG4O7l-t1ubbwVAlPnDKg"
    assert review.stars == 5
    assert review.author == "Ella A."
    assert review.created_at == "2024-05-01T10:00:00.000Z"
    assert listing.total == 12
    assert not listing.complete


def test_old_shape_id_from_hrid() -> None:
    old = excerpt(id=None, time_created=None, url="https://www.yelp.com/biz/x?hrid=Abc_1")
    review = parse_excerpts({"reviews": [old]}, business=BUSINESS).reviews[0]
    assert review.review_id == "Abc_1"
    assert review.created_at == ""


def test_old_shape_without_url_gets_stable_id() -> None:
    old = excerpt(id=None, url="")
    first = parse_excerpts({"reviews": [old]}, business=BUSINESS).reviews[0]
    second = parse_excerpts({"reviews": [old]}, business=BUSINESS).reviews[0]
    assert first.review_id.startswith("derived-")
    assert first.review_id == second.review_id


def test_missing_rating_is_retryable() -> None:
    broken = excerpt()
    del broken["rating"]
    with pytest.raises(PlatformError, match="rating") as caught:
        parse_excerpts({"reviews": [broken]}, business=BUSINESS)
    assert caught.value.retryable


@pytest.mark.parametrize(
    "url",
    [
        "https://www.yelp.com/writeareview/biz/abc",
        "http://yelp.com/biz/abc",
        "https://m.yelp.co.uk/biz/abc",
        "https://YELP.COM./biz",
        "https://yelp.to/abc",
    ],
)
def test_yelp_links_detected(url: str) -> None:
    assert is_yelp_link(url)


@pytest.mark.parametrize(
    "url",
    ["https://g.page/r/abc/review", "https://notyelp.com/x", "https://example.com/?u=yelp.com"],
)
def test_other_links_not_yelp(url: str) -> None:
    assert not is_yelp_link(url)


def test_client_never_requests_reviews() -> None:
    assert YelpClient.capabilities == frozenset({Capability.LIST})


async def test_three_newest_excerpts_listed(base_url: str) -> None:
    client = client_for(base_url)
    listing = await client.list_excerpts(BUSINESS)
    await client.aclose()
    async with httpx.AsyncClient() as http:
        truth = (await http.get(f"{base_url}/_sandbox/truth")).json()
    profile = next(p for p in truth["yelp"]["profiles"] if p["profile"] == BUSINESS)
    visible = {entry["review_id"]: entry for entry in profile["reviews"] if entry["visible"]}
    assert len(listing.reviews) == 3
    assert {review.review_id for review in listing.reviews} == set(visible)
    for review in listing.reviews:
        assert review.text == visible[review.review_id]["text"]
        assert review.stars == visible[review.review_id]["stars"]
        assert review.created_at == visible[review.review_id]["created_at"]
    assert listing.total is not None and listing.total >= 3


async def test_bad_key_requires_reconnect(base_url: str) -> None:
    client = client_for(base_url, key="wrong")
    with pytest.raises(ReconnectRequiredError, match="TOKEN_INVALID"):
        await client.list_excerpts(BUSINESS)
    await client.aclose()


async def test_unknown_business_not_retried(base_url: str) -> None:
    client = client_for(base_url)
    with pytest.raises(PlatformError, match="HTTP 404") as caught:
        await client.list_excerpts("no-such-business")
    stats = client.statistics()
    await client.aclose()
    assert not caught.value.retryable
    assert stats.requests == 1


async def test_rate_limit_honours_retry_after(base_url: str) -> None:
    async with httpx.AsyncClient() as http:
        await http.post(
            f"{base_url}/_sandbox/yelp/faults", json={"next_statuses": [429], "retry_after": 2}
        )
    client = client_for(base_url, max_attempts=2)
    started = trio.current_time()
    listing = await client.list_excerpts(BUSINESS)
    waited = trio.current_time() - started
    await client.aclose()
    assert listing.reviews
    assert waited >= 2


async def test_malformed_excerpt_is_retryable(base_url: str) -> None:
    async with httpx.AsyncClient() as http:
        await http.post(f"{base_url}/_sandbox/yelp/faults", json={"malformed_rate": 1.0})
    client = client_for(base_url, max_attempts=1)
    with pytest.raises(PlatformError, match="malformed") as caught:
        await client.list_excerpts(BUSINESS)
    await client.aclose()
    assert caught.value.retryable


# Configuration rules.

YELP_TABLE = """
[platforms.yelp]
api_base = "http://127.0.0.1:8931/yelp/v3"
api_key = "k"

[[platforms.yelp.businesses]]
business_id = "harbour-view-venue"
"""


def config_problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "plaudit.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value.problems


def test_yelp_table_loads(tmp_path: Path) -> None:
    path = tmp_path / "plaudit.toml"
    path.write_text(YELP_TABLE, encoding="utf-8")
    yelp = load_config(path).platforms.yelp
    assert yelp is not None
    assert yelp.businesses[0].business_id == "harbour-view-venue"


def test_yelp_link_in_config_rejected(tmp_path: Path) -> None:
    text = YELP_TABLE + 'name = "https://www.yelp.com/writeareview/biz/harbour-view-venue"\n'
    [problem] = config_problems(tmp_path, text)
    assert "platforms.yelp.businesses[0].name" in problem
    assert "Yelp forbids asking" in problem


def test_yelp_missing_api_key_rejected(tmp_path: Path) -> None:
    [problem] = config_problems(tmp_path, YELP_TABLE.replace('api_key = "k"\n', ""))
    assert "platforms.yelp.api_key" in problem
    assert "missing" in problem


def test_bad_business_id_rejected(tmp_path: Path) -> None:
    text = YELP_TABLE.replace("harbour-view-venue", "../admin")
    [problem] = config_problems(tmp_path, text)
    assert "business_id" in problem


def test_facebook_page_without_token_rejected(tmp_path: Path) -> None:
    text = """
[platforms.facebook]
api_base = "http://127.0.0.1:8931/facebook/v19.0"

[[platforms.facebook.pages]]
page_id = "301001"
"""
    [problem] = config_problems(tmp_path, text)
    assert "platforms.facebook.pages[0].access_token" in problem


def test_trustpilot_bad_unit_rejected(tmp_path: Path) -> None:
    text = """
[platforms.trustpilot]
api_base = "http://127.0.0.1:8931/trustpilot/v1"
token_url = "http://127.0.0.1:8931/trustpilot/v1/token"
api_key = "k"
api_secret = "s"

[[platforms.trustpilot.business_units]]
business_unit_id = "not-hex"
"""
    [problem] = config_problems(tmp_path, text)
    assert "business_unit_id" in problem
