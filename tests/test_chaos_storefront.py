"""Storefront faults in the sandbox, and the storefront part of ``plaudit demo --chaos``."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from plaudit.chaos_storefront import (
    FAULTS_PATH,
    STOREFRONT_JOB,
    is_outage,
    open_incidents,
    read_storefront_jobs,
    storefront_config,
    storefront_figures,
    storefront_plan,
    storefront_settings_at,
)
from plaudit.config.loader import load_config
from plaudit.config.model import RetryConfig
from plaudit.connectors.marketplace.errors import BlockedPageError
from plaudit.connectors.marketplace.fetch import StorefrontFetcher
from plaudit.connectors.marketplace.sites import get_site
from plaudit.demo import MARKETPLACE_PROFILE, MARKETPLACE_SITE
from plaudit.errors import PlatformError
from plaudit.journal import Journal
from plaudit.sandbox import SandboxOptions, serve_sandbox

SITE = get_site(MARKETPLACE_SITE)


def test_plan_has_two_outages_and_slow_pages() -> None:
    windows = storefront_plan(60.0)

    assert [window.kind for window in windows] == ["errors", "challenge", "slow"]
    assert [window.outage for window in windows] == [True, True, False]
    assert all(0.0 < window.start < window.end < 60.0 for window in windows)


def test_settings_follow_windows() -> None:
    windows = storefront_plan(100.0)

    quiet = storefront_settings_at(5.0, windows)
    errors = storefront_settings_at(20.0, windows)
    challenge = storefront_settings_at(50.0, windows)
    slow = storefront_settings_at(75.0, windows)

    assert quiet == {"error_rate": 0.1, "challenge_rate": 0.0, "latency": 0.0}
    assert errors["error_rate"] == 1.0
    assert challenge["challenge_rate"] == 1.0
    assert slow["latency"] == 3.0
    assert [is_outage(each) for each in (quiet, errors, challenge, slow)] == [
        False,
        True,
        True,
        False,
    ]


def test_storefront_config_loads(tmp_path: Path) -> None:
    path = tmp_path / "plaudit.toml"
    path.write_text(storefront_config("http://127.0.0.1:8080"), encoding="utf-8")

    marketplace = load_config(path).platforms.marketplace

    assert marketplace is not None
    assert marketplace.retry.max_attempts == 2
    assert marketplace.breaker.open_initial == 1.0
    (profile,) = marketplace.profiles
    assert profile.profile_id == MARKETPLACE_PROFILE
    assert profile.poll_interval == 5.0


def test_figures_of_unfinished_jobs(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    journal = Journal.open(path, lease_seconds=15)
    try:
        with journal.transaction() as tx:
            tx.enqueue(
                kind=STOREFRONT_JOB,
                owner=MARKETPLACE_SITE,
                key=f"{STOREFRONT_JOB}:{MARKETPLACE_PROFILE}:7",
                payload={"profile": MARKETPLACE_PROFILE, "slot": 7},
            )
            tx.enqueue(
                kind=STOREFRONT_JOB,
                owner=MARKETPLACE_SITE,
                key=f"{STOREFRONT_JOB}:other-profile:7",
                payload={"profile": "other-profile", "slot": 7},
            )
    finally:
        journal.close()

    (job,) = read_storefront_jobs(path)
    figures = storefront_figures(path, outage_ends=[100.0], reviews=[], truth=[])

    assert (job.profile, job.slot, job.state) == (MARKETPLACE_PROFILE, 7, "ready")
    assert figures["jobs_succeeded"] == 0
    assert figures["incidents_opened"] == 0
    # No storefront job succeeded after the outage, so it never recovered.
    assert figures["recovery_seconds"] == [None]
    assert figures["sync_accuracy"] == 1.0


def test_open_incident_counted(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    journal = Journal.open(path, lease_seconds=15)
    try:
        with journal.transaction() as tx:
            for resolved in (20.0, None):
                tx.execute(
                    "INSERT INTO incidents (platform, profile, state, cause, opened_at,"
                    " resolved_at) VALUES (?, ?, 'down', 'circuit breaker open', 10.0, ?)",
                    (MARKETPLACE_SITE, MARKETPLACE_PROFILE, resolved),
                )
    finally:
        journal.close()

    figures = storefront_figures(path, outage_ends=[], reviews=[], truth=[])

    assert open_incidents(path) == 1
    assert figures["incidents_opened"] == 2
    assert figures["incidents_resolved"] == 1
    assert figures["incidents_open_at_end"] == 1


def test_no_journal_no_open_incidents(tmp_path: Path) -> None:
    assert open_incidents(tmp_path / "absent.sqlite3") == 0


@pytest.fixture
async def sandbox_url() -> AsyncIterator[str]:
    async with trio.open_nursery() as nursery:
        yield await nursery.start(serve_sandbox, SandboxOptions(script_seconds=0))
        nursery.cancel_scope.cancel()


def storefront_url(base_url: str) -> str:
    return f"{base_url}/marketplace/{MARKETPLACE_SITE}/{MARKETPLACE_PROFILE}.htm"


async def fetch_once(base_url: str) -> str:
    """Fetch the storefront with a fresh fetcher and two attempts; return the outcome."""
    async with httpx.AsyncClient(timeout=10.0) as client:
        fetcher = StorefrontFetcher(
            client,
            contact="ops@example.com",
            retry=RetryConfig(max_attempts=2, backoff_initial=0.01, backoff_max=0.01),
            rng=random.Random(3),
        )
        result = await fetcher.fetch(
            storefront_url(base_url), site=SITE, profile=MARKETPLACE_PROFILE
        )
    return result.outcome


async def set_faults(base_url: str, settings: dict[str, object]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as client:
        return await client.post(FAULTS_PATH, json=settings)


async def test_storefront_challenge_blocks(sandbox_url: str) -> None:
    response = await set_faults(sandbox_url, {"challenge_rate": 1.0})

    assert response.status_code == 200
    with pytest.raises(BlockedPageError):
        await fetch_once(sandbox_url)


async def test_storefront_errors_retried_then_fail(sandbox_url: str) -> None:
    await set_faults(sandbox_url, {"error_rate": 1.0})

    with pytest.raises(PlatformError) as caught:
        await fetch_once(sandbox_url)

    assert caught.value.status == 500
    assert caught.value.retryable is True


async def test_storefront_recovers_when_faults_end(sandbox_url: str) -> None:
    await set_faults(sandbox_url, {"error_rate": 1.0, "challenge_rate": 1.0})
    await set_faults(sandbox_url, {"error_rate": 0.0, "challenge_rate": 0.0})

    assert await fetch_once(sandbox_url) == "fetched"


async def test_storefront_faults_counted(sandbox_url: str) -> None:
    await set_faults(sandbox_url, {"challenge_rate": 1.0})
    with pytest.raises(BlockedPageError):
        await fetch_once(sandbox_url)

    async with httpx.AsyncClient(base_url=sandbox_url, timeout=10.0) as client:
        stats = (await client.get("/_sandbox/stats")).json()

    assert stats["stand_ins"]["marketplace"]["faults"]["challenges"] == 1


@pytest.mark.parametrize("settings", [{"challenge_rate": 2.0}, {"error_rate": -1}, {"bogus": 1}])
async def test_invalid_fault_settings_rejected(
    sandbox_url: str, settings: dict[str, object]
) -> None:
    response = await set_faults(sandbox_url, settings)

    assert response.status_code == 400
    assert "invalid" in response.json()["error"]
