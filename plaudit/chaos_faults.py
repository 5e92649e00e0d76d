"""The fault schedule of ``plaudit demo --chaos`` and its injection into the sandbox.

For every API platform 20 % of requests get a 500 and 5 % of responses a
malformed body.  On top of that, the seed chooses one platform for a hard
outage over 40 % of the fault phase and a second for a short outage of 10 s.
A third gets bursts of 429 and the fourth latency spikes of 2 s.
:class:`FaultInjector` posts the settings in force to the sandbox as the
phase goes on and records when each outage began and ended.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable
from typing import Any, Final, final

import httpx

from plaudit.chaos_storefront import (
    FAULTS_PATH,
    NO_STOREFRONT_FAULTS,
    is_outage,
    storefront_plan,
    storefront_settings_at,
)
from plaudit.demo import DemoError

PLATFORMS: Final = ("google", "facebook", "trustpilot", "yelp")
# Seconds of the short outage on a second platform.
SHORT_OUTAGE: Final = 10.0


@final
@dataclasses.dataclass(frozen=True, slots=True)
class Window:
    """Faults on one platform from ``start`` to ``end`` (seconds into the fault phase)."""

    platform: str
    kind: str  # "outage", "rate_limit" or "latency"
    start: float
    end: float
    settings: dict[str, Any]


BASE_FAULTS: Final[dict[str, Any]] = {"error_rate": 0.2, "malformed_rate": 0.05}
NO_FAULTS: Final[dict[str, Any]] = {
    "error_rate": 0.0,
    "malformed_rate": 0.0,
    "rate_limit_rate": 0.0,
    "latency": 0.0,
}


def fault_plan(seconds: float, rng: random.Random) -> list[Window]:
    """Return the seeded fault windows of a fault phase ``seconds`` long."""
    outage, short, bursts, spikes = rng.sample(PLATFORMS, 4)
    windows = [Window(outage, "outage", 0.25 * seconds, 0.65 * seconds, {"error_rate": 1.0})]
    short_start = rng.uniform(0.1, 0.7) * seconds
    windows.append(
        Window(short, "outage", short_start, short_start + SHORT_OUTAGE, {"error_rate": 1.0})
    )
    for start in _spread(seconds, rng, count=max(2, int(seconds // 15))):
        windows.append(
            Window(
                bursts, "rate_limit", start, start + 3.0, {"rate_limit_rate": 1.0, "retry_after": 1}
            )
        )
    for start in _spread(seconds, rng, count=max(2, int(seconds // 10))):
        windows.append(Window(spikes, "latency", start, start + 2.0, {"latency": 2.0}))
    return sorted(windows, key=lambda window: window.start)


def kill_times(seconds: float, rng: random.Random) -> list[float]:
    """Return the seeded SIGKILL moments: one per 20 s of the run, 1 to 6 of them."""
    count = max(1, min(6, int(seconds // 20)))
    return _spread(seconds, rng, count=count)


def _spread(seconds: float, rng: random.Random, *, count: int) -> list[float]:
    # One moment in each of ``count`` equal spans of [10 %, 85 %] of the phase,
    # so moments never bunch up and none falls in the start-up or the tail.
    span = 0.75 * seconds / count
    return [0.1 * seconds + index * span + rng.uniform(0, span * 0.6) for index in range(count)]


def settings_at(platform: str, elapsed: float, windows: list[Window]) -> dict[str, Any]:
    """Return the fault settings of ``platform`` at ``elapsed`` seconds into the phase."""
    settings = NO_FAULTS | BASE_FAULTS
    for window in windows:
        if window.platform == platform and window.start <= elapsed < window.end:
            settings |= window.settings
    return settings


def faults_path(platform: str) -> str:
    return "/_sandbox/faults" if platform == "google" else f"/_sandbox/{platform}/faults"


@final
class FaultInjector:
    """Sets the sandbox's faults for each moment of the fault phase and records the outages."""

    def __init__(self, *, seconds: float, rng: random.Random, say: Callable[[str], None]) -> None:
        self.windows = fault_plan(seconds, rng)
        self.storefront_windows = storefront_plan(seconds)
        self._say = say
        # Settings in force per API platform, and on the storefront.
        self._active: dict[str, dict[str, Any]] = {}
        self._storefront: dict[str, Any] = {}
        # Unix times at which each storefront outage ended.
        self.storefront_outage_ends: list[float] = []
        # Unix times of each outage's actual end, and each outage's span.
        self.outage_ends: list[tuple[str, float]] = []
        self.outage_spans: list[tuple[str, float, float]] = []
        self.faults_injected: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"<FaultInjector windows={len(self.windows)} outages_ended={len(self.outage_ends)}>"

    def statistics(self) -> dict[str, int]:
        """Return the number of fault windows and of outages ended so far."""
        return {"fault_windows": len(self.windows), "outages_ended": len(self.outage_ends)}

    async def apply(self, client: httpx.AsyncClient, elapsed: float) -> None:
        """Set the platforms' and the storefront's faults for ``elapsed`` seconds into the phase."""
        await self._apply_faults(client, elapsed, self._active)
        self._storefront = await self._apply_storefront_faults(client, elapsed, self._storefront)

    async def switch_off(self, client: httpx.AsyncClient) -> None:
        """Count the faults the sandbox injected, then switch all faults off and end the outages."""
        for platform in PLATFORMS:
            self.faults_injected[platform] = await self._injected(client, platform)
            await self._set_faults(client, platform, NO_FAULTS)
        self.faults_injected["marketplace"] = await self._storefront_injected(client)
        await self._post_faults(client, FAULTS_PATH, NO_STOREFRONT_FAULTS)
        if self._storefront and is_outage(self._storefront):
            self.storefront_outage_ends.append(time.time())
        self._close_open_outages(self._active)

    async def _apply_faults(
        self, client: httpx.AsyncClient, elapsed: float, active: dict[str, dict[str, Any]]
    ) -> None:
        for platform in PLATFORMS:
            expected = settings_at(platform, elapsed, self.windows)
            if active.get(platform) == expected:
                continue
            await self._set_faults(client, platform, expected)
            was_down = active.get(platform, {}).get("error_rate") == 1.0
            down = expected["error_rate"] == 1.0
            now = time.time()
            if down and not was_down:
                self.outage_spans.append((platform, now, float("inf")))
                self._say(f"{elapsed:6.1f}s  {platform}: outage begins")
            elif was_down and not down:
                self._end_outage(platform, now)
                self._say(f"{elapsed:6.1f}s  {platform}: outage ends")
            active[platform] = expected

    def _end_outage(self, platform: str, now: float) -> None:
        self.outage_ends.append((platform, now))
        self.outage_spans = [
            (name, start, now if name == platform and end == float("inf") else end)
            for name, start, end in self.outage_spans
        ]

    def _close_open_outages(self, active: dict[str, dict[str, Any]]) -> None:
        for platform, settings in active.items():
            if settings.get("error_rate") == 1.0:
                self._end_outage(platform, time.time())

    async def _set_faults(
        self, client: httpx.AsyncClient, platform: str, settings: dict[str, Any]
    ) -> None:
        await self._post_faults(client, faults_path(platform), settings)

    async def _post_faults(
        self, client: httpx.AsyncClient, path: str, settings: dict[str, Any]
    ) -> None:
        response = await client.post(path, json=settings)
        if response.status_code != 200:
            raise DemoError(
                f"the sandbox rejected fault settings {settings!r} at {path}: {response.text}"
            )

    async def _apply_storefront_faults(
        self, client: httpx.AsyncClient, elapsed: float, active: dict[str, Any]
    ) -> dict[str, Any]:
        """Set the storefront's faults for ``elapsed``; return the settings now in force."""
        expected = storefront_settings_at(elapsed, self.storefront_windows)
        if expected == active:
            return active
        await self._post_faults(client, FAULTS_PATH, expected)
        if is_outage(expected) and not (active and is_outage(active)):
            self._say(f"{elapsed:6.1f}s  marketplace storefront: outage begins")
        elif active and is_outage(active) and not is_outage(expected):
            self.storefront_outage_ends.append(time.time())
            self._say(f"{elapsed:6.1f}s  marketplace storefront: outage ends")
        return expected

    async def _storefront_injected(self, client: httpx.AsyncClient) -> int:
        """Return the storefront faults the sandbox injected: errors and challenge pages."""
        response = await client.get("/_sandbox/stats")
        response.raise_for_status()
        faults = response.json()["stand_ins"]["marketplace"]["faults"]
        injected: dict[str, int] = faults["injected"]
        errors = sum(count for kind, count in injected.items() if kind != "latency")
        return errors + int(faults["challenges"])

    async def _injected(self, client: httpx.AsyncClient, platform: str) -> int:
        """Return how many faults the sandbox injected into ``platform``'s responses."""
        response = await client.get("/_sandbox/stats")
        response.raise_for_status()
        stats = response.json()
        faults = stats["faults"] if platform == "google" else stats["stand_ins"][platform]["faults"]
        injected: dict[str, int] = faults["injected"]
        # Latency counts every response while a spike lasts; the others count faults.
        return sum(count for kind, count in injected.items() if kind != "latency")
