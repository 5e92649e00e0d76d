"""Sandbox faults on every API platform: resets, 5xx, 429, timeouts and page loops.

Each fault class runs against each platform it applies to, through the real
connector and, for resets, the real actor and journal.  The per-platform
tests of malformed bodies, missing fields, expired tokens and cursor loops
live beside each connector's own tests.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from plaudit.actors.base import Actor
from plaudit.actors.google import GoogleActor
from plaudit.actors.listing import ListingActor
from plaudit.actors.sources import FacebookSource, TrustpilotSource, YelpSource
from plaudit.config.model import (
    FacebookConfig,
    FacebookPage,
    GoogleConfig,
    GoogleLocation,
    RetryConfig,
    TrustpilotBusinessUnit,
    TrustpilotConfig,
    YelpBusiness,
    YelpConfig,
)
from plaudit.connectors.facebook import facebook_client
from plaudit.connectors.google import GoogleClient
from plaudit.connectors.trustpilot import parse_reviews, trustpilot_client
from plaudit.connectors.yelp import yelp_client
from plaudit.daemon.children import ChildContext
from plaudit.errors import PlatformError
from plaudit.journal import AsyncJournal, Journal
from plaudit.reliability.health import HealthPolicy
from plaudit.reliability.monitor import PlatformHealthMonitor
from plaudit.reviews.model import Review
from plaudit.reviews.store import load_reviews
from plaudit.sandbox import SandboxOptions, serve_sandbox
from plaudit.sandbox import app as google_sandbox
from plaudit.sandbox import facebook as fb_sandbox
from plaudit.sandbox import trustpilot as tp_sandbox
from plaudit.sandbox import yelp as yelp_sandbox
from tests.support import query, wait_for

PLATFORMS = ("google", "facebook", "trustpilot", "yelp")
GOOGLE_ACCOUNT = "accounts/1001"
GOOGLE_LOCATION = "locations/2001"


@dataclass(frozen=True)
class Target:
    """One platform of the sandbox: its profile, fault route and client settings."""

    platform: str
    base_url: str

    @property
    def profile(self) -> str:
        profiles = {
            "google": f"{GOOGLE_ACCOUNT}/{GOOGLE_LOCATION}",
            "facebook": fb_sandbox.PAGE_IDS[0],
            "trustpilot": tp_sandbox.UNIT_IDS[0],
            "yelp": yelp_sandbox.BUSINESS_IDS[0],
        }
        return profiles[self.platform]

    @property
    def faults_path(self) -> str:
        return (
            "/_sandbox/faults" if self.platform == "google" else f"/_sandbox/{self.platform}/faults"
        )

    async def set_faults(self, **changes: Any) -> None:
        async with httpx.AsyncClient() as http:
            response = await http.post(f"{self.base_url}{self.faults_path}", json=changes)
            response.raise_for_status()

    def google_config(self, retry: RetryConfig, timeout: float) -> GoogleConfig:
        return GoogleConfig(
            api_base=f"{self.base_url}/google/v4",
            token_url=f"{self.base_url}/google/oauth2/token",
            client_id=google_sandbox.SANDBOX_CLIENT_ID,
            client_secret=google_sandbox.SANDBOX_CLIENT_SECRET,
            refresh_token=google_sandbox.SANDBOX_REFRESH_TOKEN,
            request_timeout=timeout,
            retry=retry,
            locations=[GoogleLocation(account=GOOGLE_ACCOUNT, location=GOOGLE_LOCATION)],
        )

    def listing_config(
        self, retry: RetryConfig, timeout: float
    ) -> FacebookConfig | TrustpilotConfig | YelpConfig:
        base = self.base_url
        if self.platform == "facebook":
            page = FacebookPage(page_id=self.profile, access_token=fb_sandbox.SANDBOX_PAGE_TOKEN)
            return FacebookConfig(
                api_base=f"{base}/facebook/v19.0",
                pages=[page],
                request_timeout=timeout,
                retry=retry,
            )
        if self.platform == "trustpilot":
            return TrustpilotConfig(
                api_base=f"{base}/trustpilot/v1",
                token_url=f"{base}/trustpilot/v1/oauth/oauth-business-users-for-applications/accesstoken",
                api_key=tp_sandbox.SANDBOX_API_KEY,
                api_secret=tp_sandbox.SANDBOX_API_SECRET,
                business_units=[TrustpilotBusinessUnit(business_unit_id=self.profile)],
                request_timeout=timeout,
                retry=retry,
            )
        return YelpConfig(
            api_base=f"{base}/yelp/v3",
            api_key=yelp_sandbox.SANDBOX_API_KEY,
            businesses=[YelpBusiness(business_id=self.profile)],
            request_timeout=timeout,
            retry=retry,
        )

    async def list_reviews(
        self, *, attempts: int = 3, timeout: float = 5.0
    ) -> tuple[list[Review], int]:
        """List the profile once through the connector; return the reviews and the retries."""
        retry = RetryConfig(max_attempts=attempts, backoff_initial=0.1, backoff_max=0.5)
        options: dict[str, Any] = {"rng": random.Random(3)}
        if self.platform == "google":
            config = self.google_config(retry, timeout)
            google = GoogleClient(
                config,
                client_secret=config.client_secret,
                refresh_token=config.refresh_token,
                **options,
            )
            async with google:
                listing = await google.list_all_reviews(GOOGLE_ACCOUNT, GOOGLE_LOCATION)
                return listing.reviews, google.statistics().retries

        settings = self.listing_config(retry, timeout)
        if isinstance(settings, FacebookConfig):
            tokens = {self.profile: fb_sandbox.SANDBOX_PAGE_TOKEN}
            facebook = facebook_client(settings, page_tokens=tokens, **options)
            try:
                ratings = await facebook.list_all_ratings(self.profile)
                return ratings.reviews, facebook.statistics().retries
            finally:
                await facebook.aclose()
        if isinstance(settings, TrustpilotConfig):
            trustpilot = trustpilot_client(settings, api_secret=settings.api_secret, **options)
            try:
                units = await trustpilot.list_all_reviews(self.profile)
                return units.reviews, trustpilot.statistics().retries
            finally:
                await trustpilot.aclose()
        yelp = yelp_client(settings, api_key=settings.api_key, **options)
        try:
            excerpts = await yelp.list_excerpts(self.profile)
            return excerpts.reviews, yelp.statistics().retries
        finally:
            await yelp.aclose()

    def actor(self, journal: AsyncJournal, monitor: PlatformHealthMonitor) -> Actor:
        # One attempt per call, so each fault reaches the job and the health monitor.
        retry = RetryConfig(max_attempts=1)
        if self.platform == "google":
            config = self.google_config(retry, 5.0)

            def client(settings: GoogleConfig) -> GoogleClient:
                return GoogleClient(
                    settings,
                    client_secret=settings.client_secret,
                    refresh_token=settings.refresh_token,
                )

            return GoogleActor(journal, config, client, lease_seconds=30.0, monitor=monitor)

        settings = self.listing_config(retry, 5.0)
        source: FacebookSource | TrustpilotSource | YelpSource
        if isinstance(settings, FacebookConfig):
            tokens = {self.profile: fb_sandbox.SANDBOX_PAGE_TOKEN}
            source = FacebookSource(settings, facebook_client(settings, page_tokens=tokens))
        elif isinstance(settings, TrustpilotConfig):
            units = trustpilot_client(settings, api_secret=settings.api_secret)
            source = TrustpilotSource(settings, units)
        else:
            source = YelpSource(settings, yelp_client(settings, api_key=settings.api_key))
        return ListingActor(
            journal,
            source,
            sync_interval=settings.sync_interval,
            breaker=settings.breaker,
            lease_seconds=30.0,
            monitor=monitor,
        )

    def extra_job(self, name: str) -> dict[str, Any]:
        """Return the enqueue arguments of one more sync of the profile, due now."""
        if self.platform == "google":
            payload: dict[str, Any] = {"account": GOOGLE_ACCOUNT, "location": GOOGLE_LOCATION}
        else:
            payload = {"profile": self.profile}
        kind = f"{self.platform}.sync"
        return {"kind": kind, "owner": self.platform, "key": f"{kind}:{name}", "payload": payload}


@pytest.fixture
async def base_url(nursery: trio.Nursery, autojump_clock: trio.abc.Clock) -> AsyncIterator[str]:
    # No scripted events: every listing of a profile is the same.
    url: str = await nursery.start(serve_sandbox, SandboxOptions(seed=6, script_seconds=0))
    yield url


@pytest.fixture(params=PLATFORMS)
def target(request: pytest.FixtureRequest, base_url: str) -> Target:
    return Target(platform=request.param, base_url=base_url)


def ids(reviews: list[Review]) -> list[str]:
    return sorted(review.review_id for review in reviews)


# Connector level: one call through the in-call retries.


async def test_reset_is_retryable(target: Target) -> None:
    await target.set_faults(reset_rate=1.0)
    with pytest.raises(PlatformError, match="RemoteProtocolError") as caught:
        await target.list_reviews(attempts=1)
    assert caught.value.retryable


REPLY_ROUTES = {
    "google": "reviews.reply",
    "facebook": "fb.comment",
    "trustpilot": "tp.reply",
    # Yelp has no reply route: a name the listing does not have.
    "yelp": "yelp.other",
}


async def test_faults_of_other_route_spare_listing(target: Target) -> None:
    await target.set_faults(reset_rate=1.0, routes=[REPLY_ROUTES[target.platform]])
    listed, retries = await target.list_reviews(attempts=1)
    assert listed
    assert retries == 0


async def test_google_reply_route_faults_alone(base_url: str) -> None:
    target = Target(platform="google", base_url=base_url)
    await target.set_faults(next_resets=1, routes=["reviews.reply"])
    config = target.google_config(RetryConfig(max_attempts=1), 5.0)
    client = GoogleClient(
        config, client_secret=config.client_secret, refresh_token=config.refresh_token
    )
    async with client:
        page = await client.list_reviews_page(GOOGLE_ACCOUNT, GOOGLE_LOCATION)
        review_id = page.reviews[0].review_id
        with pytest.raises(PlatformError, match="RemoteProtocolError"):
            await client.reply(GOOGLE_ACCOUNT, GOOGLE_LOCATION, review_id, "Thank you!")
        posted = await client.reply(GOOGLE_ACCOUNT, GOOGLE_LOCATION, review_id, "Thank you!")
    assert posted.text == "Thank you!"


async def test_resets_retried_then_listed(target: Target) -> None:
    clean, _ = await target.list_reviews()
    await target.set_faults(next_resets=2)
    listed, retries = await target.list_reviews(attempts=3)
    assert ids(listed) == ids(clean)
    assert retries == 2


async def test_server_errors_retried(target: Target) -> None:
    clean, _ = await target.list_reviews()
    await target.set_faults(next_statuses=[503, 500])
    listed, retries = await target.list_reviews(attempts=3)
    assert ids(listed) == ids(clean)
    assert retries == 2


async def test_rate_limit_waits_retry_after(target: Target) -> None:
    await target.set_faults(next_statuses=[429], retry_after=3)
    started = trio.current_time()
    listed, retries = await target.list_reviews(attempts=2)
    assert listed
    assert retries == 1
    assert trio.current_time() - started >= 3


async def test_error_rate_still_lists_everything(target: Target) -> None:
    clean, _ = await target.list_reviews()
    await target.set_faults(error_rate=0.3)
    listed, _ = await target.list_reviews(attempts=10)
    assert ids(listed) == ids(clean)


async def test_latency_below_timeout_only_delays(target: Target) -> None:
    await target.set_faults(latency=2.0)
    started = trio.current_time()
    listed, retries = await target.list_reviews(attempts=1, timeout=5.0)
    assert listed
    assert retries == 0
    assert trio.current_time() - started >= 2.0


async def test_latency_past_timeout_is_retryable(target: Target) -> None:
    await target.set_faults(latency=30.0)
    with pytest.raises(PlatformError, match=r"timed out after 2\.0 s") as caught:
        await target.list_reviews(attempts=1, timeout=2.0)
    assert caught.value.retryable


# Actor level: a reset during a sync leaves the journal as it was.


@pytest.fixture
def journal_file(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "journal.sqlite3"


def snapshot(path: Path, platform: str) -> tuple[list[Review], int]:
    with sqlite3.connect(path) as connection:
        reviews = load_reviews(connection, platform, include_deleted=True)
        events = connection.execute("SELECT count(*) FROM events").fetchone()[0]
    return reviews, int(events)


def kind_states(path: Path, kind: str) -> list[str]:
    return [str(row[0]) for row in query(path, "SELECT state FROM jobs WHERE kind = ?", (kind,))]


def key_states(path: Path, key: str) -> list[str]:
    return [str(row[0]) for row in query(path, "SELECT state FROM jobs WHERE key LIKE ?", (key,))]


async def test_reset_degrades_health_keeps_store(target: Target, journal_file: Path) -> None:
    monitor = PlatformHealthMonitor(policy=HealthPolicy(minimum_jobs=1))
    opened = Journal.open(journal_file, instance="faults-1")
    context = ChildContext("test")
    async with trio.open_nursery() as nursery:
        writer = AsyncJournal(opened)
        await nursery.start(writer.run)
        actor = target.actor(writer, monitor)
        nursery.start_soon(actor.start, context)
        # Real time, because the journal's worker thread rules out the autojump clock.
        await wait_for(
            lambda: "succeeded" in kind_states(journal_file, f"{target.platform}.sync"),
            timeout=60,
            what=f"the first {target.platform} sync",
        )
        before = snapshot(journal_file, target.platform)

        await target.set_faults(reset_rate=1.0)
        await writer.enqueue(**target.extra_job("after-reset"))
        actor.wake()
        await wait_for(
            lambda: key_states(journal_file, "%:after-reset") == ["failed"],
            timeout=60,
            what="the sync after the reset to fail",
        )
        context.stop_requested.set()
        actor.wake()
        await trio.sleep(1.0)
        nursery.cancel_scope.cancel()
    opened.close()

    assert before[0], "the first sync stored nothing"
    assert snapshot(journal_file, target.platform) == before
    with sqlite3.connect(journal_file) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        state = connection.execute(
            "SELECT state, last_error FROM jobs WHERE key LIKE '%:after-reset'"
        ).fetchone()
    assert state[0] == "failed"
    assert "RemoteProtocolError" in state[1]

    health = next(
        view
        for view in monitor.states()
        if (view["platform"], view["profile"]) == (target.platform, target.profile)
    )
    assert health["state"] == "degraded"
    assert "RemoteProtocolError" in (health["last_error"] or "")
    assert health["cause"]


# Google's page-token loop; the Facebook and Trustpilot loops are tested with
# their connectors.


async def test_google_page_token_loop_marks_incomplete(base_url: str) -> None:
    target = Target(platform="google", base_url=base_url)
    await target.set_faults(page_token_loop=True)
    config = target.google_config(RetryConfig(), 5.0)
    client = GoogleClient(
        config, client_secret=config.client_secret, refresh_token=config.refresh_token
    )
    async with client:
        listing = await client.list_all_reviews(GOOGLE_ACCOUNT, GOOGLE_LOCATION, page_size=20)
    assert not listing.complete
    assert listing.pages == 2
    assert len(listing.reviews) == 40


async def test_google_rating_order_rejected(base_url: str) -> None:
    form = {
        "grant_type": "refresh_token",
        "client_id": google_sandbox.SANDBOX_CLIENT_ID,
        "client_secret": google_sandbox.SANDBOX_CLIENT_SECRET,
        "refresh_token": google_sandbox.SANDBOX_REFRESH_TOKEN,
    }
    url = f"{base_url}/google/v4/{GOOGLE_ACCOUNT}/{GOOGLE_LOCATION}/reviews"
    async with httpx.AsyncClient() as http:
        token = (await http.post(f"{base_url}/google/oauth2/token", data=form)).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        rating = await http.get(url, params={"orderBy": "rating"}, headers=headers)
        update_time = await http.get(url, params={"orderBy": "updateTime desc"}, headers=headers)
    assert rating.status_code == 400
    assert "updateTime desc" in rating.json()["error"]["message"]
    assert update_time.status_code == 200


# Missing fields in Trustpilot's body; the other platforms test theirs beside their parsers.


def test_trustpilot_missing_created_at_names_path() -> None:
    body = {"reviews": [{"id": "60aa01", "stars": 5}]}
    with pytest.raises(PlatformError, match=r"createdAt") as caught:
        parse_reviews(body, unit=tp_sandbox.UNIT_IDS[0])
    assert caught.value.retryable


def test_trustpilot_missing_stars_names_path() -> None:
    body = {"reviews": [{"id": "60aa01", "createdAt": "2024-05-01T10:00:00Z"}]}
    with pytest.raises(PlatformError, match=r"stars") as caught:
        parse_reviews(body, unit=tp_sandbox.UNIT_IDS[0])
    assert caught.value.retryable
