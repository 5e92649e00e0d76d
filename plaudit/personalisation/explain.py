"""The reasons behind a request's channel, send time and wording, as a JSON-ready record."""

from __future__ import annotations

from typing import Any

from plaudit.journal.tx import Tx
from plaudit.personalisation.channel_choice import load_channel_choice
from plaudit.personalisation.sendtime import utc_text
from plaudit.personalisation.store import load_assignment


def explain_request(tx: Tx, request_id: int) -> dict[str, Any] | None:
    """Return the request's group, channel, variant, chosen time and reasons; None before planning.

    ``plaudit ctl request show`` includes it as ``personalisation`` and
    ``plaudit ctl personalisation explain`` prints it.
    """
    channel = _channel_record(tx, request_id)
    assignment = load_assignment(tx, request_id)
    if assignment is None:
        # Only the channel was chosen: the step with channel auto was deferred
        # for quiet hours or ended before its send was planned.
        return None if channel is None else {"request": request_id, "channel": channel}

    choice = assignment.explanation
    return {
        "request": request_id,
        "arm": assignment.arm,
        "variant": assignment.variant,
        "channel": channel,
        "due_at": utc_text(assignment.due_at),
        "send_at": utc_text(assignment.planned_at),
        "window_end": utc_text(choice.window_end),
        "local_time": choice.local_time,
        "timezone": choice.timezone,
        "reason": choice.reason,
        "evidence": {
            "couple_events": choice.recipient_events,
            "vendor_events": choice.vendor_events,
            "couple_share": round(choice.recipient_share, 3),
            "vendor_share": round(choice.vendor_share, 3),
            "prior_share": round(choice.prior_share, 3),
            "score": choice.score,
            "due_score": choice.due_score,
        },
        "draft": {
            "state": assignment.draft_state,
            "reason": assignment.draft_reason,
            "opening_line": assignment.opening_line,
        },
        "sent_at": None if assignment.sent_at is None else utc_text(assignment.sent_at),
        "outcome": assignment.outcome,
    }


def _channel_record(tx: Tx, request_id: int) -> dict[str, Any] | None:
    choice = load_channel_choice(tx, request_id)
    if choice is None:
        return None
    return {
        "chosen": choice.channel,
        "allowed": choice.allowed,
        "receivable": choice.receivable,
        "reason": choice.reason,
    }
