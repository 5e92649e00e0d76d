"""The Google connector: pure parsing, and the client against the real sandbox over HTTP."""

from __future__ import annotations

import random
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio

from plaudit.config.model import GoogleConfig, RetryConfig
from plaudit.connectors.base import Capability, Connector, IngestionMode
from plaudit.connectors.google import (
    GoogleClient,
    deduplicate_reviews,
    parse_review,
    parse_review_list,
    profile_name,
)
from plaudit.errors import PlatformError, ReconnectRequiredError
from plaudit.metrics import REGISTRY
from plaudit.reliability.retry import parse_retry_after
from plaudit.reviews.model import Review
from plaudit.sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_REFRESH_TOKEN,
    GoogleWorld,
    SandboxOptions,
    WorldOptions,
    serve_sandbox,
)
from plaudit.sandbox.truth import truth_reviews

ACCOUNT = "accounts/1001"
LOCATION = "locations/2001"
STUDIO = "locations/2002"
PROFILE = f"{ACCOUNT}/{LOCATION}"


class RecordingSleep:
    """trio.sleep that remembers every delay it was asked for."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await trio.sleep(seconds)


def api_review(review_id: str = "r1", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "reviewId": review_id,
        "reviewer": {"displayName": "Ines M"},
        "starRating": "FOUR",
        "comment": "Calm, kind and quick with the gallery.",
        "createTime": "2024-05-01T10:00:00Z",
        "updateTime": "2024-05-01T10:00:00Z",
    }
    return body | fields


def config_for(base_url: str, **overrides: Any) -> GoogleConfig:
    fields: dict[str, Any] = {
        "api_base": f"{base_url}/google/v4",
        "token_url": f"{base_url}/google/oauth2/token",
        "client_id": SANDBOX_CLIENT_ID,
        "request_timeout": 5.0,
    }
    return GoogleConfig(**(fields | overrides))


def client_for(
    base_url: str,
    *,
    refresh_token: str = SANDBOX_REFRESH_TOKEN,
    sleep: RecordingSleep | None = None,
    **overrides: Any,
) -> GoogleClient:
    return GoogleClient(
        config_for(base_url, **overrides),
        client_secret=SANDBOX_CLIENT_SECRET,
        refresh_token=refresh_token,
        rng=random.Random(7),
        sleep=sleep or RecordingSleep(),
    )


async def sandbox_get(base_url: str, path: str) -> Any:
    async with httpx.AsyncClient() as http:
        return (await http.get(f"{base_url}{path}")).json()


async def sandbox_post(base_url: str, path: str, body: dict[str, Any]) -> Any:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{base_url}{path}", json=body)
        response.raise_for_status()
        return response.json()


def live_truth(truth: dict[str, Any], profile: str) -> list[Review]:
    reviews = [r for r in truth_reviews(truth) if r.profile == profile and r.deleted_at is None]
    return sorted(reviews, key=lambda review: review.review_id)


def by_id(reviews: list[Review]) -> list[Review]:
    return sorted(reviews, key=lambda review: review.review_id)


def requests_total(outcome: str) -> float:
    labels = {"platform": "google", "outcome": outcome}
    return REGISTRY.get_sample_value("plaudit_platform_requests_total", labels) or 0.0


@pytest.fixture
async def base_url(nursery: trio.Nursery, autojump_clock: trio.abc.Clock) -> AsyncIterator[str]:
    url: str = await nursery.start(serve_sandbox, SandboxOptions(seed=2))
    yield url


# Pure parsing.


def test_parse_list_maps_fields() -> None:
    body = {
        "reviews": [
            api_review(reviewReply={"comment": "Thank you!", "updateTime": "2024-05-02T08:30:00Z"})
        ],
        "averageRating": 4.5,
        "totalReviewCount": 12,
        "nextPageToken": "next",
    }
    page = parse_review_list(body, profile=PROFILE)
    assert page.reviews == [
        Review(
            platform="google",
            profile=PROFILE,
            review_id="r1",
            stars=4,
            text="Calm, kind and quick with the gallery.",
            author="Ines M",
            created_at="2024-05-01T10:00:00.000Z",
            updated_at="2024-05-01T10:00:00.000Z",
            reply_text="Thank you!",
            reply_updated_at="2024-05-02T08:30:00.000Z",
        )
    ]
    assert page.next_page_token == "next"
    assert page.average_rating == 4.5
    assert page.total_review_count == 12


def test_parse_accepts_bytes() -> None:
    page = parse_review_list(b'{"reviews": [], "totalReviewCount": 0}', profile=PROFILE)
    assert page.reviews == []
    assert page.next_page_token is None


def test_rating_only_review_has_empty_text() -> None:
    body = api_review()
    del body["comment"]
    assert parse_review(body, profile=PROFILE).text == ""


def test_unspecified_rating_maps_to_none() -> None:
    body = api_review(starRating="STAR_RATING_UNSPECIFIED")
    assert parse_review(body, profile=PROFILE).stars is None


def test_unknown_rating_is_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    from plaudit.metrics import UNKNOWN_ENUM_VALUES

    counter = UNKNOWN_ENUM_VALUES.labels("google", "starRating")
    before = counter._value.get()
    with caplog.at_level("WARNING"):
        review = parse_review(api_review(starRating="SIX"), profile=PROFILE)

    assert review.stars is None
    assert counter._value.get() == before + 1
    warning = next(r for r in caplog.records if r.message == "google.unknown_star_rating")
    assert warning.__dict__["value"] == "SIX"
    assert warning.__dict__["profile"] == PROFILE


def test_unknown_fields_tolerated() -> None:
    body = {"reviews": [api_review(mood="sunny")], "somethingNew": {"nested": [1, 2]}}
    assert parse_review_list(body, profile=PROFILE).reviews[0].review_id == "r1"


def test_null_reply_means_no_reply() -> None:
    review = parse_review(api_review(reviewReply=None), profile=PROFILE)
    assert review.reply_text is None
    assert review.reply_updated_at is None


def test_timestamps_normalised_to_utc_millis() -> None:
    body = api_review(
        createTime="2024-05-01T12:00:00.123456789+02:00", updateTime="2024-05-01T10:00:00.5Z"
    )
    review = parse_review(body, profile=PROFILE)
    assert review.created_at == "2024-05-01T10:00:00.123Z"
    assert review.updated_at == "2024-05-01T10:00:00.500Z"


def test_wrong_type_names_json_path() -> None:
    body = {"reviews": [api_review(), api_review(reviewId=7)]}
    with pytest.raises(PlatformError, match=r"\$\.reviews\[1\]\.reviewId") as caught:
        parse_review_list(body, profile=PROFILE)
    assert caught.value.retryable is True


def test_missing_update_time_names_field() -> None:
    body = api_review()
    del body["updateTime"]
    with pytest.raises(PlatformError, match="updateTime"):
        parse_review(body, profile=PROFILE)


def test_bad_timestamp_names_path() -> None:
    body = {"reviews": [api_review(createTime="yesterday")]}
    with pytest.raises(PlatformError, match=r"\$\.reviews\[0\]\.createTime"):
        parse_review_list(body, profile=PROFILE)


def test_truncated_json_raises_retryable() -> None:
    with pytest.raises(PlatformError, match="malformed review list") as caught:
        parse_review_list(b'{"reviews": [{"reviewId": "r1"', profile=PROFILE)
    assert caught.value.retryable is True


def test_duplicate_keeps_latest_update() -> None:
    older = api_review("dup", comment="first draft")
    newer = api_review("dup", comment="final words", updateTime="2024-06-01T00:00:00Z")
    page = parse_review_list({"reviews": [newer, api_review("other"), older]}, profile=PROFILE)
    assert [review.review_id for review in page.reviews] == ["dup", "other"]
    assert page.reviews[0].text == "final words"
    assert page.duplicate_ids == ["dup"]


def test_duplicate_tie_keeps_first() -> None:
    first = parse_review(api_review("dup", comment="one"), profile=PROFILE)
    second = parse_review(api_review("dup", comment="two"), profile=PROFILE)
    kept, repeated = deduplicate_reviews([first, second])
    assert kept == [first]
    assert repeated == ["dup"]


def test_retry_after_seconds() -> None:
    assert parse_retry_after("120", now=0.0) == 120.0


def test_retry_after_http_date() -> None:
    # 1,700,000,000 is Tue, 14 Nov 2023 22:13:20 GMT.
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now=1_700_000_000.0) == 30.0


def test_retry_after_past_date_is_zero() -> None:
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:00 GMT", now=1_700_000_000.0) == 0.0


def test_retry_after_garbage_ignored() -> None:
    assert parse_retry_after("soon", now=0.0) is None


@pytest.mark.parametrize(
    ("account", "location"),
    [("1001", LOCATION), (ACCOUNT, "2001"), (ACCOUNT, "locations/../x"), ("accounts/", LOCATION)],
)
def test_bad_resource_names_rejected(account: str, location: str) -> None:
    with pytest.raises(ValueError, match="invalid Google"):
        profile_name(account, location)


def test_client_is_a_connector() -> None:
    client: Connector = GoogleClient(
        config_for("http://127.0.0.1:9"), client_secret="s", refresh_token="t"
    )
    assert client.name == "google"
    assert Capability.LIST in client.capabilities
    assert Capability.REPLY in client.capabilities
    assert Capability.PUSH in client.capabilities
    assert client.ingestion_modes == frozenset({IngestionMode.API_POLL, IngestionMode.PUSH})


# Tokens.


async def test_token_cached_between_calls(base_url: str, autojump_clock: trio.abc.Clock) -> None:
    async with client_for(base_url) as client:
        await client.list_reviews_page(ACCOUNT, LOCATION)
        await client.list_reviews_page(ACCOUNT, STUDIO)
        refreshes = client.statistics().token_refreshes
    stats = await sandbox_get(base_url, "/_sandbox/stats")
    assert refreshes == 1
    assert stats["tokens_issued"] == 1


async def test_token_refreshed_before_expiry(base_url: str, autojump_clock: trio.abc.Clock) -> None:
    async with client_for(base_url) as client:
        await client.list_reviews_page(ACCOUNT, LOCATION)
        # The sandbox's tokens live 3600 s; the client refreshes 60 s early.
        await trio.sleep(3600 - 30)
        await client.list_reviews_page(ACCOUNT, LOCATION)
        statistics = client.statistics()
    assert statistics.token_refreshes == 2
    assert statistics.retries == 0


async def test_revoked_token_refreshed_once(base_url: str, autojump_clock: trio.abc.Clock) -> None:
    async with client_for(base_url) as client:
        await client.list_reviews_page(ACCOUNT, LOCATION)
        await sandbox_post(base_url, "/_sandbox/auth", {"revoke_access_tokens": True})
        page = await client.list_reviews_page(ACCOUNT, LOCATION)
        refreshes = client.statistics().token_refreshes
    assert len(page.reviews) == 50
    assert refreshes == 2


async def test_second_401_requires_reconnect(base_url: str, autojump_clock: trio.abc.Clock) -> None:
    await sandbox_post(base_url, "/_sandbox/faults", {"next_statuses": [401, 401, 401]})
    async with client_for(base_url) as client:
        with pytest.raises(ReconnectRequiredError, match="401"):
            await client.list_reviews_page(ACCOUNT, LOCATION)
        refreshes = client.statistics().token_refreshes
    assert refreshes == 2


async def test_invalid_grant_requires_reconnect(
    base_url: str, autojump_clock: trio.abc.Clock
) -> None:
    sleep = RecordingSleep()
    async with client_for(base_url, refresh_token="revoked", sleep=sleep) as client:
        with pytest.raises(ReconnectRequiredError, match="invalid_grant"):
            await client.list_reviews_page(ACCOUNT, LOCATION)
    stats = await sandbox_get(base_url, "/_sandbox/stats")
    assert stats["requests"] == {"token": 1, "stats": 1}
    assert sleep.delays == []


async def test_revoked_grant_requires_reconnect(
    base_url: str, autojump_clock: trio.abc.Clock
) -> None:
    await sandbox_post(base_url, "/_sandbox/auth", {"refresh_token_valid": False})
    async with client_for(base_url) as client:
        with pytest.raises(ReconnectRequiredError):
            await client.list_reviews_page(ACCOUNT, LOCATION)


async def test_wrong_client_secret_not_retried(
    base_url: str, autojump_clock: trio.abc.Clock
) -> None:
    client = GoogleClient(
        config_for(base_url), client_secret="wrong", refresh_token=SANDBOX_REFRESH_TOKEN
    )
    async with client:
        with pytest.raises(PlatformError, match="client_id and client_secret") as caught:
            await client.list_reviews_page(ACCOUNT, LOCATION)
    assert caught.value.retryable is False
    assert not isinstance(caught.value, ReconnectRequiredError)


# Listing.


async def test_all_reviews_equal_truth(base_url: str, autojump_clock: trio.abc.Clock) -> None:
    async with client_for(base_url) as client:
        main = await client.list_all_reviews(ACCOUNT, LOCATION)
        studio = await client.list_all_reviews(ACCOUNT, STUDIO)
    truth = await sandbox_get(base_url, "/_sandbox/truth")
    assert by_id(main.reviews) == live_truth(truth, PROFILE)
    assert by_id(studio.reviews) == live_truth(truth, f"{ACCOUNT}/{STUDIO}")
    assert main.complete is True
    assert main.pages == 3
    assert main.total_review_count == 120


async def test_listing_after_script_equals_truth(
    base_url: str, autojump_clock: trio.abc.Clock
) -> None:
    # Edits, replies, new reviews and deletions all happen within 20 s.
    await trio.sleep(25.0)
    async with client_for(base_url) as client:
        listing = await client.list_all_reviews(ACCOUNT, LOCATION, page_size=20)
    truth = await sandbox_get(base_url, "/_sandbox/truth")
    assert truth["events_pending"] == 0
    assert by_id(listing.reviews) == live_truth(truth, PROFILE)


async def test_small_pages_follow_tokens(base_url: str, autojump_clock: trio.abc.Clock) -> None:
    async with client_for(base_url) as client:
        listing = await client.list_all_reviews(ACCOUNT, STUDIO, page_size=7)
    assert listing.pages == 6
    assert len(listing.reviews) == 40


async def test_page_limit_marks_incomplete(base_url: str, autojump_clock: trio.abc.Clock) -> None:
    async with client_for(base_url) as client:
        listing = await client.list_all_reviews(ACCOUNT, LOCATION, page_size=10, max_pages=2)
    assert listing.complete is False
    assert len(listing.reviews) == 20


async def test_zero_max_pages_rejected() -> None:
    client = GoogleClient(config_for("http://127.0.0.1:9"), client_secret="s", refresh_token="t")
    async with client:
        with pytest.raises(ValueError, match="max_pages 0"):
            await client.list_all_reviews(ACCOUNT, LOCATION, max_pages=0)


async def test_duplicate_review_ids_removed(base_url: str, autojump_clock: trio.abc.Clock) -> None:
    await sandbox_post(base_url, "/_sandbox/faults", {"duplicate_rate": 1.0})
    async with client_for(base_url) as client:
        listing = await client.list_all_reviews(ACCOUNT, LOCATION)
    truth = await sandbox_get(base_url, "/_sandbox/truth")
    assert len(listing.duplicate_ids) == 3
    assert by_id(listing.reviews) == live_truth(truth, PROFILE)


async def test_get_review_matches_truth(base_url: str, autojump_clock: trio.abc.Clock) -> None:
    expected = live_truth(await sandbox_get(base_url, "/_sandbox/truth"), PROFILE)[0]
    async with client_for(base_url) as client:
        review = await client.get_review(ACCOUNT, LOCATION, expected.review_id)
    assert review == expected


async def test_deleted_review_not_found(base_url: str, autojump_clock: trio.abc.Clock) -> None:
    world = GoogleWorld(WorldOptions(seed=2))
    deletion = next(event for event in world.script if event.kind == "delete")
    account, _, location = deletion.profile.rpartition("/locations/")
    await trio.sleep(deletion.at + 0.5)
    async with client_for(base_url) as client:
        with pytest.raises(PlatformError) as caught:
            await client.get_review(account, f"locations/{location}", deletion.review_id)
    assert caught.value.status == 404
    assert caught.value.retryable is False


# Replies.


async def test_reply_posted_to_sandbox(base_url: str, autojump_clock: trio.abc.Clock) -> None:
    target = live_truth(await sandbox_get(base_url, "/_sandbox/truth"), PROFILE)[3]
    async with client_for(base_url) as client:
        posted = await client.reply(ACCOUNT, LOCATION, target.review_id, "Thank you, Ana!")
        review = await client.get_review(ACCOUNT, LOCATION, target.review_id)
    assert posted.text == "Thank you, Ana!"
    assert posted.updated_at is not None
    assert review.reply_text == "Thank you, Ana!"


@pytest.mark.parametrize("text", ["", "   ", "x" * 4097, "é" * 2049])
async def test_invalid_reply_text_rejected(text: str) -> None:
    client = GoogleClient(config_for("http://127.0.0.1:9"), client_secret="s", refresh_token="t")
    async with client:
        with pytest.raises(ValueError, match="invalid reply"):
            await client.reply(ACCOUNT, LOCATION, "r1", text)


async def test_review_id_with_slash_rejected() -> None:
    client = GoogleClient(config_for("http://127.0.0.1:9"), client_secret="s", refresh_token="t")
    async with client:
        with pytest.raises(ValueError, match="invalid Google review id"):
            await client.reply(ACCOUNT, LOCATION, "r1/../../x", "Thanks")


# Errors and retries.


async def test_retry_after_honoured(base_url: str, autojump_clock: trio.abc.Clock) -> None:
    await sandbox_post(base_url, "/_sandbox/faults", {"next_statuses": [429], "retry_after": 7})
    sleep = RecordingSleep()
    async with client_for(base_url, sleep=sleep) as client:
        page = await client.list_reviews_page(ACCOUNT, LOCATION)
    assert len(page.reviews) == 50
    assert sleep.delays == [7.0]


async def test_long_retry_after_left_to_caller(
    base_url: str, autojump_clock: trio.abc.Clock
) -> None:
    await sandbox_post(base_url, "/_sandbox/faults", {"next_statuses": [429], "retry_after": 600})
    sleep = RecordingSleep()
    async with client_for(base_url, sleep=sleep) as client:
        with pytest.raises(PlatformError) as caught:
            await client.list_reviews_page(ACCOUNT, LOCATION)
    assert caught.value.status == 429
    assert caught.value.retry_after == 600.0
    assert caught.value.retryable is True
    assert sleep.delays == []


async def test_server_errors_retried_with_jitter(
    base_url: str, autojump_clock: trio.abc.Clock
) -> None:
    await sandbox_post(base_url, "/_sandbox/faults", {"next_statuses": [500, 503]})
    sleep = RecordingSleep()
    async with client_for(base_url, sleep=sleep) as client:
        page = await client.list_reviews_page(ACCOUNT, LOCATION)
        retries = client.statistics().retries
    assert len(page.reviews) == 50
    assert retries == 2
    assert 0.0 <= sleep.delays[0] <= 0.5
    assert 0.0 <= sleep.delays[1] <= 1.0


async def test_retries_stop_after_three_attempts(
    base_url: str, autojump_clock: trio.abc.Clock
) -> None:
    await sandbox_post(base_url, "/_sandbox/faults", {"next_statuses": [502, 502, 502, 502]})
    async with client_for(base_url) as client:
        with pytest.raises(PlatformError, match="HTTP 502") as caught:
            await client.list_reviews_page(ACCOUNT, LOCATION)
    stats = await sandbox_get(base_url, "/_sandbox/stats")
    assert caught.value.retryable is True
    assert stats["requests"]["reviews.list"] == 3


async def test_unknown_location_not_retried(base_url: str, autojump_clock: trio.abc.Clock) -> None:
    sleep = RecordingSleep()
    async with client_for(base_url, sleep=sleep) as client:
        with pytest.raises(PlatformError, match="HTTP 404") as caught:
            await client.list_reviews_page(ACCOUNT, "locations/9999")
    stats = await sandbox_get(base_url, "/_sandbox/stats")
    assert caught.value.retryable is False
    assert caught.value.status == 404
    assert "Requested entity was not found" in str(caught.value)
    assert stats["requests"]["reviews.list"] == 1
    assert sleep.delays == []


async def test_malformed_body_names_problem(base_url: str, autojump_clock: trio.abc.Clock) -> None:
    await sandbox_post(base_url, "/_sandbox/faults", {"malformed_rate": 1.0})
    async with client_for(base_url) as client:
        with pytest.raises(PlatformError, match=r"\$\.reviews\[0\]\.reviewId") as caught:
            await client.list_reviews_page(ACCOUNT, LOCATION)
    assert caught.value.retryable is True


async def test_malformed_body_retried_then_parsed(
    base_url: str, autojump_clock: trio.abc.Clock
) -> None:
    await sandbox_post(base_url, "/_sandbox/faults", {"malformed_rate": 1.0})
    sleep = RecordingSleep()

    async def heal(seconds: float) -> None:
        await sandbox_post(base_url, "/_sandbox/faults", {"malformed_rate": 0.0})
        await sleep(seconds)

    client = GoogleClient(
        config_for(base_url),
        client_secret=SANDBOX_CLIENT_SECRET,
        refresh_token=SANDBOX_REFRESH_TOKEN,
        sleep=heal,
    )
    async with client:
        page = await client.list_reviews_page(ACCOUNT, LOCATION)
    assert len(page.reviews) == 50
    assert len(sleep.delays) == 1


async def test_timeout_is_retryable(base_url: str, autojump_clock: trio.abc.Clock) -> None:
    await sandbox_post(base_url, "/_sandbox/faults", {"latency": 60.0})
    async with client_for(base_url, request_timeout=2.0) as client:
        with pytest.raises(PlatformError, match=r"timed out after 2\.0 s") as caught:
            await client.list_reviews_page(ACCOUNT, LOCATION)
        retries = client.statistics().retries
    assert caught.value.retryable is True
    assert retries == 2


async def test_refused_connection_is_retryable(autojump_clock: trio.abc.Clock) -> None:
    # A port that was just free: nothing listens on it.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleep = RecordingSleep()
    async with client_for(f"http://127.0.0.1:{port}", sleep=sleep) as client:
        with pytest.raises(PlatformError, match="ConnectError") as caught:
            await client.list_reviews_page(ACCOUNT, LOCATION)
    assert caught.value.retryable is True
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert len(sleep.delays) == 2


async def test_requests_counted_in_metrics(base_url: str, autojump_clock: trio.abc.Clock) -> None:
    ok_before = requests_total("ok")
    retryable_before = requests_total("retryable")
    await sandbox_post(base_url, "/_sandbox/faults", {"next_statuses": [500]})
    async with client_for(base_url) as client:
        await client.list_reviews_page(ACCOUNT, LOCATION)
    # One token request and one listing succeeded; one listing got a 500.
    assert requests_total("ok") - ok_before == 2
    assert requests_total("retryable") - retryable_before == 1


async def test_custom_retry_policy_applies(base_url: str, autojump_clock: trio.abc.Clock) -> None:
    await sandbox_post(base_url, "/_sandbox/faults", {"next_statuses": [500, 500]})
    client = GoogleClient(
        config_for(base_url),
        client_secret=SANDBOX_CLIENT_SECRET,
        refresh_token=SANDBOX_REFRESH_TOKEN,
        retry=RetryConfig(max_attempts=2),
    )
    async with client:
        with pytest.raises(PlatformError, match="HTTP 500"):
            await client.list_reviews_page(ACCOUNT, LOCATION)


def test_repr_and_statistics_start_empty() -> None:
    client = GoogleClient(config_for("http://127.0.0.1:9"), client_secret="s", refresh_token="t")
    statistics = client.statistics()
    assert "token=none" in repr(client)
    assert statistics.requests == 0
    assert statistics.token_valid_for is None
