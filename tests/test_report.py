"""``plaudit report``: figures from a real journal, empty cases, CSV, text and the command."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plaudit.journal import Journal
from plaudit.matching.store import refresh_matches
from plaudit.messaging.couples import Couple, store_couples
from plaudit.metrics import REGISTRY
from plaudit.reporting.command import ReportError, read_report
from plaudit.reporting.comparison import MIN_COUPLES_FOR_CONVERSION, recommend, trend
from plaudit.reporting.figures import ReportContext, median, ratio
from plaudit.reporting.metrics import publish_report
from plaudit.reporting.model import PlatformFigures, Report
from plaudit.reporting.render import CSV_FILES, render_text, write_csv
from plaudit.reviews.model import Review, format_timestamp
from plaudit.reviews.store import apply_snapshot
from tests.support import plaudit_env

# 2026-03-01T00:00:00Z.
NOW = 1_772_323_200.0
DAY = 86400.0
CONTEXT = ReportContext(
    vendor="Willow & Vine",
    review_links=frozenset({"google", "facebook"}),
    campaign_links={"after": frozenset({"google", "facebook"})},
)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite3"


@pytest.fixture
def journal(journal_path: Path, clock: Clock) -> Iterator[Journal]:
    opened = Journal.open(journal_path, clock=clock)
    yield opened
    opened.close()


def put(journal: Journal, clock: Clock, *reviews: Review, at: float = NOW) -> None:
    clock.now = at
    for review in reviews:
        with journal.transaction() as tx:
            apply_snapshot(
                tx,
                platform=review.platform,
                profile=review.profile,
                reviews=[review],
                complete=False,
            )


def review(review_id: str, *, created: float, **fields: Any) -> Review:
    values: dict[str, Any] = {
        "platform": "google",
        "profile": "locations/1",
        "review_id": review_id,
        "stars": 5,
        "author": "Someone",
        "created_at": format_timestamp(created),
        "updated_at": format_timestamp(created),
    }
    values.update(fields)
    return Review(**values)


def report_of(journal_path: Path, now: float = NOW) -> Report:
    return read_report(journal_path, context=CONTEXT, now=now)


def platform(report: Report, name: str) -> PlatformFigures:
    return next(item for item in report.vendors[0].platforms if item.platform == name)


def test_vendor_without_reviews_has_empty_figures(journal: Journal, journal_path: Path) -> None:
    report = report_of(journal_path)

    vendor = report.vendors[0]
    assert vendor.vendor == "Willow & Vine"
    assert [item.platform for item in vendor.platforms] == ["facebook", "google"]
    google = platform(report, "google")
    assert google.reviews == 0
    assert google.stars.average is None
    assert google.replies.reply_rate is None
    assert google.conversion_rate is None
    assert google.trend.direction == "no data"
    assert "no reviews yet" in google.notes
    assert vendor.funnel.conversion_rate is None
    assert vendor.deliverability.delivery_rate is None
    assert any("no reviews yet" in note for note in vendor.notes)
    assert vendor.recommendation.platform in {"facebook", "google"}
    assert "fewest reviews" in vendor.recommendation.reason
    assert "no reviews yet" in render_text(report)


def test_stars_and_recommendations_kept_apart(
    journal: Journal, clock: Clock, journal_path: Path
) -> None:
    put(
        journal,
        clock,
        review("g1", created=NOW - 5 * DAY, stars=5),
        review("g2", created=NOW - 4 * DAY, stars=3, reply_text="Thanks",
               reply_updated_at=format_timestamp(NOW - 3 * DAY)),
        review("f1", created=NOW - 4 * DAY, platform="facebook", profile="p1", stars=None,
               recommendation="positive"),
        review("f2", created=NOW - 4 * DAY, platform="facebook", profile="p1", stars=None,
               recommendation="negative"),
        review("f3", created=NOW - 4 * DAY, platform="facebook", profile="p1", stars=None,
               recommendation="positive"),
    )  # fmt: skip

    report = report_of(journal_path)

    google = platform(report, "google")
    assert google.stars.average == 4.0
    assert google.stars.distribution == {"1": 0, "2": 0, "3": 1, "4": 0, "5": 1}
    assert google.recommendations.positive_share is None
    assert google.replies.replied == 1
    assert google.replies.reply_rate == 0.5
    assert google.replies.median_reply_hours == 24.0
    facebook = platform(report, "facebook")
    assert facebook.stars.average is None
    assert facebook.stars.rated == 0
    assert facebook.recommendations.positive == 2
    assert facebook.recommendations.negative == 1
    assert facebook.recommendations.positive_share == pytest.approx(0.6667)
    assert google.reviews_per_month == {"2026-02": 2}


def test_edit_from_five_to_one_star(journal: Journal, clock: Clock, journal_path: Path) -> None:
    put(journal, clock, review("g1", created=NOW - 5 * DAY, stars=5))
    put(
        journal,
        clock,
        review("g1", created=NOW - 5 * DAY, stars=1, updated_at=format_timestamp(NOW - DAY)),
        at=NOW + 60,
    )

    google = platform(report_of(journal_path), "google")

    assert google.stars.average == 1.0
    assert google.stars.distribution["5"] == 0
    assert google.stars.distribution["1"] == 1
    assert google.edited == 1
    assert any("edited" in note for note in google.notes)


def test_skewed_clock_review_dated_by_first_sight(
    journal: Journal, clock: Clock, journal_path: Path
) -> None:
    # The platform dates the review in 2027; Plaudit stored it on 2026-02-27.
    ahead = review("g1", created=NOW + 300 * DAY)
    put(journal, clock, ahead, at=NOW - 2 * DAY)

    google = platform(report_of(journal_path), "google")

    assert google.clock_adjusted == 1
    assert google.reviews_per_month == {"2026-02": 1}
    assert google.trend.recent_reviews == 1
    assert any("future" in note for note in google.notes)


def add_couple(journal: Journal, names: list[str], email: str) -> int:
    couple = Couple(
        names=names,
        emails=[email],
        phone=None,
        wedding_date="2026-01-10",
        venue="Lakeside",
        timezone=None,
        consent_email=True,
        consent_sms=False,
    )
    with journal.transaction() as tx:
        store_couples(tx, [couple], vendor="Willow & Vine")
        row = tx.execute("SELECT id FROM couples WHERE email = ?", (email,)).fetchone()
    return int(row[0])


def send_request(journal: Journal, couple_id: int, *, sent_at: float, events: list[str]) -> None:
    message_id = f"<request-{couple_id}@example.com>"
    with journal.transaction() as tx:
        tx.execute(
            "INSERT INTO requests (couple_id, campaign, step, channel, state, scheduled_at,"
            " sent_at, message_id, updated_at) VALUES (?, 'after', 0, 'email', 'sent', ?, ?, ?, ?)",
            (couple_id, sent_at, sent_at, message_id, sent_at),
        )
        for kind in events:
            tx.execute(
                "INSERT INTO message_events (address, domain, kind, provider, message_id,"
                " occurred_at, recorded_at) VALUES ('a@example.com', 'example.com', ?, 'smtp',"
                " ?, ?, ?)",
                (kind, message_id, sent_at, sent_at),
            )


def test_funnel_and_time_to_review(journal: Journal, clock: Clock, journal_path: Path) -> None:
    turner = add_couple(journal, ["William Turner", "Zoe Turner"], "will@example.com")
    reed = add_couple(journal, ["Maya Ortiz", "Jonah Reed"], "maya@example.com")
    add_couple(journal, ["Lena Vogel"], "lena@example.net")
    send_request(
        journal, turner, sent_at=NOW - 20 * DAY, events=["accepted", "delivered", "clicked"]
    )
    send_request(journal, reed, sent_at=NOW - 20 * DAY, events=["accepted", "delivered"])
    put(journal, clock, review("g1", created=NOW - 16 * DAY, author="Bill Turner"))
    with journal.transaction() as tx:
        refresh_matches(tx, campaign_links=dict(CONTEXT.campaign_links))

    report = report_of(journal_path)

    funnel = report.vendors[0].funnel
    assert (funnel.couples, funnel.sent, funnel.delivered, funnel.clicked, funnel.reviewed) == (
        3,
        2,
        2,
        1,
        1,
    )
    assert funnel.conversion_rate == 0.5
    assert funnel.median_days_to_review == 4.0
    google = platform(report, "google")
    assert google.matched == 1
    assert google.couples_sent_link == 2
    assert google.couples_reviewed == 1
    assert google.conversion_rate == 0.5
    mail = report.vendors[0].deliverability
    assert (mail.sent, mail.delivered, mail.clicked) == (2, 2, 1)
    assert mail.delivery_rate == 1.0
    assert mail.complaint_rate == 0.0
    assert report.vendors[0].links.couples_with_reviews == 1


def figures(name: str, *, sent: int, reviewed: int, recent: int) -> PlatformFigures:
    item = PlatformFigures(platform=name, profiles={})
    item.couples_sent_link = sent
    item.couples_reviewed = reviewed
    item.conversion_rate = reviewed / sent if sent else None
    item.trend = trend([(NOW, 5)] * recent, now=NOW)
    return item


def test_recommendation_prefers_measured_conversion() -> None:
    enough = MIN_COUPLES_FOR_CONVERSION
    platforms = [
        figures("google", sent=enough, reviewed=2, recent=9),
        figures("facebook", sent=enough, reviewed=5, recent=1),
    ]
    lead = recommend(platforms, linkable={"google", "facebook"})
    assert lead.platform == "facebook"
    assert lead.basis == "conversion"
    assert "5 of 10" in lead.reason


def test_recommendation_without_data_picks_fewest_recent() -> None:
    platforms = [
        figures("google", sent=2, reviewed=1, recent=9),
        figures("facebook", sent=2, reviewed=0, recent=1),
        figures("yelp", sent=0, reviewed=0, recent=0),
    ]
    lead = recommend(platforms, linkable={"google", "facebook"})
    assert lead.platform == "facebook"
    assert lead.basis == "fewest_recent"


def test_recommendation_tie_names_the_rule() -> None:
    platforms = [
        figures("google", sent=0, reviewed=0, recent=0),
        figures("facebook", sent=0, reviewed=0, recent=0),
    ]
    lead = recommend(platforms, linkable={"google", "facebook"})
    assert lead.platform == "facebook"
    assert lead.reason.startswith("Facebook has the fewest reviews")
    assert "as do Google, and it comes first by name" in lead.reason


def test_recommendation_without_links_explains() -> None:
    lead = recommend([figures("yelp", sent=0, reviewed=0, recent=3)], linkable=set())
    assert lead.platform is None
    assert "review_links" in lead.reason


def test_trend_directions() -> None:
    rising = trend([(NOW - DAY, 5)] * 4 + [(NOW - 100 * DAY, 3)], now=NOW)
    assert rising.direction == "up"
    assert rising.recent_average == 5.0
    assert rising.previous_average == 3.0
    falling = trend([(NOW - 100 * DAY, 4)] * 3, now=NOW)
    assert falling.direction == "down"
    assert falling.recent_average is None


def test_csv_files_have_a_row_per_platform(
    journal: Journal, tmp_path: Path, journal_path: Path
) -> None:
    written = write_csv(report_of(journal_path), tmp_path / "csv")
    assert [path.name for path in written] == list(CSV_FILES)
    with (tmp_path / "csv" / "platforms.csv").open(encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert [row["platform"] for row in rows] == ["facebook", "google"]
    assert rows[0]["average_stars"] == ""


def test_missing_journal_is_explained(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no journal at"):
        read_report(tmp_path / "absent.sqlite3", context=CONTEXT, now=NOW)


def test_foreign_file_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ReportError, match="cannot read the journal"):
        read_report(path, context=CONTEXT, now=NOW)


def test_command_prints_json_and_writes_files(
    journal: Journal, clock: Clock, tmp_path: Path
) -> None:
    put(journal, clock, review("g1", created=NOW - 5 * DAY, stars=4))
    journal.close()
    command = [
        sys.executable, "-m", "plaudit", "report",
        "--state-dir", str(tmp_path),
        "--json",
        "--csv", str(tmp_path / "csv"),
        "--html", str(tmp_path / "report.html"),
    ]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env=plaudit_env(), check=False
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    [vendor] = document["vendors"]
    [google] = vendor["platforms"]
    assert google["reviews"] == 1
    assert google["stars"]["average"] == 4.0
    assert (tmp_path / "csv" / "funnel.csv").is_file()
    assert "<svg" in (tmp_path / "report.html").read_text(encoding="utf-8")


def test_command_without_journal_fails_cleanly(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "plaudit", "report", "--state-dir", str(tmp_path)]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env=plaudit_env(), check=False
    )
    assert result.returncode == 1
    assert "no journal at" in result.stderr
    assert "Traceback" not in result.stderr


def test_gauges_follow_the_report(journal: Journal, clock: Clock, journal_path: Path) -> None:
    put(journal, clock, review("g1", created=NOW - 5 * DAY, stars=4))
    report = report_of(journal_path)

    publish_report(report, matches={"candidate": 3})

    assert REGISTRY.get_sample_value("plaudit_report_reviews", {"platform": "google"}) == 1.0
    assert REGISTRY.get_sample_value("plaudit_report_average_stars", {"platform": "google"}) == 4.0
    # Facebook has no star ratings: its average is absent, not a false 0.
    assert (
        REGISTRY.get_sample_value("plaudit_report_average_stars", {"platform": "facebook"}) is None
    )
    assert REGISTRY.get_sample_value("plaudit_report_review_matches", {"state": "candidate"}) == 3.0
    assert REGISTRY.get_sample_value("plaudit_report_funnel_couples", {"stage": "sent"}) == 0.0
    lead = report.vendors[0].recommendation.platform
    assert REGISTRY.get_sample_value("plaudit_report_lead_platform", {"platform": lead}) == 1.0


def test_median_of_even_and_empty() -> None:
    assert median([4.0, 1.0]) == 2.5
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([]) is None
    assert ratio(1, 0) is None


def test_csv_cells_never_start_formulas(journal: Journal, clock: Clock, tmp_path: Path) -> None:
    put(journal, clock, review("g1", created=NOW - DAY, platform="=HYPERLINK(1)", profile="p"))
    report = read_report(tmp_path / "journal.sqlite3", context=ReportContext(), now=NOW)
    write_csv(report, tmp_path / "csv")
    with (tmp_path / "csv" / "platforms.csv").open(encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert rows[0]["platform"] == "'=HYPERLINK(1)"
