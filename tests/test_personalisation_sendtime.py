"""The send-time model: shrinkage, quiet hours, windows, time zones and DST."""

from __future__ import annotations

import zoneinfo
from datetime import datetime

import pytest

from plaudit.personalisation.sendtime import (
    BUCKETS,
    choose_send_time,
    fit_model,
    fixed_time,
    hour_of_week,
    is_allowed,
    next_allowed,
    resolve_zone,
    spread_events,
)

CHICAGO = zoneinfo.ZoneInfo("America/Chicago")
# Tuesday 2026-06-16 10:00 in Chicago.
DUE = datetime(2026, 6, 16, 10, 0, tzinfo=CHICAGO).timestamp()


def local(moment: float, zone: zoneinfo.ZoneInfo = CHICAGO) -> datetime:
    return datetime.fromtimestamp(moment, zone)


def evening_clicks(count: int, hour: int = 19) -> list[int]:
    """Buckets of clicks at ``hour`` local time spread over the week."""
    return [(day % 7) * 24 + hour for day in range(count)]


def test_spread_adds_one_count_per_event() -> None:
    counts = spread_events([5, 100, 167])

    assert len(counts) == BUCKETS
    assert sum(counts) == pytest.approx(3.0)
    assert counts[100] == max(counts)


def test_no_history_keeps_due_time() -> None:
    model = fit_model([], [], recipient_weight=4, vendor_weight=24)
    choice = choose_send_time(model, due_at=DUE, window_hours=24, now=DUE - 60, zone=CHICAGO)

    assert choice.send_at == DUE
    assert choice.prior_share == 1.0
    assert "no clicks or reviews" in choice.reason


def test_couple_clicks_move_send_to_evening() -> None:
    model = fit_model(evening_clicks(3), [], recipient_weight=4, vendor_weight=24)
    choice = choose_send_time(model, due_at=DUE, window_hours=24, now=DUE - 60, zone=CHICAGO)

    assert local(choice.send_at).hour == 19
    assert local(choice.send_at).date() == local(DUE).date()
    assert choice.recipient_events == 3
    assert "moved 9 h" in choice.reason


def test_couple_without_history_follows_vendor() -> None:
    vendor = evening_clicks(40, hour=12)
    model = fit_model([], vendor, recipient_weight=4, vendor_weight=24)
    choice = choose_send_time(model, due_at=DUE, window_hours=24, now=DUE - 60, zone=CHICAGO)

    assert local(choice.send_at).hour == 12
    assert choice.recipient_share == 0.0
    assert choice.vendor_share == pytest.approx(40 / 64)


def test_couple_history_outweighs_vendor() -> None:
    model = fit_model(
        evening_clicks(12, hour=20),
        evening_clicks(40, hour=12),
        recipient_weight=4,
        vendor_weight=24,
    )
    choice = choose_send_time(model, due_at=DUE, window_hours=24, now=DUE - 60, zone=CHICAGO)

    assert local(choice.send_at).hour == 20
    assert choice.recipient_share == pytest.approx(0.75)


def test_quiet_hours_never_chosen() -> None:
    # All clicks at 23:00 and 06:00, both quiet.
    buckets = evening_clicks(7, hour=23) + evening_clicks(7, hour=6)
    model = fit_model(buckets, [], recipient_weight=4, vendor_weight=24)
    choice = choose_send_time(model, due_at=DUE, window_hours=48, now=DUE - 60, zone=CHICAGO)

    assert is_allowed(choice.send_at, CHICAGO)
    assert 8 <= local(choice.send_at).hour < 21


def test_zero_window_keeps_due_time() -> None:
    model = fit_model(evening_clicks(5), [], recipient_weight=4, vendor_weight=24)
    choice = choose_send_time(model, due_at=DUE, window_hours=0, now=DUE - 60, zone=CHICAGO)

    assert choice.send_at == DUE


def test_passed_window_sends_at_once() -> None:
    model = fit_model(evening_clicks(5), [], recipient_weight=4, vendor_weight=24)
    now = DUE + 3 * 86400.0
    choice = choose_send_time(model, due_at=DUE, window_hours=24, now=now, zone=CHICAGO)

    assert choice.send_at == now
    assert "window had passed" in choice.reason


def test_late_start_uses_rest_of_window() -> None:
    model = fit_model(evening_clicks(5), [], recipient_weight=4, vendor_weight=24)
    now = DUE + 2 * 3600.0 + 120
    choice = choose_send_time(model, due_at=DUE, window_hours=24, now=now, zone=CHICAGO)

    assert choice.send_at >= now
    assert local(choice.send_at).hour == 19


def test_window_without_allowed_hour_waits_for_morning() -> None:
    due = datetime(2026, 6, 16, 22, 0, tzinfo=CHICAGO).timestamp()
    model = fit_model([], [], recipient_weight=4, vendor_weight=24)
    choice = choose_send_time(model, due_at=due, window_hours=2, now=due - 60, zone=CHICAGO)

    assert local(choice.send_at) == datetime(2026, 6, 17, 8, 0, tzinfo=CHICAGO)
    assert "no allowed hour" in choice.reason


def test_fixed_time_is_due_or_now() -> None:
    assert fixed_time(due_at=DUE, now=DUE - 5, zone=CHICAGO, reason="x").send_at == DUE
    assert fixed_time(due_at=DUE, now=DUE + 5, zone=CHICAGO, reason="x").send_at == DUE + 5


def test_unknown_couple_zone_falls_back_to_vendor() -> None:
    zone, problem = resolve_zone("Mars/Olympus_Mons", "Europe/London")

    assert zone.key == "Europe/London"
    assert "unknown couple time zone 'Mars/Olympus_Mons'" in problem


def test_unknown_zones_fall_back_to_utc() -> None:
    zone, problem = resolve_zone("Nowhere/Zone", "Also/Nowhere")

    assert zone.key == "UTC"
    assert "using UTC" in problem


def test_known_zone_has_no_problem() -> None:
    zone, problem = resolve_zone(None, "America/Chicago")

    assert zone.key == "America/Chicago"
    assert problem == ""


@pytest.mark.parametrize(
    ("zone_name", "before", "expected"),
    [
        # Europe/London springs forward at 01:00 on 2026-03-29.
        ("Europe/London", datetime(2026, 3, 29, 0, 30), datetime(2026, 3, 29, 8, 0)),
        # ... and falls back at 02:00 on 2026-10-25.
        ("Europe/London", datetime(2026, 10, 25, 1, 30), datetime(2026, 10, 25, 8, 0)),
        # America/New_York springs forward on 2026-03-08 and falls back on 2026-11-01.
        ("America/New_York", datetime(2026, 3, 8, 2, 30), datetime(2026, 3, 8, 8, 0)),
        ("America/New_York", datetime(2026, 11, 1, 1, 30), datetime(2026, 11, 1, 8, 0)),
        ("America/New_York", datetime(2026, 11, 1, 21, 0), datetime(2026, 11, 2, 8, 0)),
    ],
)
def test_next_allowed_across_dst(zone_name: str, before: datetime, expected: datetime) -> None:
    zone = zoneinfo.ZoneInfo(zone_name)
    moment = before.replace(tzinfo=zone).timestamp()

    allowed = datetime.fromtimestamp(next_allowed(moment, zone), zone)

    assert allowed.replace(tzinfo=None) == expected


def test_hour_of_week_uses_local_time() -> None:
    # Tuesday 10:00 Chicago is bucket 24 + 10.
    assert hour_of_week(DUE, CHICAGO) == 34
    assert hour_of_week(DUE, zoneinfo.ZoneInfo("UTC")) == 24 + 15


def test_fit_rejects_nonpositive_weights() -> None:
    with pytest.raises(ValueError, match="recipient_prior_weight must be above 0"):
        fit_model([], [], recipient_weight=0, vendor_weight=24)
