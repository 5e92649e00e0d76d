"""Reconciliation on Facebook, Trustpilot, Yelp and a WeddingWire-family storefront.

The sandbox serves each platform over real loopback HTTP, and its script
creates, edits, replies to and deletes reviews while the virtual clock runs.
After each step one reconciliation lists every profile through the
platform's own connector, confirms deletions with a second listing as the
listing actor does, and stores the result.  The journal must then agree
with the sandbox truth, field by field, as far as the platform publishes
each field.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import httpx
import pytest
import trio
from trio.testing import MockClock

from plaudit.actors.listing import ListingSource
from plaudit.actors.sources import build_sources
from plaudit.config.model import (
    Config,
    FacebookConfig,
    FacebookPage,
    PlatformsConfig,
    TrustpilotBusinessUnit,
    TrustpilotConfig,
    YelpBusiness,
    YelpConfig,
)
from plaudit.connectors.marketplace.fetch import StorefrontFetcher
from plaudit.connectors.marketplace.models import Storefront
from plaudit.connectors.marketplace.sites import Site, get_site
from plaudit.connectors.marketplace.storefront import parse_storefront
from plaudit.connectors.marketplace.sync import plan_snapshot
from plaudit.demo import compare
from plaudit.journal import AsyncJournal, Journal, Tx
from plaudit.reliability.reconcile import ProfileListing, confirmed_listing
from plaudit.reviews.model import Review
from plaudit.reviews.store import apply_snapshot, load_reviews
from plaudit.sandbox import SandboxOptions, serve_sandbox
from plaudit.sandbox import facebook as fb_sandbox
from plaudit.sandbox import trustpilot as tp_sandbox
from plaudit.sandbox import yelp as yelp_sandbox
from plaudit.sandbox.standin import stand_in_truth_reviews

SCRIPT_SECONDS = 40.0
STEP_SECONDS = 2.5
STEPS = int(SCRIPT_SECONDS / STEP_SECONDS) + 2
# Storefronts whose page shows every review: a Hitched page with JSON-LD and
# a Bodas.net page in markup only, with Spanish dates.  The other sandbox
# storefronts are error cases (challenge, redirect, renamed markup) that the
# marketplace tests cover.
STOREFRONTS = {"willow-barn": get_site("hitched"), "finca-olivos": get_site("bodas")}
# The sandbox's first day, which decides the sites' two-year review window.
SANDBOX_DAY = date(2025, 6, 1)
# Sandbox time 0: reviews created or replied to after it came from the script.
SANDBOX_EPOCH = "2025-06-01T12:00:00.000Z"


def config_for(base_url: str) -> Config:
    facebook = FacebookConfig(
        api_base=f"{base_url}/facebook/v19.0",
        pages=[
            FacebookPage(page_id=page, access_token=fb_sandbox.SANDBOX_PAGE_TOKEN)
            for page in fb_sandbox.PAGE_IDS
        ],
    )
    trustpilot = TrustpilotConfig(
        api_base=f"{base_url}/trustpilot/v1",
        token_url=f"{base_url}/trustpilot/v1/oauth/oauth-business-users-for-applications/accesstoken",
        api_key=tp_sandbox.SANDBOX_API_KEY,
        api_secret=tp_sandbox.SANDBOX_API_SECRET,
        page_size=10,
        business_units=[TrustpilotBusinessUnit(business_unit_id=u) for u in tp_sandbox.UNIT_IDS],
    )
    yelp = YelpConfig(
        api_base=f"{base_url}/yelp/v3",
        api_key=yelp_sandbox.SANDBOX_API_KEY,
        businesses=[YelpBusiness(business_id=b) for b in yelp_sandbox.BUSINESS_IDS],
    )
    return Config(platforms=PlatformsConfig(facebook=facebook, trustpilot=trustpilot, yelp=yelp))


@pytest.fixture
async def base_url(nursery: trio.Nursery, mock_clock: MockClock) -> AsyncIterator[str]:
    options = SandboxOptions(seed=21, script_seconds=SCRIPT_SECONDS)
    url: str = await nursery.start(serve_sandbox, options)
    yield url


@pytest.fixture
async def journal(sync_journal: Journal) -> AsyncIterator[AsyncJournal]:
    async with trio.open_nursery() as nursery:
        # No grouping window: the test's clock moves only when the test moves it.
        async_journal = AsyncJournal(sync_journal, window=0)
        await nursery.start(async_journal.run)
        yield async_journal
        nursery.cancel_scope.cancel()


async def reconcile_source(journal: AsyncJournal, source: ListingSource) -> None:
    """List every profile of the source, confirm deletions, and store the listing."""
    for profile in source.profiles():

        async def list_once(profile: str = profile) -> ProfileListing:
            listing = await source.list_profile(profile)
            return ProfileListing(reviews=listing.reviews, complete=listing.complete)

        confirmed = await confirmed_listing(
            journal, platform=source.platform, profile=profile, list_profile=list_once
        )
        await journal.transaction(
            functools.partial(
                apply_snapshot,
                platform=source.platform,
                profile=profile,
                reviews=confirmed.reviews,
                complete=confirmed.complete,
            )
        )


async def truth_of(base_url: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{base_url}/_sandbox/truth")
    response.raise_for_status()
    truth: dict[str, Any] = response.json()
    return truth


def stored(store: Journal, platform: str) -> list[Review]:
    with store.transaction() as tx:
        return [r for r in load_reviews(tx, include_deleted=True) if r.platform == platform]


def differences(journal_reviews: list[Review], truth: list[Review]) -> list[str]:
    return [f"{item.review_id}: {item.problem}" for item in compare(journal_reviews, truth)]


def exercised(truth: list[Review], epoch_iso: str) -> dict[str, int]:
    """Count the scripted changes visible in the truth: each kind must have happened."""
    return {
        "create": sum(review.created_at >= epoch_iso for review in truth),
        "edit": sum(review.updated_at > review.created_at for review in truth),
        "reply": sum((review.reply_updated_at or "") >= epoch_iso for review in truth),
        "delete": sum(review.deleted_at is not None for review in truth),
    }


@pytest.mark.parametrize("platform", ["facebook", "trustpilot"])
async def test_api_platform_agrees_each_step(
    platform: str,
    base_url: str,
    journal: AsyncJournal,
    sync_journal: Journal,
    mock_clock: MockClock,
) -> None:
    source, _, _ = build_sources(config_for(base_url))[platform]
    for step in range(STEPS):
        mock_clock.jump(STEP_SECONDS)
        await reconcile_source(journal, source)
        truth = stand_in_truth_reviews(await truth_of(base_url), platform)
        assert differences(stored(sync_journal, platform), truth) == [], f"after step {step}"
    await source.aclose()

    counts = exercised(truth, SANDBOX_EPOCH)
    for kind, count in counts.items():
        assert count > 0, f"the script made no {kind} on {platform}"


def yelp_truth(truth: dict[str, Any]) -> tuple[list[Review], set[str]]:
    """Return Yelp's listed reviews and the ids of those the API shows now."""
    visible = {
        entry["review_id"]
        for profile in truth["yelp"]["profiles"]
        for entry in profile["reviews"]
        if entry["visible"]
    }
    return stand_in_truth_reviews(truth, "yelp"), visible


async def test_yelp_agrees_on_visible_excerpts(
    base_url: str, journal: AsyncJournal, sync_journal: Journal, mock_clock: MockClock
) -> None:
    source, _, _ = build_sources(config_for(base_url))["yelp"]
    seen: set[str] = set()
    for step in range(STEPS):
        mock_clock.jump(STEP_SECONDS)
        await reconcile_source(journal, source)
        listed, visible = yelp_truth(await truth_of(base_url))
        seen |= visible
        journal_reviews = stored(sync_journal, "yelp")

        # The three newest excerpts agree exactly with the platform.
        now_shown = [review for review in listed if review.review_id in visible]
        mine = [review for review in journal_reviews if review.review_id in visible]
        assert differences(mine, now_shown) == [], f"after step {step}"
        # Yelp never lists every review, so an excerpt that leaves the three
        # newest is kept as last seen, never taken as deleted.
        assert {review.review_id for review in journal_reviews} == seen
        assert all(review.deleted_at is None for review in journal_reviews)
    await source.aclose()

    assert len(seen) > len(yelp_sandbox.BUSINESS_IDS) * yelp_sandbox.EXCERPTS


def storefront_truth(truth: dict[str, Any]) -> list[Review]:
    """Return the storefront reviews as the page publishes them: dates by day, no edit times."""
    reviews = []
    for entry in truth["marketplace"]["profiles"]:
        site = STOREFRONTS.get(entry["profile"])
        if site is None:
            continue
        for review in entry["reviews"]:
            day = review["created_at"][:10] + "T00:00:00.000Z"
            # Only the markup shows the vendor's reply; the JSON-LD review has no field for it.
            reply = review["reply_text"] if entry["profile"] == "finca-olivos" else None
            reviews.append(
                Review(
                    platform=site.name,
                    profile=entry["profile"],
                    review_id=review["review_id"],
                    stars=review["stars"],
                    text=review["text"],
                    author=review["author"],
                    created_at=day,
                    updated_at=day,
                    reply_text=reply,
                    reply_updated_at=day if reply else None,
                    deleted_at=review["deleted_at"],
                )
            )
    return reviews


async def reconcile_storefronts(
    fetcher: StorefrontFetcher, journal: AsyncJournal, base_url: str
) -> int:
    """Fetch each storefront, store what changed, and return how many pages were fetched."""
    fetched = 0
    for profile, site in STOREFRONTS.items():
        url = f"{base_url}/marketplace/{site.name}/{profile}.htm"
        result = await fetcher.fetch(url, site=site, profile=profile)
        if result.html is None:
            # 304 Not Modified: the stored reviews are still current.
            assert result.outcome == "not_modified"
            continue

        fetched += 1
        page = parse_storefront(result.html, site=site, profile=profile)

        def record(
            tx: Tx, page: Storefront = page, profile: str = profile, site: Site = site
        ) -> None:
            plan = plan_snapshot(
                page,
                site=site,
                profile=profile,
                stored=load_reviews(tx, site.name, profile),
                today=SANDBOX_DAY,
                now=0.0,
            )
            apply_snapshot(
                tx,
                platform=plan.platform,
                profile=plan.profile,
                reviews=plan.reviews,
                complete=plan.complete,
            )

        await journal.transaction(record)
    return fetched


async def test_storefront_agrees_each_step(
    base_url: str, journal: AsyncJournal, sync_journal: Journal, mock_clock: MockClock
) -> None:
    async with httpx.AsyncClient(timeout=30.0) as client:
        fetcher = StorefrontFetcher(client, contact="ops@example.com", min_interval=STEP_SECONDS)
        fetched = 0
        for step in range(STEPS):
            mock_clock.jump(STEP_SECONDS)
            fetched += await reconcile_storefronts(fetcher, journal, base_url)
            truth = storefront_truth(await truth_of(base_url))
            journal_reviews = stored(sync_journal, "hitched") + stored(sync_journal, "bodas")
            assert differences(journal_reviews, truth) == [], f"after step {step}"

    counts = exercised(truth, SANDBOX_EPOCH[:10])
    assert counts["create"] > 0
    assert counts["delete"] > 0
    assert any(review.reply_text for review in truth)
    # Some steps changed nothing on a page, and the conditional request saved the fetch.
    assert fetched < STEPS * len(STOREFRONTS)
