"""``plaudit ctl review list``: filters, order and limits in the journal, and the ctl output."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import msgspec
import pytest
import trio

from plaudit.config.model import Config
from plaudit.daemon.commands import CommandHandler
from plaudit.daemon.control_wire import InvalidArgument
from plaudit.daemon.ctl import build_parser, request_args
from plaudit.journal import AsyncJournal, Journal
from plaudit.reviews.list_commands import ReviewQuery, list_reviews, parse_query
from plaudit.reviews.list_ctl import render_list
from plaudit.reviews.model import Review
from plaudit.reviews.store import apply_snapshot
from tests.support import run_ctl_against

GOOGLE_PROFILE = "accounts/1/locations/2"


def review(review_id: str, day: int, **changes: Any) -> Review:
    moment = f"2026-06-{day:02d}T10:00:00.000Z"
    base = Review(
        platform="google",
        profile=GOOGLE_PROFILE,
        review_id=review_id,
        stars=5,
        text=f"Review {review_id}",
        author="Ana P",
        created_at=moment,
        updated_at=moment,
    )
    return msgspec.structs.replace(base, **changes)


def store(journal: Journal, *reviews: Review, complete: bool = False) -> None:
    groups: dict[tuple[str, str], list[Review]] = {}
    for item in reviews:
        groups.setdefault((item.platform, item.profile), []).append(item)
    with journal.transaction() as tx:
        for (platform, profile), group in groups.items():
            apply_snapshot(tx, platform=platform, profile=profile, reviews=group, complete=complete)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    opened = Journal.open(tmp_path / "journal.sqlite3", instance="review-list")
    yield opened
    opened.close()


async def run_ctl(journal: Journal, sock_path: Path, *argv: str) -> int:
    return await run_ctl_against(journal, sock_path, argv, config=Config())


def ids(result: dict[str, Any]) -> list[str]:
    return [f"{item['platform']}:{item['review_id']}" for item in result["reviews"]]


# -- the query ------------------------------------------------------------------


def test_list_newest_first(journal: Journal) -> None:
    store(journal, review("r1", 1), review("r3", 3), review("r2", 2))

    result = list_reviews(journal, ReviewQuery())

    assert ids(result) == ["google:r3", "google:r2", "google:r1"]
    assert result["total"] == 3


def test_list_orders_by_update(journal: Journal) -> None:
    edited = review("r1", 1, updated_at="2026-06-09T10:00:00.000Z")
    store(journal, edited, review("r2", 2))

    assert ids(list_reviews(journal, ReviewQuery())) == ["google:r1", "google:r2"]


def test_list_default_limit(journal: Journal) -> None:
    store(journal, *(review(f"r{day:02d}", day) for day in range(1, 26)))

    result = list_reviews(journal, parse_query({}))

    assert len(result["reviews"]) == 20
    assert result["total"] == 25
    assert result["reviews"][0]["review_id"] == "r25"
    assert result["filters"]["limit"] == 20


def test_list_filters_platform_ignoring_case(journal: Journal) -> None:
    other = review(
        "f1", 4, platform="facebook", profile="101", stars=None, recommendation="positive"
    )
    store(journal, review("r1", 1), other)

    result = list_reviews(journal, parse_query({"platform": "Facebook"}))

    assert ids(result) == ["facebook:f1"]
    assert result["reviews"][0]["recommendation"] == "positive"
    assert result["reviews"][0]["stars"] is None


def test_list_filters_profile(journal: Journal) -> None:
    store(journal, review("r1", 1), review("r2", 2, profile="accounts/1/locations/3"))

    result = list_reviews(journal, ReviewQuery(profile=GOOGLE_PROFILE))

    assert ids(result) == ["google:r1"]
    assert result["total"] == 1


def test_list_unreplied_only(journal: Journal) -> None:
    replied = review("r2", 2, reply_text="Thank you!", reply_updated_at="2026-06-03T00:00:00.000Z")
    store(journal, review("r1", 1), replied)

    everything = list_reviews(journal, ReviewQuery())
    unreplied = list_reviews(journal, ReviewQuery(unreplied=True))

    assert [item["replied"] for item in everything["reviews"]] == [True, False]
    assert ids(unreplied) == ["google:r1"]


def test_list_leaves_out_deleted(journal: Journal) -> None:
    store(journal, review("r1", 1), review("r2", 2))
    store(journal, review("r2", 2), complete=True)

    result = list_reviews(journal, ReviewQuery())

    assert ids(result) == ["google:r2"]
    assert result["total"] == 1


def test_list_empty_journal(journal: Journal) -> None:
    result = list_reviews(journal, ReviewQuery())

    assert result["reviews"] == []
    assert result["total"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"limit": 0}, "from 1 to 1000, got 0"),
        ({"limit": 1001}, "from 1 to 1000, got 1001"),
        ({"limit": True}, "got True"),
        ({"limit": "5"}, "got '5'"),
        ({"unreplied": "yes"}, "'unreplied' must be true or false"),
        ({"platform": ""}, "'platform' must be a non-empty string"),
        ({"profile": 7}, "'profile' must be a non-empty string"),
    ],
)
def test_query_rejects_bad_argument(args: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_query(args)


def test_query_lowers_platform() -> None:
    assert parse_query({"platform": " Google "}).platform == "google"


# -- the ctl side ---------------------------------------------------------------


def test_parser_builds_request() -> None:
    argv = ["review", "list", "--platform", "google", "--limit", "5", "--unreplied"]
    options = build_parser().parse_args(argv)

    assert request_args(options) == {
        "subcommand": "list",
        "platform": "google",
        "limit": 5,
        "unreplied": True,
    }


def test_parser_defaults_to_daemon() -> None:
    options = build_parser().parse_args(["review", "list"])

    assert request_args(options) == {"subcommand": "list", "unreplied": False}


def test_render_trims_text_not_id() -> None:
    long_id = "ChdDSUhNMG9nS0VJQ0FnSUR" * 3
    row = {
        "platform": "google",
        "review_id": long_id,
        "stars": 4,
        "author": "Ana P",
        "text": "word " * 40,
        "updated_at": "2026-06-01T10:00:00.000Z",
        "replied": False,
    }
    text = render_list({"subcommand": "list", "total": 1, "reviews": [row]})

    header, line = text.splitlines()
    assert header.split() == ["REVIEW", "STARS", "AUTHOR", "UPDATED", "REPLIED", "TEXT"]
    assert f"google:{long_id}" in line
    assert line.endswith("...")
    assert "  4  " in line
    assert "  no  " in line


def test_render_escapes_control_characters() -> None:
    row = {"platform": "google", "review_id": "r1", "author": "Ana\x1b[31m", "text": "ok"}
    text = render_list({"subcommand": "list", "total": 1, "reviews": [row]})

    assert "\x1b" not in text
    assert "Ana\\x1b[31m" in text


def test_render_says_more_match() -> None:
    row = {"platform": "google", "review_id": "r1", "text": "ok"}
    text = render_list({"subcommand": "list", "total": 7, "reviews": [row]})

    assert text.endswith("1 of 7 reviews shown; raise --limit or filter to see more\n")


def test_render_no_reviews() -> None:
    assert render_list({"subcommand": "list", "total": 0, "reviews": []}) == "no reviews match\n"


async def test_ctl_lists_reviews(
    journal: Journal, sock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rating = review(
        "f1", 3, platform="facebook", profile="101", stars=None, recommendation="negative"
    )
    replied = review("r2", 2, reply_text="Thanks", reply_updated_at="2026-06-02T12:00:00.000Z")
    store(journal, review("r1", 1), replied, rating)

    code = await run_ctl(journal, sock_path, "review", "list", "--limit", "2")

    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["REVIEW", "STARS", "AUTHOR", "UPDATED", "REPLIED", "TEXT"]
    assert lines[1].split()[:2] == ["facebook:f1", "negative"]
    assert lines[1].split()[-3:] == ["no", "Review", "f1"]
    assert lines[2].split()[:2] == ["google:r2", "5"]
    assert "yes" in lines[2].split()
    assert lines[3] == "2 of 3 reviews shown; raise --limit or filter to see more"


async def test_ctl_lists_json_whole_text(
    journal: Journal, sock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "A long review. " * 20
    store(journal, review("r1", 1, text=text.strip()))

    code = await run_ctl(journal, sock_path, "review", "list", "--json", "--platform", "GOOGLE")

    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["reviews"][0]["text"] == text.strip()
    assert result["reviews"][0]["profile"] == GOOGLE_PROFILE
    assert result["filters"]["platform"] == "google"


async def test_ctl_rejects_bad_limit(
    journal: Journal, sock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await run_ctl(journal, sock_path, "review", "list", "--limit", "0")

    assert code == 1
    assert "'limit' must be an integer from 1 to 1000, got 0" in capsys.readouterr().err


async def test_reply_still_served(journal: Journal) -> None:
    store(journal, review("r1", 1))
    facade = AsyncJournal(journal)
    daemon = SimpleNamespace(journal=facade, actors={}, config=Config())
    handler = CommandHandler(cast(Any, daemon))
    async with trio.open_nursery() as nursery:
        await nursery.start(facade.run)
        status = await handler("review", {"subcommand": "reply", "review": "google:r1"})
        with pytest.raises(InvalidArgument, match="as plaudit ctl review list shows it"):
            await handler("review", {"subcommand": "reply", "review": "google:absent"})
        with pytest.raises(InvalidArgument, match="use 'list', 'reply', 'match' or 'links'"):
            await handler("review", {"subcommand": "show"})
        nursery.cancel_scope.cancel()

    assert status["state"] == "status"
    assert status["review"] == "r1"
