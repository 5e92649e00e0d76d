"""SMS quiet hours on the recipient's wall clock, across daylight-saving changes."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime

import pytest

from plaudit.messaging.quiet_hours import (
    is_quiet,
    minutes_until_allowed,
    next_allowed,
    recipient_zone,
)

LONDON = zoneinfo.ZoneInfo("Europe/London")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def utc_text(at: float) -> str:
    return datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


@pytest.mark.parametrize(
    ("zone", "now_utc", "expected_utc"),
    [
        # London, clocks forward at 01:00 GMT on 2026-03-29: 08:00 BST is 07:00 UTC.
        (LONDON, "2026-03-28 22:30", "2026-03-29 07:00:00"),
        (LONDON, "2026-03-29 00:59", "2026-03-29 07:00:00"),
        (LONDON, "2026-03-29 05:00", "2026-03-29 07:00:00"),
        # London, clocks back at 02:00 BST on 2026-10-25: 08:00 GMT is 08:00 UTC.
        (LONDON, "2026-10-24 20:30", "2026-10-25 08:00:00"),
        (LONDON, "2026-10-25 01:30", "2026-10-25 08:00:00"),
        # New York, clocks forward at 02:00 EST on 2026-03-08: 08:00 EDT is 12:00 UTC.
        (NEW_YORK, "2026-03-08 04:00", "2026-03-08 12:00:00"),
        (NEW_YORK, "2026-03-08 07:30", "2026-03-08 12:00:00"),
        # New York, clocks back at 02:00 EDT on 2026-11-01: 08:00 EST is 13:00 UTC.
        # 05:30 and 06:30 UTC are the first and the repeated 01:30 local.
        (NEW_YORK, "2026-11-01 05:30", "2026-11-01 13:00:00"),
        (NEW_YORK, "2026-11-01 06:30", "2026-11-01 13:00:00"),
        (NEW_YORK, "2026-11-01 01:00", "2026-11-01 13:00:00"),
    ],
)
def test_next_allowed_across_dst(zone: zoneinfo.ZoneInfo, now_utc: str, expected_utc: str) -> None:
    allowed = next_allowed(utc(now_utc), zone)

    assert utc_text(allowed) == expected_utc
    assert datetime.fromtimestamp(allowed, tz=zone).strftime("%H:%M:%S") == "08:00:00"


@pytest.mark.parametrize(
    ("zone", "local", "quiet"),
    [
        (LONDON, "2026-03-29 07:59:59", True),
        (LONDON, "2026-03-29 08:00:00", False),
        (LONDON, "2026-03-29 20:59:59", False),
        (LONDON, "2026-03-29 21:00:00", True),
        (NEW_YORK, "2026-11-01 08:00:00", False),
        (NEW_YORK, "2026-11-01 20:59:00", False),
        (NEW_YORK, "2026-11-01 21:00:00", True),
        (NEW_YORK, "2026-11-01 23:59:59", True),
    ],
)
def test_quiet_window_edges(zone: zoneinfo.ZoneInfo, local: str, quiet: bool) -> None:
    at = datetime.fromisoformat(local).replace(tzinfo=zone).timestamp()

    assert is_quiet(at, zone) is quiet


def test_allowed_time_is_unchanged() -> None:
    at = utc("2026-06-13 14:15:16")

    assert next_allowed(at, LONDON) == at
    assert minutes_until_allowed(at, LONDON) == 0


def test_minutes_until_allowed_rounds_up() -> None:
    # 07:58:30 BST: 90 seconds before quiet hours end.
    at = utc("2026-06-13 06:58:30")

    assert minutes_until_allowed(at, LONDON) == 2


def test_recipient_zone_prefers_couple() -> None:
    assert recipient_zone("Europe/London", "America/Chicago").key == "Europe/London"
    assert recipient_zone(None, "America/Chicago").key == "America/Chicago"


def test_recipient_zone_rejects_unknown() -> None:
    with pytest.raises(ValueError, match="Mars/Olympus"):
        recipient_zone("Mars/Olympus", "UTC")
