"""Quota use as the stand-ins report it, in each platform's own response headers.

:class:`CallMeter` counts a stand-in's API calls over a rolling window.  The
Facebook stand-in turns the count into Graph's percentage headers
(``X-App-Usage`` and ``X-Business-Use-Case-Usage``), and the Yelp stand-in
into ``RateLimit-DailyLimit``, ``RateLimit-Remaining`` and
``RateLimit-ResetTime``.  The sandbox's budgets are small enough that a demo
can reach them; the real platforms' budgets are far larger.
"""

from __future__ import annotations

import collections
import datetime
import json
import math
from collections.abc import Callable
from typing import Final, final

_DAY_SECONDS: Final = 86_400.0


@final
class CallMeter:
    """Counts calls within a window of ``window_seconds`` against a ``budget`` of calls.

    The window is rolling, or with ``fixed`` one of consecutive windows from
    clock time 0, such as UTC days for a Unix-time clock.
    """

    def __init__(
        self,
        *,
        budget: int,
        window_seconds: float,
        clock: Callable[[], float],
        fixed: bool = False,
    ) -> None:
        if budget < 1:
            raise ValueError(f"invalid call budget {budget}: use 1 or more")
        self.budget = budget
        self.window_seconds = window_seconds
        self.fixed = fixed
        self._clock = clock
        self._calls: collections.deque[float] = collections.deque()

    def __repr__(self) -> str:
        return f"<CallMeter used={self.used()}/{self.budget} window={self.window_seconds:g}s>"

    def record(self) -> None:
        """Count one call now."""
        self._calls.append(self._clock())

    def used(self) -> int:
        """Return the calls within the window."""
        now = self._clock()
        if self.fixed:
            horizon = math.floor(now / self.window_seconds) * self.window_seconds
        else:
            horizon = now - self.window_seconds
        while self._calls and self._calls[0] < horizon:
            self._calls.popleft()
        return len(self._calls)

    def percent(self) -> int:
        """Return the share of the budget used, 0 to 100, rounded up as Graph rounds it."""
        return min(100, math.ceil(self.used() * 100 / self.budget))


def graph_usage_headers(meter: CallMeter, page_id: str) -> tuple[tuple[str, str], ...]:
    """Return Graph's app and business-use-case usage headers for a Page-token call."""
    calls = meter.percent()
    # The stand-in does no measurable work, so CPU and total time follow the
    # call count at fixed shares.
    usage = {"call_count": calls, "total_cputime": calls // 4, "total_time": calls // 2}
    page_usage = [{"type": "pages", **usage, "estimated_time_to_regain_access": 0}]
    return (
        ("X-App-Usage", json.dumps(usage)),
        ("X-Business-Use-Case-Usage", json.dumps({page_id: page_usage})),
    )


def yelp_usage_headers(meter: CallMeter, *, now: float) -> tuple[tuple[str, str], ...]:
    """Return Yelp's daily quota headers; the quota resets at the next midnight UTC.

    ``now`` is the Unix time.  The meter should count fixed days of Unix
    time, so its count is the calls since midnight UTC.
    """
    midnight = (math.floor(now / _DAY_SECONDS) + 1) * _DAY_SECONDS
    reset = datetime.datetime.fromtimestamp(midnight, tz=datetime.UTC)
    return (
        ("RateLimit-DailyLimit", str(meter.budget)),
        ("RateLimit-Remaining", str(max(0, meter.budget - meter.used()))),
        ("RateLimit-ResetTime", reset.isoformat()),
    )
