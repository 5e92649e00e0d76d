"""Quiet hours for SMS: texts go out only between 08:00 and 21:00 in the recipient's zone.

Times are computed on the local wall clock with :mod:`zoneinfo`, so a
window that crosses a daylight-saving change still opens at 08:00 local
time, not 24 hours after the previous opening.
"""

from __future__ import annotations

import math
import zoneinfo
from datetime import UTC, datetime, time, timedelta
from typing import Final

QUIET_END: Final = time(8, 0)
QUIET_START: Final = time(21, 0)


def recipient_zone(couple_zone: str | None, vendor_zone: str) -> zoneinfo.ZoneInfo:
    """Return the couple's zone, else the vendor's; raises ValueError naming an unknown zone."""
    name = couple_zone or vendor_zone
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name like America/Chicago"
        ) from error


def is_quiet(at: float, zone: zoneinfo.ZoneInfo) -> bool:
    """Return True when Unix time ``at`` falls in quiet hours on the zone's wall clock."""
    local = datetime.fromtimestamp(at, tz=zone).time()
    return not QUIET_END <= local < QUIET_START


def next_allowed(at: float, zone: zoneinfo.ZoneInfo) -> float:
    """Return ``at`` when a text may go out then, else the Unix time quiet hours end.

    The result is whole minutes on the local clock: 08:00:00 of the same day
    before 08:00, of the next day from 21:00 on.
    """
    if not is_quiet(at, zone):
        return at

    local = datetime.fromtimestamp(at, tz=zone)
    day = local.date() if local.time() < QUIET_END else local.date() + timedelta(days=1)
    # combine() with a zone gives the offset in force at 08:00 that day, so a
    # clock change during the night moves the UTC instant, not the local time.
    opening = datetime.combine(day, QUIET_END, tzinfo=zone)
    return opening.astimezone(UTC).timestamp()


def minutes_until_allowed(at: float, zone: zoneinfo.ZoneInfo) -> int:
    """Return the whole minutes, rounded up, from ``at`` until a text may go out."""
    return math.ceil((next_allowed(at, zone) - at) / 60.0)
