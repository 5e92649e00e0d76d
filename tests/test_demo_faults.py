"""The demo's fault classes: queued sandbox faults, their causes, and the fault script."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest
import trio
from prometheus_client import CollectorRegistry, Counter, generate_latest

from plaudit.connectors.retry_causes import RETRY_CAUSES, retry_cause
from plaudit.errors import PlatformError
from plaudit.sandbox import SandboxOptions, serve_sandbox
from plaudit.sandbox import yelp as yelp_sandbox
from plaudit.sandbox.app import ConnectionResetFault, Request, SandboxApp
from plaudit.sandbox.demo_faults import (
    LISTING_ROUTES,
    PLATFORMS,
    FaultScript,
    fault_statistics,
    platform_faults_summary,
    reliability_config,
    retries_by_cause,
)
from plaudit.sandbox.faults import Fault, FaultInjector, FaultSettings
from plaudit.sandbox.world import GoogleWorld, WorldOptions
from plaudit.sandbox.yelp import YelpStandIn
from tests.test_platform_faults import Target

# Queued faults, one request each.


def test_queued_faults_follow_statuses_and_resets() -> None:
    injector = FaultInjector(
        FaultSettings(
            next_statuses=(500,),
            next_resets=1,
            next_faults=("malformed", "missing_fields", "timeout"),
            timeout_delay=9.0,
        )
    )
    decided = [injector.decide(listing=True) for _ in range(6)]
    assert decided[0].status == 500
    assert decided[1].reset
    assert decided[2].malformed
    assert decided[3].missing_fields
    assert decided[4].latency == 9.0
    assert decided[5] == Fault()
    assert injector.counts["missing_fields"] == 1
    assert injector.counts["timeout"] == 1
    assert injector.statistics()["queued_faults"] == []


def test_queued_faults_replaced_by_update() -> None:
    injector = FaultInjector(FaultSettings(next_faults=("malformed", "malformed")))
    injector.update({"next_faults": ["timeout"]})
    assert injector.statistics()["queued_faults"] == ["timeout"]


def test_unknown_queued_fault_rejected() -> None:
    injector = FaultInjector()
    with pytest.raises(msgspec.ValidationError, match="next_faults"):
        injector.update({"next_faults": ["flood"]})


# A reply and the review's update time.


def test_reply_keeps_review_update_time() -> None:
    world = GoogleWorld(WorldOptions(seed=7, script_seconds=30))
    replies = [event for event in world.script if event.kind == "reply"]
    assert replies, "the script has no reply; pick another seed"
    before = {
        event.review_id: world.locations[event.profile].reviews[event.review_id].update_time
        for event in replies
        if event.review_id in world.locations[event.profile].reviews
    }
    world.advance_to(30.0)
    for review_id, update_time in before.items():
        review = next(
            location.reviews[review_id]
            for location in world.locations.values()
            if review_id in location.reviews
        )
        assert review.reply is not None
        assert review.update_time == update_time


def test_posted_reply_keeps_review_update_time() -> None:
    world = GoogleWorld(WorldOptions(seed=3, script_seconds=0))
    location = world.locations["accounts/1001/locations/2001"]
    review = location.live_reviews()[-1]
    update_time = review.update_time
    world.advance_to(100.0)
    posted = world.post_reply(location.profile, review.review_id, "Thank you!")
    assert posted is not None
    assert posted.reply_time == world.now()
    assert posted.update_time == update_time


# Causes of failed attempts.


def raised_from(origin: BaseException) -> PlatformError:
    try:
        raise PlatformError("failed", retryable=True) from origin
    except PlatformError as error:
        return error


def validation_error(document: bytes) -> msgspec.ValidationError:
    class Item(msgspec.Struct):
        name: str

    try:
        msgspec.json.decode(document, type=Item)
    except msgspec.ValidationError as error:
        return error
    raise AssertionError("the document decoded")


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (PlatformError("x", retryable=True, status=500), "server_error"),
        (PlatformError("x", retryable=True, status=503, retry_after=5.0), "server_error"),
        (PlatformError("x", retryable=True, status=429), "rate_limited"),
        (PlatformError("x", retryable=True, status=400, retry_after=2.0), "rate_limited"),
        (PlatformError("x", retryable=True, status=401), "unauthorized"),
        (PlatformError("x", retryable=True, status=408), "timeout"),
        (PlatformError("x", retryable=False, status=404), "other"),
        (raised_from(httpx.ReadTimeout("slow")), "timeout"),
        (raised_from(httpx.RemoteProtocolError("closed")), "connection"),
        (raised_from(validation_error(b"{}")), "missing_field"),
        (raised_from(validation_error(b'{"name": 5}')), "malformed_body"),
        (raised_from(msgspec.DecodeError("truncated")), "malformed_body"),
        (PlatformError("x", retryable=True), "other"),
    ],
)
def test_retry_cause_cases(error: PlatformError, cause: str) -> None:
    assert retry_cause(error) == cause
    assert cause in RETRY_CAUSES


def test_retries_by_cause_reads_metrics() -> None:
    registry = CollectorRegistry()
    retries = Counter(
        "plaudit_platform_retries_total", "test", ["platform", "cause"], registry=registry
    )
    retries.labels(platform="google", cause="timeout").inc(2)
    retries.labels(platform="yelp", cause="connection").inc()
    retries.labels(platform="yelp", cause="other")
    other = Counter("plaudit_platform_requests_total", "test", ["platform"], registry=registry)
    other.labels(platform="google").inc(7)

    seen = retries_by_cause(generate_latest(registry).decode())
    assert seen == {"google": {"timeout": 2}, "yelp": {"connection": 1}}


def test_reliability_config_per_platform() -> None:
    text = reliability_config()
    for platform in PLATFORMS:
        assert f"[platforms.{platform}.breaker]" in text
        assert f"[platforms.{platform}.retry]" in text


# On the sandbox.


@pytest.fixture
async def base_url(nursery: trio.Nursery, autojump_clock: trio.abc.Clock) -> AsyncIterator[str]:
    url: str = await nursery.start(serve_sandbox, SandboxOptions(seed=6, script_seconds=0))
    yield url


@pytest.fixture(params=PLATFORMS)
def target(request: pytest.FixtureRequest, base_url: str) -> Target:
    return Target(platform=request.param, base_url=base_url)


def ids(reviews: list[object]) -> list[str]:
    return sorted(str(getattr(review, "review_id", "")) for review in reviews)


async def test_missing_field_is_retryable(target: Target) -> None:
    await target.set_faults(
        next_faults=["missing_fields"], routes=[LISTING_ROUTES[target.platform]]
    )
    with pytest.raises(PlatformError) as caught:
        await target.list_reviews(attempts=1)
    assert caught.value.retryable
    assert retry_cause(caught.value) == "missing_field"


async def test_missing_field_retried_then_listed(target: Target) -> None:
    clean, _ = await target.list_reviews()
    await target.set_faults(next_faults=["missing_fields"])
    listed, retries = await target.list_reviews(attempts=2)
    assert ids(listed) == ids(clean)
    assert retries == 1


async def test_queued_timeout_times_out(target: Target) -> None:
    await target.set_faults(next_faults=["timeout"], timeout_delay=30.0)
    with pytest.raises(PlatformError, match=r"timed out after 2\.0 s") as caught:
        await target.list_reviews(attempts=1, timeout=2.0)
    assert retry_cause(caught.value) == "timeout"


async def stats(base_url: str) -> dict[str, object]:
    async with httpx.AsyncClient() as http:
        document: dict[str, object] = (await http.get(f"{base_url}/_sandbox/stats")).json()
    return document


async def test_fault_script_reaches_every_platform(base_url: str) -> None:
    """The script's faults all reach a client that keeps listing, which ends in full listings."""
    script = FaultScript(base_url)
    ready = trio.Event()
    targets = [Target(platform=platform, base_url=base_url) for platform in PLATFORMS]
    clean = {target.platform: ids((await target.list_reviews())[0]) for target in targets}
    listed: dict[str, list[str]] = {}
    rounds = {target.platform: 0 for target in targets}

    async def keep_listing(target: Target, done: trio.Event) -> None:
        while not done.is_set():
            # Eight attempts take a platform's whole queue in one call.
            reviews, _ = await target.list_reviews(attempts=8, timeout=2.0)
            listed[target.platform] = ids(reviews)
            rounds[target.platform] += 1
            await trio.sleep(1.0)

    done = trio.Event()
    async with trio.open_nursery() as nursery:
        for target in targets:
            nursery.start_soon(keep_listing, target, done)
        ready.set()
        await script.run(ready)
        # Wait for two more listings of every platform, so the last one began
        # after the paging loops ended.
        ended = dict(rounds)
        with trio.fail_after(60):
            while any(rounds[platform] < ended[platform] + 2 for platform in rounds):
                await trio.sleep(0.1)
        done.set()
    document = await stats(base_url)

    assert script.finished.is_set()
    assert all(script.drained.values())
    injected = await script.injected()
    for platform in PLATFORMS:
        counts = injected[platform]
        assert counts["status"] == 3, platform
        assert counts["reset"] == 1, platform
        assert counts["malformed"] == 1, platform
        assert counts["missing_fields"] == 1, platform
        assert counts["timeout"] == 1, platform
        assert listed[platform] == clean[platform], platform
    assert "page_loop" not in injected["yelp"]
    for platform in ("google", "facebook", "trustpilot"):
        assert fault_statistics(document, platform)["injected"]["page_loop"] >= 1, platform

    summary = platform_faults_summary(script, injected, {"google": {"timeout": 1}})
    assert summary["google"]["faults_injected"]["expired_token"] == 1
    assert "expired_token" not in summary["facebook"]["faults_injected"]
    assert "expired_token" in summary["facebook"]["faults_not_applicable"]
    assert summary["google"]["errors_seen"] == {"timeout": 1}
    assert summary["yelp"]["errors_seen"] == {}


async def test_yelp_counts_only_intact_excerpts(autojump_clock: trio.abc.Clock) -> None:
    """An excerpt served only in a garbled or late body stays unknown to the truth."""
    app = SandboxApp(GoogleWorld(WorldOptions(seed=6, script_seconds=0)), FaultInjector())
    [yelp] = [stand_in for stand_in in app.stand_ins if isinstance(stand_in, YelpStandIn)]
    business = yelp_sandbox.BUSINESS_IDS[0]
    request = Request(
        method="GET",
        path=f"/yelp/v3/businesses/{business}/reviews",
        query={},
        headers={"authorization": f"Bearer {yelp_sandbox.SANDBOX_API_KEY}"},
        body=b"",
    )
    yelp.faults.update({"next_faults": ["malformed", "missing_fields", "timeout"]})
    for _ in range(3):
        response = await app.handle(request)
        assert response.status == 200
    assert yelp.listed == set()

    await app.handle(request)
    assert len(yelp.listed) == 3


def test_scripted_reset_traceback_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("plaudit.sandbox.server")
    try:
        raise ConnectionResetFault("sandbox fault: connection closed mid-response")
    except ConnectionResetFault:
        logger.exception("Error in ASGI Framework")
    try:
        raise RuntimeError("a real bug")
    except RuntimeError:
        logger.exception("Error in ASGI Framework")
    assert [record.exc_info[1].__class__ for record in caplog.records if record.exc_info] == [
        RuntimeError
    ]
