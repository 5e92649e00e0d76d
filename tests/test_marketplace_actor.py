"""The marketplace actor: its config rules, its pure steps, and its shell against the sandbox."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

from plaudit.actors.marketplace import MarketplaceActor, find_profile_actor
from plaudit.actors.marketplace_steps import Defer, Parse, Reject, Unchanged, decide_fetch, due_jobs
from plaudit.config import load_config
from plaudit.config.model import MarketplaceConfig, MarketplaceProfile
from plaudit.connectors.marketplace.fetch import FetchResult
from plaudit.connectors.marketplace.sites import get_site
from plaudit.daemon.children import ChildContext
from plaudit.errors import ConfigError
from plaudit.journal import AsyncJournal, Journal
from plaudit.metrics import REGISTRY
from plaudit.reliability.health import HealthState
from plaudit.reliability.monitor import PlatformHealthMonitor
from plaudit.reviews.store import load_reviews
from plaudit.sandbox.marketplace import write_notifications
from plaudit.sandbox.standin import StandInReview
from tests.support import start_sandbox

HITCHED = get_site("hitched")


def profile(**fields: Any) -> MarketplaceProfile:
    values: dict[str, Any] = {
        "site": "hitched",
        "profile_id": "willow-barn",
        "vendor_name": "Willow Barn",
        "storefront_url": "https://www.hitched.co.uk/busca-empresas/willow-barn.htm",
        "modes": ["storefront"],
    }
    values.update(fields)
    return MarketplaceProfile(**values)


def write_config(tmp_path: Path, table: str) -> Path:
    path = tmp_path / "plaudit.toml"
    path.write_text(table, encoding="utf-8")
    return path


def problems_of(tmp_path: Path, table: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, table))
    return [str(problem) for problem in caught.value.problems]


PROFILE_TABLE = """
[platforms.marketplace]
[[platforms.marketplace.profiles]]
site = "hitched"
profile_id = "willow-barn"
vendor_name = "Willow Barn"
modes = ["storefront"]
"""


def test_config_accepts_site_host(tmp_path: Path) -> None:
    url = 'storefront_url = "https://www.hitched.co.uk/v/willow-barn.htm"\n'
    config = load_config(write_config(tmp_path, PROFILE_TABLE + url))

    assert config.platforms.marketplace is not None
    assert config.platforms.marketplace.profiles[0].poll_interval == 3600.0


def test_config_rejects_foreign_host(tmp_path: Path) -> None:
    url = 'storefront_url = "https://example.org/willow-barn.htm"\n'
    problems = problems_of(tmp_path, PROFILE_TABLE + url)

    assert any("storefront_url" in p and "not on www.hitched.co.uk" in p for p in problems)


def test_config_allow_any_host(tmp_path: Path) -> None:
    text = PROFILE_TABLE + 'storefront_url = "http://127.0.0.1:8080/w.htm"\nallow_any_host = true\n'

    assert load_config(write_config(tmp_path, text)).platforms.marketplace is not None


def test_config_rejects_short_poll(tmp_path: Path) -> None:
    text = (
        PROFILE_TABLE + 'storefront_url = "https://www.hitched.co.uk/w.htm"\npoll_interval = 60\n'
    )
    problems = problems_of(tmp_path, text)

    assert any("poll_interval" in p and "900" in p for p in problems)


def test_config_short_poll_with_flag(tmp_path: Path) -> None:
    text = PROFILE_TABLE.replace(
        "[platforms.marketplace]\n", "[platforms.marketplace]\nallow_short_poll_interval = true\n"
    )
    text += 'storefront_url = "https://www.hitched.co.uk/w.htm"\npoll_interval = 60\n'

    assert load_config(write_config(tmp_path, text)).platforms.marketplace is not None


def test_config_rejects_bad_profiles(tmp_path: Path) -> None:
    text = """
[platforms.marketplace]
[[platforms.marketplace.profiles]]
site = "weddingbee"
profile_id = "a"
vendor_name = "A"
[[platforms.marketplace.profiles]]
site = "zola"
profile_id = "b"
vendor_name = "B"
modes = ["storefront", "mailbox"]
storefront_url = "https://www.zola.com/b"
maildir = "relative/mail"
[[platforms.marketplace.profiles]]
site = "hitched"
profile_id = "c"
vendor_name = "C"
modes = ["import"]
"""
    problems = problems_of(tmp_path, text)

    assert any("unknown site" in p and "weddingbee" in p for p in problems)
    assert any("Zola reaches Plaudit by its notification e-mails" in p for p in problems)
    # A relative maildir is taken from the state directory.
    assert not any("maildir" in p for p in problems)
    assert any("import_folder" in p and "missing" in p for p in problems)


def test_config_rejects_shared_maildir(tmp_path: Path) -> None:
    entry = """
[[platforms.marketplace.profiles]]
site = "{site}"
profile_id = "p"
vendor_name = "P"
maildir = "/var/mail/reviews"
"""
    text = "[platforms.marketplace]\n" + entry.format(site="hitched") + entry.format(site="bodas")
    problems = problems_of(tmp_path, text)

    assert any("also used by profiles[0]" in p for p in problems)


def test_due_jobs_one_per_slot() -> None:
    config = MarketplaceConfig(profiles=[profile(modes=["storefront", "mailbox"], maildir="/m")])

    slots, jobs = due_jobs("hitched", config.profiles, config, {}, now=7200.0)
    again, repeated = due_jobs("hitched", config.profiles, config, slots, now=7201.0)
    _, later = due_jobs("hitched", config.profiles, config, again, now=10800.0)

    assert sorted(job["kind"] for job in jobs) == ["hitched.mailbox", "hitched.storefront"]
    assert repeated == []
    assert sorted(job["key"] for job in later) == [
        "hitched.mailbox:willow-barn:180",
        "hitched.storefront:willow-barn:3",
    ]


def result(outcome: Any, **fields: Any) -> FetchResult:
    url = "https://www.hitched.co.uk/v/willow-barn.htm"
    values: dict[str, Any] = {"url": url, "final_url": url, "next_allowed_at": 500.0}
    values.update(fields)
    return FetchResult(outcome=outcome, **values)


def decide(fetched: FetchResult, **fields: Any) -> Defer | Unchanged | Parse | Reject:
    return decide_fetch(
        fetched, site=HITCHED, profile=profile(**fields), wall_now=1e9, clock_now=400
    )


def test_decide_too_soon_defers() -> None:
    assert decide(result("too_soon")) == Defer(run_at=1e9 + 100)


def test_decide_disallowed_rejects() -> None:
    action = decide(result("disallowed"))

    assert isinstance(action, Reject)
    assert "robots.txt" in action.error
    assert "willow-barn" in action.error


def test_decide_not_modified() -> None:
    assert decide(result("not_modified")) == Unchanged()


def test_decide_redirect_off_site() -> None:
    action = decide(result("fetched", final_url="https://www.example.org/", html="<html/>"))

    assert isinstance(action, Reject)
    assert "off www.hitched.co.uk" in action.error


def test_decide_loopback_same_host() -> None:
    url = "http://127.0.0.1:9/marketplace/hitched/willow-barn.htm"
    fetched = result("fetched", url=url, final_url=url, html="<p>page</p>")

    assert decide(fetched, allow_any_host=True) == Parse(html="<p>page</p>")


# The shell against the sandbox, in real time on loopback.


@pytest.fixture
async def sandbox() -> AsyncIterator[str]:
    async with trio.open_nursery() as nursery:
        yield await start_sandbox(nursery, seed=7, script_seconds=3.0)
        nursery.cancel_scope.cancel()


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[AsyncJournal]:
    opened = Journal.open(tmp_path / "journal.sqlite3")
    writer = AsyncJournal(opened, window=0.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        yield writer
        nursery.cancel_scope.cancel()
    opened.close()


def sandbox_profile(base_url: str, name: str, vendor: str, **fields: Any) -> MarketplaceProfile:
    fields.setdefault("storefront_url", f"{base_url}/marketplace/hitched/{name}.htm")
    return profile(
        profile_id=name, vendor_name=vendor, allow_any_host=True, poll_interval=3600.0, **fields
    )


async def stored(journal: AsyncJournal, name: str) -> int:
    reviews = await journal.transaction(lambda tx: load_reviews(tx, "hitched", name))
    return len(reviews)


async def run_until(actor: MarketplaceActor, check: Any, *, timeout: float) -> None:
    context = ChildContext("hitched")
    with trio.fail_after(timeout):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(actor.start, context)
            while not await check():
                await trio.sleep(0.05)
            context.stop_requested.set()
            actor.wake()


async def test_actor_syncs_all_modes(sandbox: str, journal: AsyncJournal, tmp_path: Path) -> None:
    maildir = tmp_path / "mail"
    folder = tmp_path / "drop"
    folder.mkdir()
    notices = [
        StandInReview(review_id=f"m{i}", author=f"Couple {i}", stars=5, text=f"Lovely {i}.",
                      created=1_700_000_000.0 + i, updated=1_700_000_000.0 + i)
        for i in range(3)
    ]  # fmt: skip
    write_notifications(maildir, notices, vendor="Willow Barn", domain="www.hitched.co.uk")
    drop = folder / "reviews.csv"
    drop.write_text("author,rating,text,date\nAna,5,Great day,2025-05-01\n", encoding="utf-8")
    # Dropped files are read once they are older than the settle time.
    old = 1_600_000_000
    os.utime(drop, (old, old))
    config = MarketplaceConfig(
        profiles=[
            sandbox_profile(
                sandbox,
                "willow-barn",
                "Willow Barn",
                modes=["storefront", "mailbox", "import"],
                maildir=str(maildir),
                import_folder=str(folder),
            )
        ],
        mailbox_interval=1.0,
        import_interval=1.0,
    )
    actor = MarketplaceActor(journal, HITCHED, config, lease_seconds=30.0, poll_interval=0.05)

    async def synced() -> bool:
        return await stored(journal, "willow-barn") >= 6 + 3 + 1

    await run_until(actor, synced, timeout=30.0)

    assert actor.marketplace_statistics().pages_stored == 1
    assert actor.marketplace_statistics().mailbox_passes >= 1
    assert (folder / "imported" / "reviews.csv").exists()
    assert not list((maildir / "new").iterdir())


async def test_actor_challenge_degrades(sandbox: str, journal: AsyncJournal) -> None:
    config = MarketplaceConfig(
        profiles=[sandbox_profile(sandbox, "challenge", "Harbour View Venue")]
    )
    monitor = PlatformHealthMonitor()
    actor = MarketplaceActor(
        journal, HITCHED, config, lease_seconds=30.0, poll_interval=0.05, monitor=monitor
    )

    async def degraded() -> bool:
        return monitor.state_of("hitched", "challenge") is HealthState.DEGRADED

    await run_until(actor, degraded, timeout=30.0)
    view = next(row for row in monitor.states() if row["profile"] == "challenge")

    assert "bot challenge" in view["cause"]
    labels = {"site": "hitched", "outcome": "blocked"}
    assert REGISTRY.get_sample_value("plaudit_marketplace_storefront_fetches_total", labels)
    assert "'challenge'" in view["cause"]
    assert await stored(journal, "challenge") == 0


async def test_actor_drift_names_selector(
    sandbox: str, journal: AsyncJournal, caplog: pytest.LogCaptureFixture
) -> None:
    config = MarketplaceConfig(
        profiles=[sandbox_profile(sandbox, "renamed-class", "Lumen Photo Studio")]
    )
    monitor = PlatformHealthMonitor()
    actor = MarketplaceActor(
        journal, HITCHED, config, lease_seconds=30.0, poll_interval=0.05, monitor=monitor
    )

    async def degraded() -> bool:
        return monitor.state_of("hitched", "renamed-class") is HealthState.DEGRADED

    await run_until(actor, degraded, timeout=30.0)
    records = [r for r in caplog.records if r.getMessage() == "marketplace.storefront_unreadable"]

    assert records
    assert records[0].__dict__["site"] == "hitched"
    assert records[0].__dict__["profile"] == "renamed-class"
    assert records[0].__dict__["selector"]
    assert await stored(journal, "renamed-class") == 0


async def test_verify_ok_and_mismatch(sandbox: str, journal: AsyncJournal) -> None:
    finca = sandbox_profile(sandbox, "finca-olivos", "Oak Barn Weddings", site="bodas")
    config = MarketplaceConfig(
        profiles=[
            sandbox_profile(sandbox, "willow-barn", "The Willow Barn"),
            msgspec.structs.replace(
                finca, storefront_url=finca.storefront_url.replace("hitched", "bodas")
            ),
        ]
    )
    monitor = PlatformHealthMonitor()
    hitched = MarketplaceActor(journal, HITCHED, config, lease_seconds=30.0, monitor=monitor)
    bodas = MarketplaceActor(
        journal, get_site("bodas"), config, lease_seconds=30.0, monitor=monitor
    )
    # The sandbox's reviews appear over its script; wait for the first ones.
    await trio.sleep(1.0)

    verified = await hitched.verify("willow-barn")
    mismatch = await bodas.verify("finca-olivos")

    assert verified.state == "verified"
    assert mismatch.state == "mismatch"
    assert "Oak Barn Weddings" in mismatch.problems[0]
    assert monitor.state_of("bodas", "finca-olivos/verify") is HealthState.DEGRADED
    assert monitor.state_of("hitched", "willow-barn/verify") is HealthState.HEALTHY


async def test_verify_respects_robots_txt(sandbox: str, journal: AsyncJournal) -> None:
    private = sandbox_profile(
        sandbox,
        "hidden",
        "The Willow Barn",
        storefront_url=f"{sandbox}/marketplace/private/willow-barn.htm",
    )
    actor = MarketplaceActor(
        journal, HITCHED, MarketplaceConfig(profiles=[private]), lease_seconds=30.0
    )

    verification = await actor.verify("hidden")

    assert verification.state == "blocked"
    assert "robots.txt" in verification.problems[0]
    assert actor.fetcher.statistics()["requests"] == 0


async def test_every_synced_storefront_is_verified(sandbox: str, journal: AsyncJournal) -> None:
    config = MarketplaceConfig(
        profiles=[
            sandbox_profile(sandbox, "willow-barn", "The Willow Barn"),
            sandbox_profile(
                sandbox,
                "impostor",
                "Someone Else Entirely",
                storefront_url=f"{sandbox}/marketplace/hitched/willow-barn.htm",
            ),
        ]
    )
    monitor = PlatformHealthMonitor()
    actor = MarketplaceActor(
        journal, HITCHED, config, lease_seconds=30.0, poll_interval=0.05, monitor=monitor
    )

    async def both_verified() -> bool:
        states = {row["profile"] for row in monitor.states()}
        return {"willow-barn/verify", "impostor/verify"} <= states

    await run_until(actor, both_verified, timeout=30.0)

    assert monitor.state_of("hitched", "willow-barn/verify") is HealthState.HEALTHY
    assert monitor.state_of("hitched", "impostor/verify") is HealthState.DEGRADED
    view = next(row for row in monitor.states() if row["profile"] == "impostor/verify")
    assert "Someone Else Entirely" in view["cause"]
    # The page still synced: a name mismatch is reported, not a reason to drop reviews.
    assert await stored(journal, "impostor") > 0


async def test_find_profile_actor(journal: AsyncJournal) -> None:
    config = MarketplaceConfig(profiles=[profile()])
    actor = MarketplaceActor(journal, HITCHED, config, lease_seconds=30.0)
    actors = {"hitched": actor}

    assert find_profile_actor(actors, "willow-barn") is actor
    assert find_profile_actor(actors, "hitched:willow-barn") is actor
    assert find_profile_actor(actors, "bodas:willow-barn") is None
    assert find_profile_actor(actors, "oak-barn") is None
