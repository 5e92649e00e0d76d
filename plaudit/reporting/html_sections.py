"""HTML tables of the per-channel funnel and the personalisation lift.

Every value from the journal is HTML-escaped, as in the rest of the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from plaudit.reporting.model import VendorReport
from plaudit.reporting.render import interval, percent


def channel_and_lift_sections(vendor: VendorReport) -> list[str]:
    """Return the channel table and the lift table of one vendor, with their notes."""
    parts = ["<h3>Requests per channel</h3>"]
    channels = list(vendor.funnel.channels.values())
    if channels:
        headers = ["Channel", "Couples", "Requests", "Delivered", "Clicked", "Bounced"]
        headers.append("Delivery rate")
        rows = [
            [
                item.channel,
                str(item.couples),
                str(item.requests),
                str(item.delivered),
                str(item.clicked),
                str(item.bounced),
                percent(item.delivery_rate) + (" (estimated)" if item.delivery_estimated else ""),
            ]
            for item in channels
        ]
        parts.append(_table("channels", headers, rows))
    else:
        parts.append('<p class="note">No request sent on any channel yet.</p>')

    parts.append("<h3>Personalisation lift</h3>")
    if not vendor.lift:
        parts.append('<p class="note">No personalised request sent yet.</p>')
        return parts
    headers = ["Campaign", "Holdout", "Personalised", "Pending"]
    headers += ["Relative lift (95% CI)", "Absolute lift (95% CI)"]
    rows = [
        [
            item.campaign,
            f"{item.holdout_conversions}/{item.holdout_couples} ({percent(item.holdout_rate)})",
            f"{item.treatment_conversions}/{item.treatment_couples} "
            f"({percent(item.treatment_rate)})",
            str(item.pending_couples),
            interval(item.relative_lift, item.relative_low, item.relative_high),
            interval(item.absolute_lift, item.absolute_low, item.absolute_high),
        ]
        for item in vendor.lift
    ]
    parts.append(_table("lift", headers, rows))
    parts += [
        f'<p class="note">{escape(item.campaign)}: {escape(item.note)}</p>'
        for item in vendor.lift
        if item.note
    ]
    return parts


def _table(table_id: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(header)}</th>" for header in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f'<table id="{table_id}"><tr>{head}</tr>{body}</table>'
