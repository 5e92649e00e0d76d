"""The event types that the daemon emits and webhook endpoints may subscribe to.

README.md, section Webhooks, documents when each fires and its payload
keys.  ``check-config`` rejects an endpoint filter that names a type not
listed here, so a typo cannot silently subscribe to nothing.
"""

from __future__ import annotations

from typing import Final

EVENT_TYPES: Final = (
    "review.created",
    "review.updated",
    "review.deleted",
    "review.replied",
    "request.sent",
    "request.delivered",
    "request.bounced",
    "request.clicked",
    "request.converted",
    "platform.degraded",
    "platform.down",
    "platform.recovered",
    "deliverability.alert",
)


def unknown_pattern_error(pattern: str) -> str:
    """Return why an endpoint's event pattern matches no known type, or "" when it matches one.

    ``pattern`` has the form the config accepts: ``*``, ``prefix.*`` or an exact type.
    """
    if pattern == "*":
        return ""
    if pattern.endswith(".*"):
        prefix = pattern[:-1]
        if any(event_type.startswith(prefix) for event_type in EVENT_TYPES):
            return ""
        pattern_kind = "prefix"
    elif pattern in EVENT_TYPES:
        return ""
    else:
        pattern_kind = "event type"
    known = ", ".join(EVENT_TYPES)
    return (
        f'unknown {pattern_kind} "{pattern}"; use one of {known}, '
        'a prefix such as "review.*", or "*"'
    )
