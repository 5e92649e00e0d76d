"""Review snapshots written to a real journal: rows, outbox events and exactly-once keys."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest

from plaudit.journal import Event, Journal
from plaudit.metrics import REGISTRY
from plaudit.reviews.model import Review, format_timestamp, normalize_timestamp
from plaudit.reviews.store import SyncOutcome, apply_snapshot, load_reviews

PROFILE = "accounts/1/locations/2"
OTHER_PROFILE = "accounts/1/locations/3"
# 2026-01-01T00:00:00Z.
START = 1_767_225_600.0


class FakeClock:
    """A journal clock that moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def journal(tmp_path: Path, clock: FakeClock) -> Iterator[Journal]:
    opened = Journal.open(tmp_path / "journal.sqlite3", clock=clock)
    yield opened
    opened.close()


def review(review_id: str, profile: str = PROFILE, **fields: Any) -> Review:
    values: dict[str, Any] = {
        "platform": "google",
        "profile": profile,
        "review_id": review_id,
        "stars": 5,
        "text": "The photos made our parents cry.",
        "author": "Noor A",
        "created_at": "2026-01-01T10:00:00.000Z",
        "updated_at": "2026-01-01T10:00:00.000Z",
    }
    return Review(**(values | fields))


def snapshot(
    journal: Journal,
    reviews: Sequence[Review],
    *,
    complete: bool = True,
    profile: str = PROFILE,
) -> SyncOutcome:
    with journal.transaction() as tx:
        return apply_snapshot(
            tx, platform="google", profile=profile, reviews=reviews, complete=complete
        )


def stored(journal: Journal, **filters: Any) -> list[Review]:
    with journal.transaction() as tx:
        return load_reviews(tx, **filters)


def events(journal: Journal) -> list[Event]:
    return journal.events(limit=1000)


def event_types(journal: Journal) -> list[str]:
    return [event.type for event in events(journal)]


def changed_total(change: str) -> float:
    labels = {"platform": "google", "change": change}
    return REGISTRY.get_sample_value("plaudit_reviews_changed_total", labels) or 0.0


# The model.


def test_content_hash_ignores_timestamps() -> None:
    edited_later = review("a", updated_at="2026-02-01T00:00:00.000Z")
    assert review("a").content_hash == edited_later.content_hash


def test_content_hash_sees_stars() -> None:
    assert review("a").content_hash != review("a", stars=4).content_hash


def test_content_hash_ignores_reply() -> None:
    assert review("a").content_hash == review("a", reply_text="Thanks!").content_hash


def test_reply_hash_tracks_reply_text() -> None:
    assert review("a").reply_hash is None
    assert review("a", reply_text="Thanks!").reply_hash != review("a", reply_text="Ta").reply_hash


def test_format_timestamp_millis_utc() -> None:
    assert format_timestamp(START + 0.25) == "2026-01-01T00:00:00.250Z"


def test_normalize_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="'last tuesday'"):
        normalize_timestamp("last tuesday")


# Snapshots.


def test_new_reviews_created(journal: Journal) -> None:
    outcome = snapshot(journal, [review("a"), review("b")])
    assert outcome == SyncOutcome(created=2)
    assert stored(journal) == [review("a"), review("b")]
    assert [event.key for event in events(journal)] == [
        "review.created:google:a",
        "review.created:google:b",
    ]


def test_created_event_payload(journal: Journal) -> None:
    snapshot(journal, [review("a")])
    (event,) = events(journal)
    assert event.type == "review.created"
    assert event.platform == "google"
    assert event.subject == "a"
    assert event.payload == {"change": "created", "review": review("a").to_dict()}


def test_repeat_snapshot_changes_nothing(journal: Journal, clock: FakeClock) -> None:
    snapshot(journal, [review("a"), review("b")])
    clock.now += 60
    outcome = snapshot(journal, [review("a"), review("b")])
    assert outcome == SyncOutcome(unchanged=2)
    assert len(events(journal)) == 2


def test_edit_emits_updated(journal: Journal) -> None:
    snapshot(journal, [review("a")])
    edited = review("a", text="Even better in print.", updated_at="2026-01-05T09:00:00.000Z")
    outcome = snapshot(journal, [edited])
    assert outcome == SyncOutcome(updated=1)
    assert stored(journal) == [edited]
    last = events(journal)[-1]
    assert last.key == f"review.updated:google:a:2026-01-05T09:00:00.000Z:{edited.content_hash}"
    assert last.payload["previous"]["text"] == "The photos made our parents cry."
    assert last.payload["review"]["text"] == "Even better in print."


def test_repeated_edit_emits_once(journal: Journal) -> None:
    snapshot(journal, [review("a")])
    edited = review("a", stars=4, updated_at="2026-01-05T09:00:00.000Z")
    snapshot(journal, [edited])
    snapshot(journal, [edited])
    assert event_types(journal) == ["review.created", "review.updated"]


def test_edit_back_and_forth_each_counted(journal: Journal) -> None:
    snapshot(journal, [review("a", text="A")])
    for day, text in enumerate(["B", "A", "B"], start=2):
        snapshot(journal, [review("a", text=text, updated_at=f"2026-01-0{day}T00:00:00.000Z")])
    assert event_types(journal).count("review.updated") == 3


def test_update_time_bump_alone_is_silent(journal: Journal) -> None:
    snapshot(journal, [review("a")])
    bumped = review("a", updated_at="2026-01-09T00:00:00.000Z")
    outcome = snapshot(journal, [bumped])
    assert outcome == SyncOutcome(unchanged=1)
    assert stored(journal) == [bumped]
    assert event_types(journal) == ["review.created"]


def test_new_reply_emits_replied(journal: Journal) -> None:
    snapshot(journal, [review("a")])
    replied = review("a", reply_text="Thank you!", reply_updated_at="2026-01-02T00:00:00.000Z")
    outcome = snapshot(journal, [replied])
    assert outcome == SyncOutcome(replied=1)
    last = events(journal)[-1]
    assert last.type == "review.replied"
    assert last.payload["change"] == "replied"
    assert last.payload["previous_reply"] is None


def test_changed_reply_emits_again(journal: Journal) -> None:
    first = review("a", reply_text="Thanks!", reply_updated_at="2026-01-02T00:00:00.000Z")
    second = review("a", reply_text="Thank you!", reply_updated_at="2026-01-03T00:00:00.000Z")
    snapshot(journal, [first])
    snapshot(journal, [second])
    snapshot(journal, [second])
    assert event_types(journal) == ["review.created", "review.replied"]
    assert events(journal)[-1].payload["previous_reply"] == "Thanks!"


def test_removed_reply_reported(journal: Journal) -> None:
    replied = review("a", reply_text="Thanks!", reply_updated_at="2026-01-02T00:00:00.000Z")
    snapshot(journal, [replied])
    outcome = snapshot(journal, [review("a")])
    assert outcome == SyncOutcome(replied=1)
    assert events(journal)[-1].payload["change"] == "reply_removed"
    assert stored(journal)[0].reply_text is None


def test_edit_and_reply_both_emitted(journal: Journal) -> None:
    snapshot(journal, [review("a")])
    both = review(
        "a",
        stars=3,
        updated_at="2026-01-04T00:00:00.000Z",
        reply_text="Sorry to hear it.",
        reply_updated_at="2026-01-04T01:00:00.000Z",
    )
    outcome = snapshot(journal, [both])
    assert outcome == SyncOutcome(updated=1, replied=1)
    assert event_types(journal) == ["review.created", "review.updated", "review.replied"]


def test_missing_review_deleted(journal: Journal, clock: FakeClock) -> None:
    snapshot(journal, [review("a"), review("b")])
    clock.now += 120
    outcome = snapshot(journal, [review("a")])
    assert outcome == SyncOutcome(deleted=1, unchanged=1)
    (tombstone,) = [r for r in stored(journal, include_deleted=True) if r.review_id == "b"]
    assert tombstone.deleted_at == "2026-01-01T00:02:00.000Z"
    last = events(journal)[-1]
    assert last.key == "review.deleted:google:b:2026-01-01T00:02:00.000Z"
    assert last.payload["review"]["deleted_at"] == "2026-01-01T00:02:00.000Z"


def test_deleted_review_hidden_by_default(journal: Journal) -> None:
    snapshot(journal, [review("a"), review("b")])
    snapshot(journal, [review("a")])
    assert [r.review_id for r in stored(journal)] == ["a"]
    assert [r.review_id for r in stored(journal, include_deleted=True)] == ["a", "b"]


def test_deletion_emitted_once(journal: Journal, clock: FakeClock) -> None:
    snapshot(journal, [review("a"), review("b")])
    snapshot(journal, [review("a")])
    clock.now += 300
    outcome = snapshot(journal, [review("a")])
    assert outcome == SyncOutcome(unchanged=1)
    assert event_types(journal).count("review.deleted") == 1


def test_partial_listing_never_deletes(journal: Journal) -> None:
    snapshot(journal, [review("a"), review("b")])
    outcome = snapshot(journal, [review("a")], complete=False)
    assert outcome == SyncOutcome(unchanged=1)
    assert len(stored(journal)) == 2


def test_empty_complete_listing_deletes_all(journal: Journal) -> None:
    snapshot(journal, [review("a"), review("b")])
    outcome = snapshot(journal, [])
    assert outcome == SyncOutcome(deleted=2)


def test_returning_review_restored(journal: Journal, clock: FakeClock) -> None:
    snapshot(journal, [review("a"), review("b")])
    snapshot(journal, [review("a")])
    clock.now += 600
    outcome = snapshot(journal, [review("a"), review("b")])
    assert outcome == SyncOutcome(restored=1, unchanged=1)
    assert stored(journal)[1] == review("b")
    last = events(journal)[-1]
    assert last.type == "review.created"
    assert last.key == "review.created:google:b:restored:2026-01-01T00:00:00.000Z"
    assert last.payload["change"] == "restored"


def test_second_deletion_after_restore(journal: Journal, clock: FakeClock) -> None:
    snapshot(journal, [review("a"), review("b")])
    for _ in range(2):
        clock.now += 60
        snapshot(journal, [review("a")])
        clock.now += 60
        snapshot(journal, [review("a"), review("b")])
    types = event_types(journal)
    assert types.count("review.deleted") == 2
    assert types.count("review.created") == 4


def test_other_profiles_untouched(journal: Journal) -> None:
    snapshot(journal, [review("x", OTHER_PROFILE)], profile=OTHER_PROFILE)
    snapshot(journal, [review("a")])
    snapshot(journal, [])
    assert [r.review_id for r in stored(journal, profile=OTHER_PROFILE)] == ["x"]


def test_moved_review_follows_profile(journal: Journal) -> None:
    snapshot(journal, [review("a")])
    outcome = snapshot(journal, [review("a", OTHER_PROFILE)], profile=OTHER_PROFILE)
    assert outcome == SyncOutcome(unchanged=1)
    assert stored(journal, profile=OTHER_PROFILE) == [review("a", OTHER_PROFILE)]
    assert stored(journal, profile=PROFILE) == []


def test_load_filters_by_platform(journal: Journal) -> None:
    snapshot(journal, [review("a")])
    assert stored(journal, platform="facebook") == []
    assert len(stored(journal, platform="google")) == 1


def test_foreign_profile_in_snapshot_rejected(journal: Journal) -> None:
    with pytest.raises(ValueError, match="apply each profile separately"):
        snapshot(journal, [review("a", OTHER_PROFILE)])


def test_duplicate_id_in_snapshot_rejected(journal: Journal) -> None:
    with pytest.raises(ValueError, match="appears twice"):
        snapshot(journal, [review("a"), review("a", text="again")])


def test_failed_transaction_leaves_nothing(journal: Journal) -> None:
    with pytest.raises(RuntimeError), journal.transaction() as tx:
        apply_snapshot(tx, platform="google", profile=PROFILE, reviews=[review("a")], complete=True)
        raise RuntimeError("the job failed after the snapshot")
    assert stored(journal) == []
    assert events(journal) == []


def test_changes_counted_in_metrics(journal: Journal) -> None:
    created = changed_total("created")
    deleted = changed_total("deleted")
    snapshot(journal, [review("a"), review("b")])
    snapshot(journal, [review("a")])
    snapshot(journal, [review("a")])
    assert changed_total("created") - created == 2
    assert changed_total("deleted") - deleted == 1


def test_outcome_encodes_as_json() -> None:
    encoded = msgspec.json.decode(msgspec.json.encode(SyncOutcome(created=1)))
    assert encoded == {
        "created": 1,
        "updated": 0,
        "replied": 0,
        "deleted": 0,
        "restored": 0,
        "unchanged": 0,
    }
