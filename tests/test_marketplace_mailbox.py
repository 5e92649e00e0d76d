"""Review notifications in a Maildir, written by the sandbox and stored in a real journal."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from plaudit.connectors.marketplace.mailbox import MaildirError, read_new_notifications
from plaudit.journal import Journal
from plaudit.reviews.notifications import import_notifications
from plaudit.sandbox.marketplace import MarketplaceStandIn, write_notifications

FIXTURES = Path(__file__).parent / "fixtures" / "marketplace"
NOW = 1_767_225_600.0


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    opened = Journal.open(tmp_path / "journal.sqlite3")
    yield opened
    opened.close()


@pytest.fixture
def stand_in() -> MarketplaceStandIn:
    return MarketplaceStandIn(seed=7, elapsed=lambda: 0.0, script_seconds=0)


def test_sandbox_notices_match_truth(
    journal: Journal, tmp_path: Path, stand_in: MarketplaceStandIn
) -> None:
    maildir = tmp_path / "mail"
    reviews = stand_in.world.live("willow-barn")
    write_notifications(maildir, reviews, vendor="Willow Barn", domain="www.hitched.co.uk")

    report = import_notifications(journal, maildir, profiles={"hitched": "willow-barn"}, now=NOW)

    assert report.messages == len(reviews)
    assert report.skipped == []
    assert report.created == len(reviews)
    stored = journal.query("SELECT review_id, stars, author, text, created_at FROM reviews")
    expected = {
        (
            review.review_id,
            review.stars,
            review.author,
            " ".join(review.text.split()),
            _midnight(review.created),
        )
        for review in reviews
    }
    assert set(stored) == expected


def _midnight(moment: float) -> str:
    return datetime.fromtimestamp(moment, tz=UTC).strftime("%Y-%m-%dT00:00:00.000Z")


def test_processed_messages_move_to_cur(
    journal: Journal, tmp_path: Path, stand_in: MarketplaceStandIn
) -> None:
    maildir = tmp_path / "mail"
    reviews = stand_in.world.live("willow-barn")[:2]
    write_notifications(maildir, reviews, vendor="Willow Barn", domain="www.hitched.co.uk")

    import_notifications(journal, maildir, profiles={"hitched": "willow-barn"}, now=NOW)
    again = import_notifications(journal, maildir, profiles={"hitched": "willow-barn"}, now=NOW)

    assert list((maildir / "new").iterdir()) == []
    assert sorted(path.name[-3:] for path in (maildir / "cur").iterdir()) == [":2,", ":2,"]
    assert again.messages == 0


def test_mailbox_skips_other_mail(journal: Journal, tmp_path: Path) -> None:
    maildir = tmp_path / "mail"
    for name in ("new", "cur", "tmp"):
        (maildir / name).mkdir(parents=True)
    for fixture in ("notify_not_review.eml", "notify_zola_quoted.eml", "notify_theknot_html.eml"):
        (maildir / "new" / fixture.removesuffix(".eml")).write_bytes(
            (FIXTURES / fixture).read_bytes()
        )

    report = import_notifications(journal, maildir, profiles={"theknot": "lumen"}, now=NOW)

    assert report.messages == 3
    assert report.created == 1
    assert len(report.skipped) == 2
    assert report.skipped[0].startswith("notify_not_review: ")
    assert "no profile is configured for platform 'zola'" in report.skipped[1]
    assert journal.query("SELECT platform, profile, review_id FROM reviews") == [
        ("theknot", "lumen", "55120")
    ]


def test_forwarded_copy_is_duplicate(journal: Journal, tmp_path: Path) -> None:
    maildir = tmp_path / "mail"
    for name in ("new", "cur", "tmp"):
        (maildir / name).mkdir(parents=True)
    data = (FIXTURES / "notify_hitched_forwarded.eml").read_bytes()
    (maildir / "new" / "a").write_bytes(data)
    (maildir / "new" / "b").write_bytes(data)

    report = import_notifications(journal, maildir, profiles={"hitched": "oak-ivy"}, now=NOW)

    assert (report.reviews, report.duplicates, report.created) == (1, 1, 1)


def test_not_a_maildir_rejected(tmp_path: Path) -> None:
    with pytest.raises(MaildirError, match="is not a Maildir"):
        read_new_notifications(tmp_path)
