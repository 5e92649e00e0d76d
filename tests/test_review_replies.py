"""Reply validation, the reply job and its journal writes, and the ctl side of ``review reply``."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
import trio

from plaudit.daemon.control_wire import InvalidArgument
from plaudit.daemon.ctl import build_parser, request_args
from plaudit.errors import ControlError
from plaudit.journal import AsyncJournal, Journal
from plaudit.reviews.model import Review
from plaudit.reviews.replies import (
    REPLY_KIND,
    YELP_DASHBOARD,
    DashboardReply,
    ReplyRejectedError,
    ReplyRequest,
    find_review,
    plan_reply,
    reply_job,
    store_reply,
)
from plaudit.reviews.reply_commands import queue_reply, reply_status, with_review_replies
from plaudit.reviews.reply_ctl import render_reply
from plaudit.reviews.store import apply_snapshot, load_reviews

GOOGLE_PROFILE = "accounts/1/locations/2"


def review(platform: str = "google", review_id: str = "r1", **changes: str) -> Review:
    profile = GOOGLE_PROFILE if platform == "google" else "p1"
    base = Review(
        platform=platform,
        profile=profile,
        review_id=review_id,
        stars=5,
        text="Wonderful day",
        author="Ana P",
        created_at="2026-06-01T10:00:00.000Z",
        updated_at="2026-06-01T10:00:00.000Z",
    )
    return msgspec.structs.replace(base, **changes)


def store(journal: Journal, *reviews: Review) -> None:
    with journal.transaction() as tx:
        for item in reviews:
            apply_snapshot(
                tx, platform=item.platform, profile=item.profile, reviews=[item], complete=False
            )


def replied_events(journal: Journal) -> list[str]:
    rows = journal.query("SELECT key FROM events WHERE type = 'review.replied' ORDER BY id")
    return [row[0] for row in rows]


def test_plan_accepts_google_reply() -> None:
    plan = plan_reply(review(), "Thank you!")
    assert plan == ReplyRequest(
        platform="google", profile=GOOGLE_PROFILE, review_id="r1", text="Thank you!"
    )


def test_plan_rejects_empty_text() -> None:
    with pytest.raises(ReplyRejectedError, match="empty"):
        plan_reply(review(), "")


def test_plan_counts_google_limit_in_bytes() -> None:
    # 2,049 two-byte characters: under 4096 characters, over 4096 bytes.
    with pytest.raises(ReplyRejectedError, match="4098 bytes, google accepts at most 4096"):
        plan_reply(review(), "é" * 2049)


def test_plan_counts_trustpilot_limit_in_characters() -> None:
    plan_reply(review("trustpilot"), "é" * 4000)
    with pytest.raises(ReplyRejectedError, match="4001 characters, trustpilot"):
        plan_reply(review("trustpilot"), "é" * 4001)


def test_plan_rejects_deleted_review() -> None:
    deleted = review(deleted_at="2026-07-01T00:00:00.000Z")
    with pytest.raises(ReplyRejectedError, match="deleted on the platform"):
        plan_reply(deleted, "Thank you!")


def test_plan_rejects_facebook_rating_without_story() -> None:
    with pytest.raises(ReplyRejectedError, match="no story id"):
        plan_reply(review("facebook", "derived-0123"), "Thank you!")


def test_plan_rejects_yelp_with_dashboard() -> None:
    with pytest.raises(ReplyRejectedError, match="Yelp has no reply API") as caught:
        plan_reply(review("yelp"), "Thank you!")
    assert YELP_DASHBOARD in str(caught.value)


def test_plan_points_marketplace_to_dashboard() -> None:
    plan = plan_reply(review("hitched"), "Thank you!")
    assert isinstance(plan, DashboardReply)
    assert plan.dashboard_url == "https://www.hitched.co.uk/emp-AdminOpiniones.php"


def test_plan_rejects_unknown_platform() -> None:
    with pytest.raises(ReplyRejectedError, match="takes no replies"):
        plan_reply(review("import-only"), "Thank you!")


def test_google_job_names_location() -> None:
    job = reply_job(plan_reply_request())
    assert job["kind"] == REPLY_KIND
    assert job["owner"] == "google"
    assert job["payload"]["account"] == "accounts/1"
    assert job["payload"]["location"] == "locations/2"
    assert job["key"].startswith("review.reply:google:r1:")


def plan_reply_request() -> ReplyRequest:
    plan = plan_reply(review(), "Thank you!")
    assert isinstance(plan, ReplyRequest)
    return plan


def test_find_review_by_platform_and_id(sync_journal: Journal) -> None:
    store(sync_journal, review("google", "same"), review("trustpilot", "same"))
    with sync_journal.transaction() as tx:
        assert find_review(tx, "trustpilot:same").platform == "trustpilot"
        with pytest.raises(ReplyRejectedError, match="several platforms"):
            find_review(tx, "same")
        with pytest.raises(ReplyRejectedError, match="not found"):
            find_review(tx, "google:other")


def test_find_review_id_with_colon(sync_journal: Journal) -> None:
    store(sync_journal, review("google", "a:b"))
    with sync_journal.transaction() as tx:
        assert find_review(tx, "a:b").review_id == "a:b"


def test_same_reply_queues_one_job(sync_journal: Journal) -> None:
    store(sync_journal, review())
    with sync_journal.transaction() as tx:
        first = queue_reply(tx, "google:r1", "  Thank you!\n")
        second = queue_reply(tx, "r1", "Thank you!")
        other = queue_reply(tx, "r1", "Thanks again!")
    assert first["state"] == "queued"
    assert second["state"] == "already_queued"
    assert second["job"] == first["job"]
    assert other["job"] != first["job"]
    job = sync_journal.get(first["job"])
    assert job.payload["text"] == "Thank you!"


def test_marketplace_reply_queues_nothing(sync_journal: Journal) -> None:
    store(sync_journal, review("theknot", "k1"))
    with sync_journal.transaction() as tx:
        result = queue_reply(tx, "theknot:k1", "Thank you!")
    assert result["state"] == "dashboard"
    assert result["dashboard_url"] == "https://www.theknot.com/emp-AdminOpiniones.php"
    assert sync_journal.query("SELECT count(*) FROM jobs") == [(0,)]


def test_stored_reply_emits_one_event(sync_journal: Journal) -> None:
    store(sync_journal, review())
    request = plan_reply_request()
    with sync_journal.transaction() as tx:
        assert store_reply(tx, request, replied_at="2026-08-01T00:00:00.000Z")
    # The next sync lists the same reply, with the platform's own time.
    synced = review(reply_text="Thank you!", reply_updated_at="2026-08-01T00:00:01.000Z")
    store(sync_journal, synced)

    assert len(replied_events(sync_journal)) == 1
    with sync_journal.transaction() as tx:
        stored = load_reviews(tx, "google")
    assert stored[0].reply_text == "Thank you!"


def test_stored_reply_skips_deleted_review(sync_journal: Journal) -> None:
    store(sync_journal, review())
    with sync_journal.transaction() as tx:
        tx.execute("UPDATE reviews SET deleted_at = '2026-07-01T00:00:00.000Z'", ())
    with sync_journal.transaction() as tx:
        stored = store_reply(tx, plan_reply_request(), replied_at="2026-08-01T00:00:00.000Z")
    assert not stored
    assert replied_events(sync_journal) == []


def test_status_lists_jobs(sync_journal: Journal) -> None:
    store(sync_journal, review())
    with sync_journal.transaction() as tx:
        queued = queue_reply(tx, "r1", "Thank you!")
        status = reply_status(tx, "google:r1")
    assert status["reply_text"] is None
    assert [job["job"] for job in status["jobs"]] == [queued["job"]]
    assert status["jobs"][0]["state"] == "ready"
    assert "no reply stored" in render_reply(status)


def test_ctl_parses_text() -> None:
    options = build_parser().parse_args(["review", "reply", "google:r1", "--text", "Thanks"])
    assert request_args(options) == {"subcommand": "reply", "review": "google:r1", "text": "Thanks"}


def test_ctl_reads_file(tmp_path: Path) -> None:
    reply = tmp_path / "reply.txt"
    reply.write_text("Thank you both!\n", encoding="utf-8")
    options = build_parser().parse_args(["review", "reply", "r1", "--file", str(reply)])
    assert request_args(options)["text"] == "Thank you both!\n"


def test_ctl_names_unreadable_file(tmp_path: Path) -> None:
    reply = tmp_path / "reply.txt"
    reply.write_bytes(b"\xff\xfe")
    options = build_parser().parse_args(["review", "reply", "r1", "--file", str(reply)])
    with pytest.raises(ControlError, match="not valid UTF-8"):
        request_args(options)


def test_ctl_status_sends_no_text() -> None:
    options = build_parser().parse_args(["review", "reply", "--status", "r1"])
    assert request_args(options) == {"subcommand": "reply", "review": "r1"}


def test_ctl_requires_text_or_status() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["review", "reply", "r1"])


def test_render_dashboard_link() -> None:
    text = render_reply({"state": "dashboard", "message": "reply at https://x.test/d"})
    assert text == "reply at https://x.test/d\n"


def created_payloads(journal: Journal) -> list[dict[str, object]]:
    rows = journal.query("SELECT payload FROM events WHERE type = 'review.created' ORDER BY id")
    return [msgspec.json.decode(row[0]) for row in rows]


def test_created_marketplace_event_links_dashboard(sync_journal: Journal) -> None:
    store(sync_journal, review("hitched", "h1"), review("google", "g1"))
    hitched, google_event = created_payloads(sync_journal)
    assert hitched["dashboard_url"] == "https://www.hitched.co.uk/emp-AdminOpiniones.php"
    assert "dashboard_url" not in google_event


class DaemonStub:
    """The two attributes of the daemon that the reply command reads."""

    def __init__(self, journal: AsyncJournal) -> None:
        self.journal = journal
        self.actors: dict[str, object] = {}


async def test_command_queues_and_passes_others(sync_journal: Journal) -> None:
    store(sync_journal, review())
    passed: list[dict[str, object]] = []

    async def other(args: dict[str, object]) -> dict[str, object]:
        passed.append(args)
        return {"subcommand": "links"}

    async with trio.open_nursery() as nursery:
        writer = AsyncJournal(sync_journal)
        await nursery.start(writer.run)
        command = with_review_replies(DaemonStub(writer), other)  # type: ignore[arg-type]
        queued = await command({"subcommand": "reply", "review": "r1", "text": "Thanks!"})
        status = await command({"subcommand": "reply", "review": "r1"})
        with pytest.raises(InvalidArgument, match="not found"):
            await command({"subcommand": "reply", "review": "nope", "text": "Thanks!"})
        await command({"subcommand": "links"})
        nursery.cancel_scope.cancel()

    assert queued["state"] == "queued"
    assert status["jobs"][0]["job"] == queued["job"]
    assert passed == [{"subcommand": "links"}]
