"""``plaudit ctl review match`` and ``review links`` against a running daemon."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plaudit.journal import Journal
from plaudit.messaging.couples import Couple, store_couples
from plaudit.reviews.model import Review, format_timestamp
from plaudit.reviews.store import apply_snapshot
from tests.support import DaemonDirs, ctl, open_daemon, query, stop_daemon, wait_for

pytestmark = pytest.mark.slow

CONFIG = """\
[daemon]
shutdown_timeout = 10.0

[metrics]
enabled = false
"""
# 2026-03-01T00:00:00Z, weeks after the couples' weddings.
REVIEWED_AT = 1_772_323_200.0


def prepare_journal(path: Path) -> None:
    """Two couples with the same names, and one review that could be either's."""
    journal = Journal.open(path)
    try:
        with journal.transaction() as tx:
            for email in ("anna@example.com", "smiths@example.org"):
                couple = Couple(
                    names=["Anna Smith", "Ben Smith"],
                    emails=[email],
                    phone=None,
                    wedding_date="2026-02-14",
                    venue="Lakeside",
                    timezone=None,
                    consent_email=True,
                    consent_sms=False,
                )
                store_couples(tx, [couple], vendor="Willow")
            review = Review(
                platform="google",
                profile="accounts/1/locations/2",
                review_id="g1",
                stars=5,
                author="Ben and Anna Smith",
                created_at=format_timestamp(REVIEWED_AT),
                updated_at=format_timestamp(REVIEWED_AT),
            )
            apply_snapshot(
                tx, platform="google", profile=review.profile, reviews=[review], complete=False
            )
    finally:
        journal.close()


def match_count(journal: Path) -> int:
    rows = query(journal, "SELECT count(*) FROM review_matches")
    return int(rows[0][0]) if rows else 0


async def test_operator_confirms_ambiguous_match(tmp_path: Path) -> None:
    dirs = DaemonDirs(tmp_path)
    dirs.config.write_text(CONFIG, encoding="utf-8")
    prepare_journal(dirs.journal)
    process = await open_daemon(dirs)
    try:
        # The matching task scores the journal as soon as it starts.
        await wait_for(
            lambda: match_count(dirs.journal) == 2, timeout=60.0, what="two candidate matches"
        )
        listing = ctl(dirs, "--json", "review", "match")
        assert listing.returncode == 0, listing.stderr
        matches = json.loads(listing.stdout)["matches"]
        assert [match["state"] for match in matches] == ["candidate", "candidate"]
        assert {match["couple_id"] for match in matches} == {1, 2}

        text = ctl(dirs, "review", "match")
        assert text.returncode == 0, text.stderr
        assert "couple 1" in text.stdout
        assert "name 1.00" in text.stdout

        confirmed = ctl(dirs, "review", "match", "--confirm", str(matches[1]["id"]))
        assert confirmed.returncode == 0, confirmed.stderr
        assert "is now confirmed" in confirmed.stdout

        links = ctl(dirs, "--json", "review", "links")
        [group] = json.loads(links.stdout)["groups"]
        assert group["couple_id"] == matches[1]["couple_id"]
        assert [review["review_id"] for review in group["reviews"]] == ["g1"]

        missing = ctl(dirs, "review", "match", "--reject", "999")
        assert missing.returncode == 1
        assert "no review match has id 999" in missing.stderr
    finally:
        assert await stop_daemon(process) == 0
