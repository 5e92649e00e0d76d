"""Review imports accept known platforms and configured profiles only; ctl exits 1 on row errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import trio

from plaudit.config.model import (
    Config,
    FacebookConfig,
    FacebookPage,
    GoogleConfig,
    GoogleLocation,
    MarketplaceConfig,
    MarketplaceProfile,
    PlatformsConfig,
    TrustpilotBusinessUnit,
    TrustpilotConfig,
    YelpBusiness,
    YelpConfig,
)
from plaudit.daemon.commands import CommandHandler
from plaudit.daemon.control_wire import InvalidArgument
from plaudit.journal import AsyncJournal, Journal
from plaudit.reviews.import_checks import (
    ImportTargetError,
    canonical_platform,
    configured_profiles,
    import_target,
    known_platforms,
)
from plaudit.reviews.import_ctl import failure_message
from tests.support import (
    DaemonDirs,
    ctl,
    open_daemon,
    query,
    run_ctl_against,
    stop_daemon,
    wait_for,
)

GOOGLE_PROFILE = "accounts/1/locations/2"
# Two rows of one venue, named by its configured vendor_name.
CSV = "venue,text,rating,author\nWillow Barn,Magical day,5,Ana P.\nWillow Barn,Lovely staff,4,Bo\n"


def google() -> GoogleConfig:
    location = GoogleLocation(account="accounts/1", location="locations/2", name="Willow Barn")
    return GoogleConfig(
        api_base="http://127.0.0.1:9/",
        token_url="http://127.0.0.1:9/token",
        client_id="client",
        locations=[location],
    )


def marketplace(*profiles: MarketplaceProfile) -> MarketplaceConfig:
    return MarketplaceConfig(profiles=list(profiles))


def hitched(
    profile_id: str = "willow-barn", vendor_name: str = "Willow Barn"
) -> MarketplaceProfile:
    return MarketplaceProfile(site="hitched", profile_id=profile_id, vendor_name=vendor_name)


def config(**platforms: Any) -> Config:
    return Config(platforms=PlatformsConfig(**platforms))


CONFIG = config(google=google(), marketplace=marketplace(hitched()))


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    opened = Journal.open(tmp_path / "journal.sqlite3", instance="imports")
    yield opened
    opened.close()


async def run_ctl(journal: Journal, sock_path: Path, *argv: str, settings: Config = CONFIG) -> int:
    return await run_ctl_against(journal, sock_path, argv, config=settings)


def write(tmp_path: Path, text: str, name: str = "reviews.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def stored(journal: Journal) -> list[tuple[str, str, str]]:
    rows = journal.query("SELECT platform, profile, author FROM reviews ORDER BY author")
    return [tuple(row) for row in rows]


def created_events(journal: Journal) -> int:
    return int(journal.query("SELECT count(*) FROM events WHERE type = 'review.created'")[0][0])


# -- the rules ------------------------------------------------------------------


def test_platform_name_ignores_case() -> None:
    assert canonical_platform("Hitched") == "hitched"
    assert canonical_platform("GOOGLE") == "google"
    assert canonical_platform(" hitched ") == "hitched"


def test_platform_display_name_accepted() -> None:
    assert canonical_platform("Bodas.net") == "bodas"
    assert canonical_platform("WeddingWire India") == "weddingwire_india"
    assert canonical_platform("Easy Weddings") == "easyweddings"


def test_unknown_platform_spelling() -> None:
    assert canonical_platform("nosuchsite") is None
    assert canonical_platform("") is None
    assert "nosuchsite" not in known_platforms()
    assert {"google", "facebook", "trustpilot", "yelp", "hitched", "zola"} <= set(known_platforms())


def test_configured_profiles_per_platform() -> None:
    settings = config(
        google=google(),
        facebook=FacebookConfig(
            api_base="http://127.0.0.1:9/", pages=[FacebookPage(page_id="101", name="Willow")]
        ),
        trustpilot=TrustpilotConfig(
            api_base="http://127.0.0.1:9/",
            token_url="http://127.0.0.1:9/token",
            api_key="key",
            business_units=[TrustpilotBusinessUnit(business_unit_id="bu1")],
        ),
        yelp=YelpConfig(
            api_base="http://127.0.0.1:9/", businesses=[YelpBusiness(business_id="y1")]
        ),
        marketplace=marketplace(hitched(), hitched("oak-hall", "Oak Hall")),
    )
    profiles = configured_profiles(settings.platforms)

    assert profiles["google"] == [(GOOGLE_PROFILE, "Willow Barn")]
    assert profiles["facebook"] == [("101", "Willow")]
    assert profiles["trustpilot"] == [("bu1", "")]
    assert profiles["yelp"] == [("y1", "")]
    assert profiles["hitched"] == [("willow-barn", "Willow Barn"), ("oak-hall", "Oak Hall")]


def test_platform_without_profiles_left_out() -> None:
    settings = config(google=GoogleConfig(api_base="x", token_url="y", client_id="z"))

    assert configured_profiles(settings.platforms) == {}


def test_target_rejects_unknown_platform() -> None:
    with pytest.raises(ImportTargetError) as caught:
        import_target(CONFIG.platforms, "nosuchsite")

    message = str(caught.value)
    assert "unknown platform 'nosuchsite'" in message
    assert "google, hitched" in message


def test_target_rejects_unconfigured_platform() -> None:
    with pytest.raises(ImportTargetError) as caught:
        import_target(CONFIG.platforms, "TheKnot")

    message = str(caught.value)
    assert "no theknot profile is configured" in message
    assert '[[platforms.marketplace.profiles]] with site = "theknot"' in message
    assert "google, hitched" in message


def test_target_names_api_table() -> None:
    with pytest.raises(ImportTargetError, match=r"\[\[platforms.facebook.pages\]\]"):
        import_target(CONFIG.platforms, "facebook")


def test_target_without_any_profile() -> None:
    with pytest.raises(ImportTargetError, match="configured profiles: none"):
        import_target(Config().platforms, "hitched")


def test_target_uses_lower_case_name() -> None:
    target = import_target(CONFIG.platforms, "HITCHED")

    assert target.platform == "hitched"
    assert target.profiles == ("willow-barn",)


def test_profile_resolves_by_id_and_name() -> None:
    target = import_target(CONFIG.platforms, "hitched")

    assert target.resolve_profile("willow-barn") == "willow-barn"
    assert target.resolve_profile("Willow Barn") == "willow-barn"
    assert target.resolve_profile("  willow   BARN ") == "willow-barn"


def test_profile_rejects_unconfigured() -> None:
    target = import_target(CONFIG.platforms, "google")

    with pytest.raises(ValueError) as caught:
        target.resolve_profile("locations/2001")

    message = str(caught.value)
    assert "profile 'locations/2001' is not configured for google" in message
    assert GOOGLE_PROFILE in message
    assert "[[platforms.google.locations]]" in message


def test_profile_id_is_case_sensitive() -> None:
    target = import_target(CONFIG.platforms, "hitched")

    with pytest.raises(ValueError, match="'WILLOW-BARN' is not configured"):
        target.resolve_profile("WILLOW-BARN")


def test_shared_name_is_ambiguous() -> None:
    settings = config(marketplace=marketplace(hitched("a1"), hitched("a2")))
    target = import_target(settings.platforms, "hitched")

    with pytest.raises(ValueError) as caught:
        target.resolve_profile("Willow Barn")

    assert "belongs to several hitched profiles" in str(caught.value)
    assert "a1, a2" in str(caught.value)
    assert target.resolve_profile("a2") == "a2"


def test_failure_message_only_on_errors() -> None:
    assert failure_message({"kind": "reviews", "rows": 2, "errors": []}) is None
    assert failure_message(["not", "a", "report"]) is None
    message = failure_message({"kind": "reviews", "rows": 2, "errors": [{"location": "line 2"}]})
    assert message is not None
    assert message.startswith("1 of 2 rows were not stored")


# -- through the control socket -------------------------------------------------


async def test_unknown_platform_stores_nothing(
    tmp_path: Path, sock_path: Path, journal: Journal, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, CSV)
    code = await run_ctl(
        journal, sock_path, "import", "reviews", path, "--platform", "nosuchsite", "--profile", "x"
    )

    assert code == 1
    error = capsys.readouterr().err
    assert "unknown platform 'nosuchsite'" in error
    assert "google, hitched" in error
    assert stored(journal) == []
    assert created_events(journal) == 0


async def test_platform_case_stores_once(
    tmp_path: Path, sock_path: Path, journal: Journal, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, CSV)
    first = await run_ctl(journal, sock_path, "import", "reviews", path, "--platform", "hitched")
    second = await run_ctl(
        journal, sock_path, "--json", "import", "reviews", path, "--platform", "Hitched"
    )

    assert (first, second) == (0, 0)
    again = json.loads(capsys.readouterr().out.split("\n", 3)[-1])
    assert (again["created"], again["unchanged"]) == (0, 2)
    assert stored(journal) == [
        ("hitched", "willow-barn", "Ana P."),
        ("hitched", "willow-barn", "Bo"),
    ]
    assert created_events(journal) == 2


async def test_google_unconfigured_location_rejected(
    tmp_path: Path, sock_path: Path, journal: Journal, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, CSV)
    code = await run_ctl(
        journal,
        sock_path,
        "import",
        "reviews",
        path,
        "--platform",
        "google",
        "--profile",
        "locations/2001",
    )

    assert code == 1
    error = capsys.readouterr().err
    assert "profile 'locations/2001' is not configured for google" in error
    assert GOOGLE_PROFILE in error
    assert stored(journal) == []


async def test_google_configured_location_accepted(
    tmp_path: Path, sock_path: Path, journal: Journal
) -> None:
    path = write(tmp_path, CSV)
    code = await run_ctl(
        journal,
        sock_path,
        "import",
        "reviews",
        path,
        "--platform",
        "Google",
        "--profile",
        GOOGLE_PROFILE,
    )

    assert code == 0
    assert stored(journal) == [
        ("google", GOOGLE_PROFILE, "Ana P."),
        ("google", GOOGLE_PROFILE, "Bo"),
    ]


async def test_row_profile_unconfigured_is_row_error(
    tmp_path: Path, sock_path: Path, journal: Journal, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "profile,text,rating,author\nwillow-barn,Magical day,5,Ana P.\nelsewhere,Fine,4,Bo\n"
    path = write(tmp_path, text)
    code = await run_ctl(journal, sock_path, "import", "reviews", path, "--platform", "hitched")

    assert code == 1
    captured = capsys.readouterr()
    assert "rows 2, accepted 1, duplicates 0, errors 1" in captured.out
    assert "error line 3: profile 'elsewhere' is not configured for hitched" in captured.out
    assert "1 of 2 rows were not stored" in captured.err
    assert stored(journal) == [("hitched", "willow-barn", "Ana P.")]
    assert created_events(journal) == 1


async def test_all_rows_failing_exits_one(
    tmp_path: Path, sock_path: Path, journal: Journal, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "venue,text,rating,author\nWillow Barn,Nice,9,Ana P.\nOak Hall,Fine,4,Bo\n"
    path = write(tmp_path, text)
    code = await run_ctl(
        journal, sock_path, "--json", "import", "reviews", path, "--platform", "hitched"
    )

    assert code == 1
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["accepted"] == 0
    assert len(result["errors"]) == 2
    assert "2 of 2 rows were not stored" in captured.err
    assert stored(journal) == []
    assert created_events(journal) == 0


async def test_profile_option_by_name(tmp_path: Path, sock_path: Path, journal: Journal) -> None:
    path = write(tmp_path, "text,rating,author\nMagical day,5,Ana P.\n")
    code = await run_ctl(
        journal,
        sock_path,
        "import",
        "reviews",
        path,
        "--platform",
        "hitched",
        "--profile",
        "willow barn",
    )

    assert code == 0
    assert stored(journal) == [("hitched", "willow-barn", "Ana P.")]


async def test_running_config_decides(tmp_path: Path, journal: Journal) -> None:
    facade = AsyncJournal(journal)
    daemon = SimpleNamespace(journal=facade, actors={}, config=CONFIG)
    handler = CommandHandler(cast(Any, daemon))
    args = {"kind": "reviews", "path": write(tmp_path, CSV), "platform": "zola"}
    async with trio.open_nursery() as nursery:
        await nursery.start(facade.run)
        with pytest.raises(InvalidArgument, match="no zola profile is configured"):
            await handler("import", args)

        # A reload replaces daemon.config; the next import reads the new one.
        zola = MarketplaceProfile(site="zola", profile_id="z-1", vendor_name="Willow Barn")
        daemon.config = config(marketplace=marketplace(zola))
        result = await handler("import", args)
        nursery.cancel_scope.cancel()

    assert result["created"] == 2
    assert result["profiles"] == ["z-1"]


# -- against a running daemon ---------------------------------------------------

DAEMON_CONFIG = """\
[daemon]
shutdown_timeout = 10.0

[metrics]
enabled = false

[[platforms.marketplace.profiles]]
site = "hitched"
profile_id = "willow-barn"
vendor_name = "Willow Barn"
modes = ["import"]
import_folder = "drop/willow"
"""


@pytest.mark.slow
async def test_daemon_checks_import_and_lists(tmp_path: Path) -> None:
    dirs = DaemonDirs(tmp_path)
    dirs.config.write_text(DAEMON_CONFIG, encoding="utf-8")
    path = write(tmp_path, CSV)
    process = await open_daemon(dirs)
    try:
        await wait_for(
            lambda: ctl(dirs, "status").returncode == 0, timeout=60.0, what="the control socket"
        )
        unknown = ctl(dirs, "import", "reviews", path, "--platform", "nosuchsite")
        assert unknown.returncode == 1
        assert "unknown platform 'nosuchsite'" in unknown.stderr
        assert "configured profiles: hitched" in unknown.stderr

        imported = ctl(dirs, "import", "reviews", path, "--platform", "Hitched")
        assert imported.returncode == 0, imported.stderr
        assert "created 2" in imported.stdout

        listing = ctl(dirs, "--json", "review", "list", "--platform", "hitched")
        assert listing.returncode == 0, listing.stderr
        reviews = json.loads(listing.stdout)["reviews"]
        assert [item["profile"] for item in reviews] == ["willow-barn", "willow-barn"]
        assert {item["author"] for item in reviews} == {"Ana P.", "Bo"}

        reference = f"hitched:{reviews[0]['review_id']}"
        reply = ctl(dirs, "review", "reply", reference, "--text", "Thank you!")
        assert reply.returncode == 0, reply.stderr
        assert "hitched.co.uk" in reply.stdout
    finally:
        assert await stop_daemon(process) == 0

    platforms = query(dirs.journal, "SELECT DISTINCT platform FROM reviews")
    assert platforms == [("hitched",)]
