"""Scripted reviews and a movable epoch in the sandbox's worlds, as the demo uses them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import trio

from plaudit.matching.names import name_similarity
from plaudit.matching.scoring import AUTO_CONFIRM_THRESHOLD
from plaudit.sandbox import SandboxOptions, serve_sandbox
from plaudit.sandbox.demo_reviews import COUPLE_REVIEWS, couple_reviews
from plaudit.sandbox.facebook import FacebookStandIn
from plaudit.sandbox.marketplace import MarketplaceStandIn
from plaudit.sandbox.notices import NoticeScript
from plaudit.sandbox.server import SandboxError, _validated, build_parser, sandbox_options
from plaudit.sandbox.trustpilot import TrustpilotStandIn
from plaudit.sandbox.world import (
    DEFAULT_EPOCH,
    GoogleWorld,
    ScriptedReview,
    WorldOptions,
    hour_epoch,
)
from plaudit.sandbox.yelp import YelpStandIn

REVIEW = ScriptedReview(at=5.5, reviewer="Anna Smith", stars=4, comment="Lovely day.", location=1)


def test_scripted_review_created_at_its_time() -> None:
    world = GoogleWorld(WorldOptions(seed=3, scripted_reviews=(REVIEW,)))
    location = world.locations["accounts/1001/locations/2002"]

    world.advance_to(5.4)
    assert all(review.reviewer != "Anna Smith" for review in location.reviews.values())

    world.advance_to(5.5)
    (review,) = [item for item in location.reviews.values() if item.reviewer == "Anna Smith"]
    assert review.stars == 4
    assert review.comment == "Lovely day."
    assert review.create_time == DEFAULT_EPOCH + 5.5


def test_scripted_review_leaves_random_script_unchanged() -> None:
    plain = GoogleWorld(WorldOptions(seed=3))
    scripted = GoogleWorld(WorldOptions(seed=3, scripted_reviews=(REVIEW,)))

    others = [event for event in scripted.script if event.reviewer != "Anna Smith"]
    assert others == plain.script
    assert len(scripted.script) == len(plain.script) + 1
    times = [event.at for event in scripted.script]
    assert times == sorted(times)


def test_scripted_review_ids_repeat_per_seed() -> None:
    first = GoogleWorld(WorldOptions(seed=3, scripted_reviews=(REVIEW,)))
    second = GoogleWorld(WorldOptions(seed=3, scripted_reviews=(REVIEW,)))
    assert first.script == second.script


def test_scripted_review_unknown_location_rejected() -> None:
    review = ScriptedReview(at=1.0, reviewer="Anna Smith", location=2)
    with pytest.raises(ValueError, match="location index 2"):
        GoogleWorld(WorldOptions(scripted_reviews=(review,)))


async def test_sandbox_unknown_location_raises_sandbox_error() -> None:
    review = ScriptedReview(at=1.0, reviewer="Anna Smith", location=5)
    # The nursery wraps the error in an ExceptionGroup.
    with pytest.RaisesGroup(pytest.RaisesExc(SandboxError, match="location index 5")):
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_sandbox, SandboxOptions(scripted_reviews=(review,)))
            nursery.cancel_scope.cancel()


def test_sandbox_options_check_scripted_stars() -> None:
    review = ScriptedReview(at=1.0, reviewer="Anna Smith", stars=9)
    with pytest.raises(SandboxError, match="stars"):
        _validated(SandboxOptions(scripted_reviews=(review,)))


def test_sandbox_epoch_moves_review_times() -> None:
    epoch = 1_796_000_400.0
    options = SandboxOptions(seed=3, epoch=epoch)
    world = GoogleWorld(options.world_options())

    world.advance_to(30.0)
    assert world.now() == epoch + 30.0
    created = [r.create_time for loc in world.locations.values() for r in loc.reviews.values()]
    assert max(created) <= epoch + 30.0
    assert max(created) > DEFAULT_EPOCH + 365 * 86_400.0


def test_sandbox_default_epoch_fixed() -> None:
    assert SandboxOptions().world_options().epoch == DEFAULT_EPOCH


def test_hour_epoch_floors_to_utc_hour() -> None:
    # 2026-12-04T23:59:59Z and 2026-12-05T00:00:00Z.
    assert hour_epoch(1_796_428_799.0) == 1_796_425_200.0
    assert hour_epoch(1_796_428_800.0) == 1_796_428_800.0


def test_couple_reviews_written_at_given_time() -> None:
    reviews = couple_reviews(15.0)
    assert [review.reviewer for review in reviews] == [name for name, _s, _c in COUPLE_REVIEWS]
    assert {review.at for review in reviews} == {15.0}
    assert {review.location for review in reviews} == {0}


@pytest.mark.parametrize(
    ("reviewer", "partners"),
    [
        ("Maya Ortiz", ["Maya Ortiz", "Jonah Reed"]),
        ("Priya Nair & Sam Cole", ["Priya Nair", "Sam Cole"]),
        ("Lena Vogel", ["Lena Vogel"]),
    ],
)
def test_couple_reviewer_names_confirm_automatically(reviewer: str, partners: list[str]) -> None:
    # The demo's couples in plaudit.sandbox.demo_mail.COUPLES_CSV.
    assert reviewer in [name for name, _s, _c in COUPLE_REVIEWS]
    assert name_similarity(reviewer, partners) >= AUTO_CONFIRM_THRESHOLD


def test_stand_ins_start_at_given_epoch(tmp_path: Path) -> None:
    epoch = 1_796_000_400.0
    worlds = [
        FacebookStandIn(seed=3, elapsed=time.monotonic, script_seconds=0.0, epoch=epoch).world,
        TrustpilotStandIn(seed=3, elapsed=time.monotonic, script_seconds=0.0, epoch=epoch).world,
        YelpStandIn(seed=3, elapsed=time.monotonic, script_seconds=0.0, epoch=epoch).world,
        MarketplaceStandIn(seed=3, elapsed=time.monotonic, script_seconds=0.0, epoch=epoch).world,
    ]
    notices = NoticeScript(tmp_path, seed=3, script_seconds=0.0, epoch=epoch)

    for world in worlds:
        created = [review.created for reviews in world.profiles.values() for review in reviews]
        assert max(created) <= epoch, world.platform
        assert max(created) > DEFAULT_EPOCH + 365 * 86_400.0, world.platform
    noticed = [review.created for _at, review in notices.schedule]
    assert max(noticed) > DEFAULT_EPOCH + 365 * 86_400.0


def test_sandbox_command_dates_world_from_current_hour() -> None:
    before = time.time()
    options = sandbox_options(build_parser().parse_args([]))
    assert before - 3600.0 < options.epoch <= before


def test_sandbox_command_takes_epoch() -> None:
    options = sandbox_options(build_parser().parse_args(["--epoch", "1750000000"]))
    assert options.epoch == 1_750_000_000.0
