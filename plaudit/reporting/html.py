"""The report as one self-contained HTML page with inline SVG charts.

The page has no scripts and loads nothing: styles are inline, charts are
SVG elements in the page, and a Content-Security-Policy of ``default-src
'none'`` makes a browser refuse any request the markup might cause.  Every
text from the journal (vendor, platform, notes) is HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Final

from plaudit.reporting.html_sections import channel_and_lift_sections
from plaudit.reporting.model import PlatformFigures, Report, Trend, VendorReport
from plaudit.reporting.names import platform_name
from plaudit.reporting.render import number, percent

CHART_WIDTH: Final = 560
BAR_HEIGHT: Final = 18
BAR_GAP: Final = 6
LABEL_WIDTH: Final = 150
# Months shown in the reviews-per-month chart, the latest ones.
MAX_MONTHS: Final = 24
COLOURS: Final = ("#2f6f9f", "#c0504d", "#9bbb59", "#8064a2", "#f79646", "#4bacc6", "#7f7f7f")
# One colour for charts whose bars are steps of one scale (months, stars).
SCALE_COLOUR: Final = COLOURS[0]
# Reply times up to this many hours read better in hours than in days.
MAX_HOURS_SHOWN: Final = 48.0
STYLE: Final = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.note { color: #555; font-size: 90%; }
.lead { background: #eef5ea; padding: 0.6em; border-left: 4px solid #9bbb59; }
svg text { font-size: 12px; fill: #222; }
"""


def render_html(report: Report) -> str:
    """Return the whole page."""
    sections = "\n".join(_vendor_section(vendor) for vendor in report.vendors)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Plaudit review report</title>
<style>{STYLE}</style>
</head>
<body>
<h1>Plaudit review report</h1>
<p class="note">Journal {escape(report.journal)}, generated {escape(report.generated_at)}.</p>
{sections}
</body>
</html>
"""


def _vendor_section(vendor: VendorReport) -> str:
    parts = [f'<section class="vendor"><h2>{escape(vendor.vendor)}</h2>']
    parts += [f'<p class="note">{escape(note)}</p>' for note in vendor.notes]
    lead = vendor.recommendation
    leader = platform_name(lead.platform) if lead.platform else "no platform"
    parts.append(
        f'<p class="lead" id="lead">Lead with <strong>{escape(leader)}</strong>: '
        f"{escape(lead.reason)}</p>"
    )

    if not vendor.platforms:
        parts.append('<p class="note">No reviews yet on any platform.</p>')
    parts.append(_platform_table(vendor.platforms))
    for figures in vendor.platforms:
        name = platform_name(figures.platform)
        parts += [f'<p class="note">{escape(name)}: {escape(note)}</p>' for note in figures.notes]

    parts += _review_charts(vendor.platforms)
    parts += _funnel_section(vendor)
    parts += channel_and_lift_sections(vendor)
    parts.append("</section>")
    return "\n".join(parts)


def _review_charts(platforms: Sequence[PlatformFigures]) -> list[str]:
    counts = [(platform_name(figures.platform), float(figures.reviews)) for figures in platforms]
    parts = ["<h3>Reviews per platform</h3>", bar_chart("reviews per platform", counts)]
    months = bar_chart("reviews per month", _months(platforms), colour=SCALE_COLOUR)
    parts += ["<h3>Reviews per month, all platforms</h3>", months]
    for figures in platforms:
        if not figures.stars.rated:
            continue
        distribution = [
            (f"{stars} star" if stars == "1" else f"{stars} stars", float(count))
            for stars, count in figures.stars.distribution.items()
        ]
        name = platform_name(figures.platform)
        parts.append(f"<h3>Star ratings on {escape(name)}</h3>")
        parts.append(bar_chart(f"star ratings on {name}", distribution, colour=SCALE_COLOUR))
    return parts


def _funnel_section(vendor: VendorReport) -> list[str]:
    funnel = vendor.funnel
    stages = [
        ("couples", float(funnel.couples)),
        ("sent", float(funnel.sent)),
        ("delivered", float(funnel.delivered)),
        ("clicked", float(funnel.clicked)),
        ("reviewed", float(funnel.reviewed)),
    ]
    funnel_chart = bar_chart("request funnel", stages, colour=SCALE_COLOUR)
    parts = ["<h3>Request funnel</h3>", funnel_chart]
    days = funnel.median_days_to_review
    parts.append(
        f"<p>Conversion {percent(funnel.conversion_rate)}, median days to review: "
        f"{'none yet' if days is None else number(days)}.</p>"
    )
    if funnel.clicked_per_platform:
        clicks = ", ".join(
            f"{platform_name(name)} {count}" for name, count in funnel.clicked_per_platform.items()
        )
        parts.append(f"<p>Couples who clicked each platform's review link: {escape(clicks)}.</p>")
    parts += [f'<p class="note">{escape(note)}</p>' for note in funnel.notes]

    mail = vendor.deliverability
    parts.append(
        f"<p>Deliverability: sent {mail.sent}, delivered {mail.delivered} "
        f"({percent(mail.delivery_rate)}), hard bounces {mail.hard_bounces} "
        f"({percent(mail.hard_bounce_rate)}), complaints {mail.complaints} "
        f"({percent(mail.complaint_rate)})"
        + (", delivery estimated" if mail.delivery_estimated else "")
        + ".</p>"
    )
    parts += [f'<p class="note">{escape(note)}</p>' for note in mail.notes]
    return parts


def _platform_table(platforms: Sequence[PlatformFigures]) -> str:
    window = platforms[0].trend.window_days if platforms else 0
    headers = ["Platform", "Reviews", "Average stars", "Recommended", "Replied to"]
    headers += ["Median time to reply", "Conversion", "Median days to review"]
    headers.append(f"Trend, last {window} days" if window else "Trend")
    head = "".join(f"<th>{header}</th>" for header in headers)
    rows = []
    for figures in platforms:
        cells = [
            platform_name(figures.platform),
            str(figures.reviews),
            number(figures.stars.average),
            percent(figures.recommendations.positive_share),
            percent(figures.replies.reply_rate),
            reply_time(figures.replies.median_reply_hours),
            percent(figures.conversion_rate),
            number(figures.median_days_to_review),
            trend_text(figures.trend),
        ]
        rows.append("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in cells) + "</tr>")
    return f'<table id="platforms"><tr>{head}</tr>{"".join(rows)}</table>'


def reply_time(hours: float | None) -> str:
    """Format a reply time in hours, or in days once it is longer than two days."""
    if hours is None:
        return "-"
    if hours <= MAX_HOURS_SHOWN:
        return f"{hours:.1f} hours"
    return f"{hours / 24:.0f} days"


def trend_text(trend: Trend) -> str:
    """Describe the review count of the last window against the window before it."""
    days = trend.window_days
    if trend.direction == "no data":
        return f"no reviews in the last {2 * days} days"
    return (
        f"{trend.direction}: {trend.recent_reviews} reviews, "
        f"{trend.previous_reviews} in the {days} days before"
    )


def _months(platforms: Sequence[PlatformFigures]) -> list[tuple[str, float]]:
    totals: dict[str, int] = {}
    for figures in platforms:
        for month, count in figures.reviews_per_month.items():
            totals[month] = totals.get(month, 0) + count
    latest = sorted(totals.items())[-MAX_MONTHS:]
    return [(month, float(count)) for month, count in latest]


def bar_chart(title: str, bars: Sequence[tuple[str, float]], *, colour: str | None = None) -> str:
    """Return a horizontal bar chart as an SVG element, or a note when there are no bars.

    Bars take turns through COLOURS unless ``colour`` gives one for all.
    """
    if not bars:
        return f'<p class="note">No data for {escape(title)} yet.</p>'
    largest = max(value for _label, value in bars)
    # An all-zero chart still draws its labels, with no bar lengths to divide by.
    scale = (CHART_WIDTH - LABEL_WIDTH - 60) / largest if largest > 0 else 0.0
    height = len(bars) * (BAR_HEIGHT + BAR_GAP) + BAR_GAP
    shapes = []
    for index, (label, value) in enumerate(bars):
        top = BAR_GAP + index * (BAR_HEIGHT + BAR_GAP)
        length = value * scale
        fill = colour or COLOURS[index % len(COLOURS)]
        shapes.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{top + 13}" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{LABEL_WIDTH}" y="{top}" width="{length:.1f}" height="{BAR_HEIGHT}" '
            f'fill="{fill}"><title>{escape(label)}: {value:g}</title></rect>'
            f'<text x="{LABEL_WIDTH + length + 6:.1f}" y="{top + 13}">{value:g}</text>'
        )
    return (
        f'<svg class="chart" role="img" '
        f'aria-label="{escape(title)}" width="{CHART_WIDTH}" height="{height}" '
        f'viewBox="0 0 {CHART_WIDTH} {height}">{"".join(shapes)}</svg>'
    )
