"""The reasons behind a request's send time and wording, as a JSON-ready record."""

from __future__ import annotations

from typing import Any

from plaudit.journal.tx import Tx
from plaudit.personalisation.sendtime import utc_text
from plaudit.personalisation.store import load_assignment


def explain_request(tx: Tx, request_id: int) -> dict[str, Any] | None:
    """Return the request's group, variant, chosen time and its reasons; None before planning.

    ``plaudit ctl request show`` includes it as ``personalisation`` and
    ``plaudit ctl personalisation explain`` prints it.
    """
    assignment = load_assignment(tx, request_id)
    if assignment is None:
        return None

    choice = assignment.explanation
    return {
        "request": request_id,
        "arm": assignment.arm,
        "variant": assignment.variant,
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
