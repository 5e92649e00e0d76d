"""``plaudit ctl personalisation``: lift with its interval, request explanations, profiles."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

COMMANDS = ("personalisation",)


def add_parsers(commands: Any) -> None:
    """Add the personalisation subcommand to ``plaudit ctl``'s subparsers."""
    parser = commands.add_parser(
        "personalisation",
        help="measured lift over the holdout group, why a request goes out when it does, "
        "and what the vendor knows about a couple",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    lift = actions.add_parser(
        "lift", help="review conversion of treated couples against the holdout group, 95% CI"
    )
    lift.add_argument("--campaign", help="only this campaign (default: all campaigns)")
    explain = actions.add_parser(
        "explain", help="the group, channel, variant, chosen send time and reasons of one request"
    )
    explain.add_argument("request", type=int, metavar="REQUEST_ID")
    profile = actions.add_parser(
        "profile", help="set where a couple found the vendor and the vendor's notes"
    )
    profile.add_argument("couple", type=int, metavar="COUPLE_ID")
    profile.add_argument(
        "--found-on", default="", help="a [vendor] review_links platform, such as google"
    )
    profile.add_argument(
        "--notes", default="", help="a few sentences about the couple; the only input to drafts"
    )


def request_args(options: argparse.Namespace) -> dict[str, Any]:
    """Build the request's ``args`` from the parsed options."""
    if options.action == "lift":
        return {"action": "lift", **({"campaign": options.campaign} if options.campaign else {})}
    if options.action == "explain":
        return {"action": "explain", "request": options.request}
    return {
        "action": "profile",
        "couple": options.couple,
        "found_on": options.found_on,
        "notes": options.notes,
    }


def renderers() -> dict[str, Callable[[dict[str, Any]], str]]:
    return {"personalisation": render_personalisation}


def render_personalisation(result: dict[str, Any]) -> str:
    action = result.get("action")
    if action == "lift":
        return render_lift(result)
    if action == "explain":
        return render_explain(result)
    return f"couple {result.get('couple')}: found_on {result.get('found_on') or '-'}, notes saved\n"


def render_lift(result: dict[str, Any]) -> str:
    from plaudit.daemon.ctl import _cell, _dict, _list, format_table

    lines = []
    for name in ("holdout", "treatment"):
        group = _dict(result.get(name))
        lines.append(
            f"{name:<10} {_cell(group.get('conversions'))} of {_cell(group.get('couples'))} "
            f"settled couples converted ({_percent(group.get('rate'))})"
        )
    lines.append(f"pending    {_cell(result.get('pending_couples'))} couples inside their window")
    relative = _dict(result.get("relative_lift"))
    absolute = _dict(result.get("absolute_lift"))
    if relative:
        lines.append(
            f"lift       {_signed(relative.get('estimate'))} relative, 95% CI "
            f"{_signed(relative.get('low'))} to {_signed(relative.get('high'))}"
        )
    if absolute:
        lines.append(
            f"difference {_signed(absolute.get('estimate'))} points, 95% CI "
            f"{_signed(absolute.get('low'))} to {_signed(absolute.get('high'))}"
        )
    if result.get("note"):
        lines.append(f"note: {result['note']}")

    rows = [
        [
            _cell(row.get("campaign")),
            _cell(row.get("step")),
            _cell(row.get("arm")),
            _cell(row.get("variant")),
            _cell(row.get("sent")),
            _cell(row.get("converted")),
            _cell(row.get("not_converted")),
        ]
        for row in map(_dict, _list(result.get("variants")))
    ]
    if rows:
        headers = ["CAMPAIGN", "STEP", "GROUP", "VARIANT", "SENT", "CONVERTED", "NOT"]
        lines += ["", format_table(headers, rows).rstrip("\n")]

    channel_rows = [
        [
            _cell(row.get("arm")),
            _cell(row.get("channel")),
            _cell(row.get("sent")),
            _cell(row.get("converted")),
            _cell(row.get("not_converted")),
        ]
        for row in map(_dict, _list(result.get("channels")))
    ]
    if channel_rows:
        headers = ["GROUP", "CHANNEL", "SENT", "CONVERTED", "NOT"]
        lines += ["", format_table(headers, channel_rows).rstrip("\n")]
    return "\n".join(lines) + "\n"


def render_explain(result: dict[str, Any]) -> str:
    from plaudit.daemon.ctl import _cell, _dict
    from plaudit.daemon.ctl_text import wrap_field

    channel = _dict(result.get("channel"))
    channel_lines = []
    if channel:
        allowed = ", ".join(str(name) for name in channel.get("allowed") or [])
        # Reasons are sentences: printed whole and wrapped, never cut like a table cell.
        channel_lines = wrap_field(
            "channel  ",
            f"{_cell(channel.get('chosen'))} of {allowed or '-'}: {channel.get('reason') or '-'}",
        )
    if "due_at" not in result:
        # Only the channel is chosen until the step's send is planned.
        heading = f"request {_cell(result.get('request'))}: send not planned yet"
        return "\n".join([heading, *channel_lines]) + "\n"

    evidence = _dict(result.get("evidence"))
    draft = _dict(result.get("draft"))
    lines = [
        f"request {_cell(result.get('request'))}: {_cell(result.get('arm'))} group, "
        f"variant {_cell(result.get('variant'))}",
        *channel_lines,
        f"due      {_cell(result.get('due_at'))}",
        f"send at  {_cell(result.get('send_at'))} ({_cell(result.get('local_time'))} "
        f"{_cell(result.get('timezone'))}); window ends {_cell(result.get('window_end'))}",
        *wrap_field("why      ", result.get("reason")),
        f"evidence {_cell(evidence.get('couple_events'))} events of the couple "
        f"(weight {_cell(evidence.get('couple_share'))}), "
        f"{_cell(evidence.get('vendor_events'))} of the vendor's couples "
        f"(weight {_cell(evidence.get('vendor_share'))}), "
        f"prior weight {_cell(evidence.get('prior_share'))}",
        f"draft    {_cell(draft.get('state'))}"
        + (f": {draft['reason']}" if draft.get("reason") else ""),
        f"outcome  {_cell(result.get('outcome'))}",
    ]
    return "\n".join(lines) + "\n"


def _percent(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    return f"{value * 100:.1f}%"


def _signed(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    return f"{value * 100:+.1f}%"
