"""The HTML report: self-contained markup, escaping, and a render in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from plaudit.reporting.html import (
    SCALE_COLOUR,
    bar_chart,
    render_html,
    reply_time,
    trend_text,
)
from plaudit.reporting.model import (
    Deliverability,
    Funnel,
    LinkSummary,
    PlatformFigures,
    Recommendation,
    Report,
    Trend,
    VendorReport,
)
from plaudit.reporting.names import platform_name

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Flags that turn off Chromium's own background traffic: updates, sync, QUIC, first-run pages.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def sample_report(vendor: str = "Willow & Vine <Photography>") -> Report:
    google = PlatformFigures(platform="google", profiles={"locations/1": 3}, reviews=3)
    google.stars.rated = 3
    google.stars.average = 4.33
    google.stars.distribution = {"1": 0, "2": 0, "3": 1, "4": 0, "5": 2}
    google.reviews_per_month = {"2026-01": 1, "2026-02": 2}
    facebook = PlatformFigures(platform="facebook", profiles={"p1": 1}, reviews=1)
    facebook.recommendations.positive = 1
    facebook.recommendations.positive_share = 1.0
    facebook.notes = ["no couple was sent this platform's link: conversion is empty"]
    vendor_report = VendorReport(
        vendor=vendor,
        platforms=[facebook, google],
        funnel=Funnel(
            couples=4, sent=3, delivered=2, clicked=1, reviewed=1, conversion_rate=0.3333
        ),
        deliverability=Deliverability(sent=3, delivered=2, delivery_rate=0.6667),
        recommendation=Recommendation(
            platform="facebook", basis="fewest_recent", reason="facebook has the fewest reviews"
        ),
        links=LinkSummary(couples_with_reviews=1),
    )
    return Report(
        generated_at="2026-03-01T00:00:00+00:00", journal="/tmp/j", vendors=[vendor_report]
    )


def test_page_has_no_scripts_or_fetches() -> None:
    page = render_html(sample_report())
    assert "<script" not in page.lower()
    assert not re.search(r"""\b(?:src|href)\s*=""", page, re.IGNORECASE)
    assert "http://" not in page
    assert "https://" not in page
    assert "default-src 'none'" in page


def test_page_escapes_journal_text() -> None:
    page = render_html(sample_report())
    assert "Willow &amp; Vine &lt;Photography&gt;" in page
    assert "<Photography>" not in page


def test_page_has_a_chart_per_figure() -> None:
    page = render_html(sample_report())
    # Reviews per platform, per month, google's stars and the funnel; facebook has no stars.
    assert page.count("<svg") == 4


def test_empty_chart_becomes_note() -> None:
    assert "No data for reviews per month yet" in bar_chart("reviews per month", [])


def test_all_zero_chart_has_no_division() -> None:
    chart = bar_chart("request funnel", [("sent", 0.0), ("reviewed", 0.0)])
    assert chart.count("<rect") == 2
    assert 'width="0.0"' in chart


@pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="headless Chromium is not installed (Debian package chromium); .ci/run installs it",
)
def test_chromium_renders_the_page(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(sample_report()), encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="plaudit-chromium-") as profile:
        command = [
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--dump-dom",
            page.as_uri(),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    # The DOM as Chromium built it: every chart and the table parsed as elements.
    assert dom.count("<svg") == 4
    # Bars: 2 platforms, 2 months, 5 star values, 5 funnel stages.
    assert dom.count("<rect") == 2 + 2 + 5 + 5
    assert '<table id="platforms">' in dom
    assert "Lead with <strong>Facebook</strong>" in dom
    assert "Willow &amp; Vine &lt;Photography&gt;" in dom


@pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="headless Chromium is not installed (Debian package chromium); .ci/run installs it",
)
def test_chromium_screenshot_is_drawn(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(sample_report()), encoding="utf-8")
    shot = tmp_path / "report.png"
    with tempfile.TemporaryDirectory(prefix="plaudit-chromium-") as profile:
        command = [
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--screenshot={shot}",
            "--window-size=900,1600",
            page.as_uri(),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    # At 900x1600 a blank page was a 7.5 kB PNG and this report about 85 kB (Chromium 150,
    # Debian bookworm), so 20 kB separates them with room to spare.
    assert len(data) > 20_000


def test_platforms_use_vendor_names() -> None:
    assert platform_name("facebook") == "Facebook"
    assert platform_name("weddingwire") == "WeddingWire"
    assert platform_name("bodas") == "Bodas.net"
    assert platform_name("newsite") == "newsite"


@pytest.mark.parametrize(
    ("hours", "text"),
    [(None, "-"), (0.25, "0.2 hours"), (47.5, "47.5 hours"), (49.0, "2 days"), (720.0, "30 days")],
)
def test_reply_time_units(hours: float | None, text: str) -> None:
    assert reply_time(hours) == text


def test_trend_text_states_windows() -> None:
    assert trend_text(Trend(window_days=90)) == "no reviews in the last 180 days"
    rising = Trend(window_days=90, recent_reviews=6, previous_reviews=2, direction="up")
    assert trend_text(rising) == "up: 6 reviews, 2 in the 90 days before"


def test_table_names_platforms_for_vendors() -> None:
    page = render_html(sample_report())
    table = page[page.index('<table id="platforms">') : page.index("</table>")]
    assert "<td>Facebook</td>" in table
    assert "<td>Google</td>" in table
    assert "<th>Trend, last 90 days</th>" in table
    assert "<td>facebook</td>" not in table


def test_month_chart_uses_one_colour() -> None:
    chart = bar_chart("months", [("2026-01", 1.0), ("2026-02", 2.0)], colour=SCALE_COLOUR)
    assert chart.count(f'fill="{SCALE_COLOUR}"') == 2


def test_vendor_without_reviews_says_so() -> None:
    report = sample_report()
    report.vendors[0].platforms = []
    page = render_html(report)
    assert "No reviews yet on any platform." in page
    assert "No data for reviews per platform yet." in page
