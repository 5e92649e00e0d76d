"""The report as text tables, JSON and CSV files."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Final

import msgspec

from plaudit.reporting.model import CampaignLift, PlatformFigures, Report, VendorReport

# One CSV file per table, named after it.
CSV_FILES: Final = (
    "platforms.csv",
    "months.csv",
    "ratings.csv",
    "funnel.csv",
    "channels.csv",
    "lift.csv",
)


def to_json(report: Report) -> str:
    """Return the report as one line of JSON."""
    return msgspec.json.encode(report).decode()


def percent(value: float | None) -> str:
    """Format a 0-to-1 rate as a percentage, or "-" when it is empty."""
    return "-" if value is None else f"{value * 100:.1f}%"


def number(value: float | None) -> str:
    """Format a figure that may be empty."""
    return "-" if value is None else f"{value:g}"


def render_text(report: Report) -> str:
    """Return the report as aligned tables, one block per vendor."""
    blocks = [f"report of {report.journal} at {report.generated_at}"]
    for vendor in report.vendors:
        blocks.append(_vendor_text(vendor))
    return "\n\n".join(blocks) + "\n"


def _vendor_text(vendor: VendorReport) -> str:
    lines = [f"VENDOR {vendor.vendor}"]
    lines += [f"  note: {note}" for note in vendor.notes]
    window = vendor.platforms[0].trend.window_days if vendor.platforms else 0
    headers = ["PLATFORM", "REVIEWS", "AVG STARS", "POSITIVE", "REPLY RATE", "MEDIAN REPLY H"]
    headers += ["CONVERSION", "DAYS TO REVIEW", f"TREND {window} D (BEFORE -> LAST)"]
    rows = [_platform_row(figures) for figures in vendor.platforms]
    lines.append(_table(headers, rows) if rows else "no platforms")
    for figures in vendor.platforms:
        lines += [f"  {figures.platform}: {note}" for note in figures.notes]

    funnel = vendor.funnel
    lines.append(
        f"FUNNEL couples {funnel.couples}, sent {funnel.sent}, delivered {funnel.delivered}, "
        f"clicked {funnel.clicked}, reviewed {funnel.reviewed}; conversion "
        f"{percent(funnel.conversion_rate)}, median days to review "
        f"{number(funnel.median_days_to_review)}"
    )
    clicks = ", ".join(f"{name} {count}" for name, count in funnel.clicked_per_platform.items())
    lines.append(f"CLICKED PER PLATFORM {clicks or 'none'}")
    lines += [f"  note: {note}" for note in funnel.notes]
    mail = vendor.deliverability
    lines.append(
        f"DELIVERABILITY sent {mail.sent}, delivered {mail.delivered} "
        f"({percent(mail.delivery_rate)}), hard bounces {mail.hard_bounces} "
        f"({percent(mail.hard_bounce_rate)}), complaints {mail.complaints} "
        f"({percent(mail.complaint_rate)})"
        + (" (delivery estimated)" if mail.delivery_estimated else "")
    )
    lines += [f"  note: {note}" for note in mail.notes]
    lines += _channel_lines(vendor)
    lines += _rating_lines(vendor)
    lines += _lift_lines(vendor)
    lines.append(
        f"LINKED couples with reviews {vendor.links.couples_with_reviews}, "
        f"on several platforms {vendor.links.couples_on_several_platforms}"
    )
    lead = vendor.recommendation
    lines.append(f"LEAD WITH {lead.platform or '-'}: {lead.reason}")
    return "\n".join(lines)


def _channel_lines(vendor: VendorReport) -> list[str]:
    channels = vendor.funnel.channels.values()
    if not channels:
        return ["CHANNELS no request sent on any channel yet"]
    headers = ["CHANNEL", "COUPLES", "REQUESTS", "DELIVERED", "CLICKED", "BOUNCED"]
    headers.append("DELIVERY RATE")
    rows = [
        [
            item.channel,
            str(item.couples),
            str(item.requests),
            str(item.delivered),
            str(item.clicked),
            str(item.bounced),
            percent(item.delivery_rate) + (" estimated" if item.delivery_estimated else ""),
        ]
        for item in channels
    ]
    return ["CHANNELS", _table(headers, rows)]


def _rating_lines(vendor: VendorReport) -> list[str]:
    rated = [figures for figures in vendor.platforms if figures.stars.rated]
    lines = []
    if rated:
        headers = ["STARS", *(f"{stars}*" for stars in "12345")]
        rows = [
            [figures.platform, *(str(figures.stars.distribution.get(s, 0)) for s in "12345")]
            for figures in rated
        ]
        lines += ["RATING DISTRIBUTION (live reviews)", _table(headers, rows)]
    months = [figures for figures in vendor.platforms if figures.reviews_per_month]
    if months:
        lines.append("REVIEWS PER MONTH")
        lines += [
            f"  {figures.platform}: "
            + ", ".join(f"{month} {count}" for month, count in figures.reviews_per_month.items())
            for figures in months
        ]
    return lines


def _lift_lines(vendor: VendorReport) -> list[str]:
    if not vendor.lift:
        return ["LIFT no personalised request sent yet"]
    headers = ["CAMPAIGN", "HOLDOUT", "TREATMENT", "PENDING", "RELATIVE LIFT (95% CI)"]
    headers.append("ABSOLUTE LIFT (95% CI)")
    rows = [
        [
            item.campaign,
            f"{item.holdout_conversions}/{item.holdout_couples} {percent(item.holdout_rate)}",
            f"{item.treatment_conversions}/{item.treatment_couples} {percent(item.treatment_rate)}",
            str(item.pending_couples),
            interval(item.relative_lift, item.relative_low, item.relative_high),
            interval(item.absolute_lift, item.absolute_low, item.absolute_high),
        ]
        for item in vendor.lift
    ]
    lines = ["LIFT (review conversion, personalised against holdout)", _table(headers, rows)]
    lines += [f"  {item.campaign}: {item.note}" for item in vendor.lift if item.note]
    return lines


def interval(estimate: float | None, low: float | None, high: float | None) -> str:
    """Format a signed rate with its interval, like "+12.0% (+3.1% to +21.4%)", or "-"."""
    if estimate is None or low is None or high is None:
        return "-"
    return f"{estimate * 100:+.1f}% ({low * 100:+.1f}% to {high * 100:+.1f}%)"


def _platform_row(figures: PlatformFigures) -> list[str]:
    trend = figures.trend
    return [
        figures.platform,
        str(figures.reviews),
        number(figures.stars.average),
        percent(figures.recommendations.positive_share),
        percent(figures.replies.reply_rate),
        number(figures.replies.median_reply_hours),
        percent(figures.conversion_rate),
        number(figures.median_days_to_review),
        f"{trend.direction} ({trend.previous_reviews} -> {trend.recent_reviews})",
    ]


def _table(headers: list[str], rows: list[list[str]]) -> str:
    lines = [headers, *rows]
    widths = [max(len(line[column]) for line in lines) for column in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def write_csv(report: Report, directory: Path) -> list[Path]:
    """Write one CSV file per table into ``directory``, creating it; return the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    tables: dict[str, tuple[list[str], list[list[Any]]]] = {
        "platforms.csv": _platform_table(report),
        "months.csv": _month_table(report),
        "ratings.csv": _rating_table(report),
        "funnel.csv": _funnel_table(report),
        "channels.csv": _channel_table(report),
        "lift.csv": _lift_table(report),
    }
    written = []
    for name in CSV_FILES:
        headers, rows = tables[name]
        path = directory / name
        with path.open("w", encoding="utf-8", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(headers)
            writer.writerows([[_csv_cell(value) for value in row] for row in rows])
        written.append(path)
    return written


def _platform_table(report: Report) -> tuple[list[str], list[list[Any]]]:
    headers = [
        "vendor", "platform", "reviews", "deleted", "edited", "rated", "average_stars",
        "positive", "negative", "positive_share", "replied", "reply_rate", "median_reply_hours",
        "matched", "couples_sent_link", "couples_clicked", "couples_reviewed", "conversion_rate",
        "median_days_to_review", "clock_adjusted", "trend", "recent_reviews", "previous_reviews",
    ]  # fmt: skip
    rows = [
        [
            vendor.vendor,
            item.platform,
            item.reviews,
            item.deleted,
            item.edited,
            item.stars.rated,
            _blank(item.stars.average),
            item.recommendations.positive,
            item.recommendations.negative,
            _blank(item.recommendations.positive_share),
            item.replies.replied,
            _blank(item.replies.reply_rate),
            _blank(item.replies.median_reply_hours),
            item.matched,
            item.couples_sent_link,
            # Blank when clicks are not counted for the platform (no review link configured).
            vendor.funnel.clicked_per_platform.get(item.platform, ""),
            item.couples_reviewed,
            _blank(item.conversion_rate),
            _blank(item.median_days_to_review),
            item.clock_adjusted,
            item.trend.direction,
            item.trend.recent_reviews,
            item.trend.previous_reviews,
        ]
        for vendor in report.vendors
        for item in vendor.platforms
    ]
    return headers, rows


def _month_table(report: Report) -> tuple[list[str], list[list[Any]]]:
    rows = [
        [vendor.vendor, item.platform, month, count]
        for vendor in report.vendors
        for item in vendor.platforms
        for month, count in item.reviews_per_month.items()
    ]
    return ["vendor", "platform", "month", "reviews"], rows


def _rating_table(report: Report) -> tuple[list[str], list[list[Any]]]:
    rows = [
        [vendor.vendor, item.platform, stars, count]
        for vendor in report.vendors
        for item in vendor.platforms
        for stars, count in item.stars.distribution.items()
    ]
    return ["vendor", "platform", "stars", "reviews"], rows


def _funnel_table(report: Report) -> tuple[list[str], list[list[Any]]]:
    headers = ["vendor", "couples", "sent", "delivered", "clicked", "reviewed"]
    headers += ["conversion_rate", "median_days_to_review", "lead_with", "lead_reason"]
    rows = [
        [
            vendor.vendor,
            vendor.funnel.couples,
            vendor.funnel.sent,
            vendor.funnel.delivered,
            vendor.funnel.clicked,
            vendor.funnel.reviewed,
            _blank(vendor.funnel.conversion_rate),
            _blank(vendor.funnel.median_days_to_review),
            vendor.recommendation.platform or "",
            vendor.recommendation.reason,
        ]
        for vendor in report.vendors
    ]
    return headers, rows


def _channel_table(report: Report) -> tuple[list[str], list[list[Any]]]:
    headers = ["vendor", "channel", "couples", "requests", "delivered", "clicked", "bounced"]
    headers += ["delivery_rate", "delivery_estimated"]
    rows = [
        [
            vendor.vendor,
            item.channel,
            item.couples,
            item.requests,
            item.delivered,
            item.clicked,
            item.bounced,
            _blank(item.delivery_rate),
            item.delivery_estimated,
        ]
        for vendor in report.vendors
        for item in vendor.funnel.channels.values()
    ]
    return headers, rows


def _lift_table(report: Report) -> tuple[list[str], list[list[Any]]]:
    fields = list(CampaignLift.__struct_fields__)
    rows = [
        [vendor.vendor, *(_blank_any(getattr(item, field)) for field in fields)]
        for vendor in report.vendors
        for item in vendor.lift
    ]
    return ["vendor", *fields], rows


def _blank_any(value: Any) -> Any:
    return "" if value is None else value


def _csv_cell(value: Any) -> Any:
    """Prefix text that a spreadsheet would run as a formula with an apostrophe."""
    if isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r")):
        return "'" + value
    return value


def _blank(value: float | None) -> float | str:
    return "" if value is None else value
