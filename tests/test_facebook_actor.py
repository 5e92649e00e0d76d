"""The listing actor with the Facebook, Trustpilot and Yelp sources, on a journal and sandbox."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import msgspec
import pytest
import trio

from plaudit.actors.listing import (
    UNSUPPORTED,
    Listing,
    ListingActor,
    Record,
    Stop,
    Synced,
    Unsupported,
    decide,
    sync_job,
)
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
from plaudit.daemon.children import ChildContext
from plaudit.journal import AsyncJournal
from plaudit.reviews.model import Review
from plaudit.reviews.store import load_reviews
from plaudit.sandbox import SandboxOptions, serve_sandbox
from plaudit.sandbox import facebook as fb_sandbox
from plaudit.sandbox import trustpilot as tp_sandbox
from plaudit.sandbox import yelp as yelp_sandbox
from plaudit.sandbox.standin import stand_in_truth_reviews
from tests.support import wait_for


def config_for(base_url: str, *, graph_version: str = "v19.0") -> Config:
    facebook = FacebookConfig(
        api_base=f"{base_url}/facebook/{graph_version}",
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
        business_units=[TrustpilotBusinessUnit(business_unit_id=u) for u in tp_sandbox.UNIT_IDS],
    )
    yelp = YelpConfig(
        api_base=f"{base_url}/yelp/v3",
        api_key=yelp_sandbox.SANDBOX_API_KEY,
        businesses=[YelpBusiness(business_id=b) for b in yelp_sandbox.BUSINESS_IDS],
    )
    platforms = PlatformsConfig(facebook=facebook, trustpilot=trustpilot, yelp=yelp)
    return Config(platforms=platforms)


@pytest.fixture
async def base_url(nursery: trio.Nursery) -> AsyncIterator[str]:
    # No scripted events, so the truth read after the run is what the run listed.
    url: str = await nursery.start(serve_sandbox, SandboxOptions(seed=3, script_seconds=0))
    yield url


# Profiles per platform in config_for, each synced once when its actor starts.
PROFILES = {
    "facebook": len(fb_sandbox.PAGE_IDS),
    "trustpilot": len(tp_sandbox.UNIT_IDS),
    "yelp": len(yelp_sandbox.BUSINESS_IDS),
}


async def run_actors(
    actors: list[ListingActor], until: Callable[[], bool], *, what: str, settle: float = 0.0
) -> None:
    """Run the actors until ``until()`` holds, then ``settle`` more seconds, then stop them.

    The wait is in real time because the journal's worker thread rules out
    trio's autojump clock.
    """
    context = ChildContext("test")
    async with trio.open_nursery() as nursery:
        for actor in actors:
            nursery.start_soon(actor.start, context)
        await wait_for(until, timeout=60, what=what)
        await trio.sleep(settle)
        context.stop_requested.set()


def synced(path: Path, *platforms: str) -> bool:
    """Return whether every profile of ``platforms`` has had a successful sync."""
    return all(
        job_states(path, platform).count("succeeded") >= PROFILES[platform]
        for platform in platforms
    )


def job_states(path: Path, owner: str) -> list[str]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT state FROM jobs WHERE owner = ?", (owner,)).fetchall()
    return [row[0] for row in rows]


def by_id(reviews: list[Review]) -> list[Review]:
    return sorted(reviews, key=lambda review: review.review_id)


def listing() -> Listing:
    return Listing(reviews=[], complete=True)


def test_decide_records_and_schedules_next_slot() -> None:
    action = decide("yelp", ["b1"], Synced(profile="b1", listing=listing()), now=650, interval=300)
    assert isinstance(action, Record)
    assert action.next_job == sync_job("yelp", "b1", slot=3, interval=300)


def test_decide_drops_unconfigured_profile() -> None:
    action = decide("yelp", ["b2"], Synced(profile="b1", listing=listing()), now=0, interval=300)
    assert isinstance(action, Record)
    assert action.next_job is None


def test_decide_stops_on_unsupported_version() -> None:
    action = decide("facebook", ["1"], Unsupported(error="code 12"), now=0, interval=300)
    assert action == Stop(error="code 12")


async def test_sync_stores_truth(base_url: str, journal: AsyncJournal, tmp_path: Path) -> None:
    sources = build_sources(config_for(base_url))
    actors = [
        ListingActor(journal, source, sync_interval=300.0, breaker=breaker, lease_seconds=30.0)
        for source, _, breaker in sources.values()
    ]
    path = tmp_path / "journal.sqlite3"
    await run_actors(actors, lambda: synced(path, *PROFILES), what="a sync of every profile")
    async with httpx.AsyncClient() as http:
        truth = (await http.get(f"{base_url}/_sandbox/truth")).json()

    with sqlite3.connect(tmp_path / "journal.sqlite3") as connection:
        for platform in ("facebook", "trustpilot"):
            stored = load_reviews(connection, platform)
            expected = [r for r in stand_in_truth_reviews(truth, platform) if r.deleted_at is None]
            assert by_id(stored) == by_id(expected), platform
        yelp = load_reviews(connection, "yelp")
    visible = {
        entry["review_id"]
        for profile in truth["yelp"]["profiles"]
        for entry in profile["reviews"]
        if entry["visible"]
    }
    assert {review.review_id for review in yelp} == visible
    assert all(actor.health == "healthy" for actor in actors)


async def test_unsupported_version_stops_syncs(
    base_url: str, journal: AsyncJournal, tmp_path: Path
) -> None:
    config = config_for(base_url, graph_version="v22.0")
    source, _, breaker = build_sources(config)["facebook"]
    actor = ListingActor(journal, source, sync_interval=1.0, breaker=breaker, lease_seconds=30.0)
    # Five more sync intervals show that no sync follows the first response.
    await run_actors(
        [actor], lambda: actor.health == UNSUPPORTED, what="the version rejected", settle=5.0
    )
    states = job_states(tmp_path / "journal.sqlite3", "facebook")
    assert actor.health == UNSUPPORTED
    assert actor.unsupported is not None
    assert "Graph API version" in actor.unsupported
    assert "dead" in states
    assert "failed" not in states
    # One sync per Page and none after the first response.
    assert len(states) == len(fb_sandbox.PAGE_IDS)


async def test_one_failing_platform_spares_others(
    base_url: str, journal: AsyncJournal, tmp_path: Path
) -> None:
    config = config_for(base_url)
    trustpilot = config.platforms.trustpilot
    assert trustpilot is not None
    broken = msgspec.structs.replace(trustpilot, api_secret="revoked")
    config = msgspec.structs.replace(
        config, platforms=msgspec.structs.replace(config.platforms, trustpilot=broken)
    )
    sources = build_sources(config)
    actors = {
        name: ListingActor(
            journal, source, sync_interval=300.0, breaker=breaker, lease_seconds=30.0
        )
        for name, (source, _, breaker) in sources.items()
    }
    path = tmp_path / "journal.sqlite3"
    await run_actors(
        list(actors.values()),
        lambda: (
            actors["trustpilot"].health == "reconnect-required" and synced(path, "facebook", "yelp")
        ),
        what="the Trustpilot failure and the other platforms' syncs",
    )

    assert actors["trustpilot"].health == "reconnect-required"
    assert actors["facebook"].health == "healthy"
    assert actors["yelp"].health == "healthy"
    with sqlite3.connect(tmp_path / "journal.sqlite3") as connection:
        assert load_reviews(connection, "trustpilot") == []
        assert load_reviews(connection, "facebook")
        assert load_reviews(connection, "yelp")
