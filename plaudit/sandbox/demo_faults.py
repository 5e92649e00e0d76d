"""The demo's fault script: every fault class on every API platform, once.

When the daemon responds on its control socket, one task per platform queues
faults on the platform's listing route.  They are two server errors, a 429
with Retry-After, a connection reset, a malformed body, a review without a
required field and a response held past the request timeout.  Once the
platform has taken them, the task expires the access token and then loops the
platform's paging until a looping page is served.  The queues of
:mod:`plaudit.sandbox.faults` take one request each, so every scripted fault
reaches the daemon exactly once, whatever the timing.

Facebook and Yelp authenticate with static credentials (a Page token, an API
key), so a 401 from them means the operator must reconnect and no client can
recover alone; the script skips that class there.  Yelp serves three excerpts
without paging, so it has no page loop.
"""

from __future__ import annotations

import logging
from typing import Any, Final, final

import httpx
import trio
from prometheus_client.parser import text_string_to_metric_families

from plaudit.sandbox.faults import FAULT_KINDS

log = logging.getLogger(__name__)

PLATFORMS: Final = ("google", "facebook", "trustpilot", "yelp")
# The route that each platform's faults apply to: the review listing.
LISTING_ROUTES: Final = {
    "google": "reviews.list",
    "facebook": "fb.ratings",
    "trustpilot": "tp.reviews",
    "yelp": "yelp.reviews",
}
# The flag of each stand-in that makes its paging repeat itself.
_LOOP_FLAGS: Final = {
    "google": "page_token_loop",
    "facebook": "cursor_loop",
    "trustpilot": "page_loop",
}
NOT_APPLICABLE: Final = {
    ("facebook", "expired_token"): "Page tokens are not refreshed: a 401 needs the operator",
    ("yelp", "expired_token"): "API keys are not refreshed: a 401 needs the operator",
    ("yelp", "page_loop"): "Yelp serves three excerpts without paging",
}
# Maximum seconds the paging loop stays on while no looping page is served.
# A Google listing only meets the loop on its second page, which incremental
# syncs seldom reach, so this covers several full listings (every other 2 s
# sync in the demo).
LOOP_SECONDS: Final = 12.0
# Seconds a scripted timeout delays its response, beyond the demo's 5 s request timeout.
TIMEOUT_DELAY: Final = 8.0
# Maximum seconds to wait for a platform to take its queued faults.
DRAIN_SECONDS: Final = 30.0

# The demo's retry and breaker settings, scaled to a run of seconds: the
# defaults (breaker open for 30 s, waits up to 8 s) would outlast the demo.
# Eight attempts a call take the whole queue of one platform in-call, so each
# scripted fault shows as one repeated attempt in the daemon's metrics.
RELIABILITY_TABLES: Final = """
[platforms.{platform}.breaker]
open_initial = 1.0
open_max = 4.0

[platforms.{platform}.retry]
max_attempts = 8
attempt_timeout = 12.0
deadline = 30.0
backoff_initial = 0.2
backoff_max = 1.0
"""


def reliability_config() -> str:
    """Return the demo's ``breaker`` and ``retry`` tables for every API platform."""
    return "".join(RELIABILITY_TABLES.format(platform=platform) for platform in PLATFORMS)


def faults_path(platform: str) -> str:
    """Return the sandbox route that reads and changes a platform's faults."""
    return "/_sandbox/faults" if platform == "google" else f"/_sandbox/{platform}/faults"


def queued_faults(platform: str) -> dict[str, Any]:
    """Return the fault settings that queue one fault of each queued class."""
    return {
        "routes": [LISTING_ROUTES[platform]],
        "retry_after": 1.0,
        "timeout_delay": TIMEOUT_DELAY,
        "next_statuses": [500, 503, 429],
        "next_resets": 1,
        "next_faults": ["malformed", "missing_fields", "timeout"],
    }


@final
class FaultScript:
    """Runs the fault script against one sandbox and reports what it injected."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.applied: dict[str, list[str]] = {platform: [] for platform in PLATFORMS}
        self.drained: dict[str, bool] = dict.fromkeys(PLATFORMS, False)
        # Set when every platform's script has ended, its faults taken or timed out.
        self.finished = trio.Event()

    def __repr__(self) -> str:
        applied = sum(len(names) for names in self.applied.values())
        return f"<FaultScript {self.base_url} applied={applied}>"

    def statistics(self) -> dict[str, Any]:
        """Return the fault classes applied and whether each platform took its queue."""
        return {"applied": self.applied, "drained": self.drained}

    async def run(self, daemon_ready: trio.Event) -> None:
        """Apply the script to every platform at once, after the daemon is ready."""
        await daemon_ready.wait()
        client = httpx.AsyncClient(base_url=self.base_url, timeout=10.0)
        async with client, trio.open_nursery() as nursery:
            for platform in PLATFORMS:
                nursery.start_soon(self._run_platform, client, platform)
        self.finished.set()

    async def _run_platform(self, client: httpx.AsyncClient, platform: str) -> None:
        await self._post(client, faults_path(platform), queued_faults(platform))
        self.applied[platform] += [
            "server_error",
            "rate_limited",
            "connection_reset",
            "malformed_body",
            "missing_fields",
            "timeout",
        ]
        self.drained[platform] = await self._wait_drained(client, platform)
        # After the queue: a stand-in takes a queued fault before it checks the
        # token, so a 401 served meanwhile would use up a queued fault unseen.
        await self._expire_token(client, platform)

        flag = _LOOP_FLAGS.get(platform)
        if flag is not None:
            await self._post(client, faults_path(platform), {flag: True})
            self.applied[platform].append("page_loop")
            await self._wait_for_loop(client, platform)
            await self._post(client, faults_path(platform), {flag: False})

    async def _expire_token(self, client: httpx.AsyncClient, platform: str) -> None:
        # Revoked access tokens get a 401 on their next use, as expired ones do.
        if platform == "google":
            await self._post(client, "/_sandbox/auth", {"revoke_access_tokens": True})
        elif platform == "trustpilot":
            await self._post(client, faults_path(platform), {"revoke_tokens": True})
        else:
            return
        self.applied[platform].append("expired_token")

    async def _wait_drained(self, client: httpx.AsyncClient, platform: str) -> bool:
        """Wait until the platform's queued faults are all taken; False after DRAIN_SECONDS."""
        with trio.move_on_after(DRAIN_SECONDS):
            while True:
                queued = fault_statistics(await self._stats(client), platform)
                if not (
                    queued["queued_statuses"] or queued["queued_resets"] or queued["queued_faults"]
                ):
                    return True
                await trio.sleep(0.25)
        log.warning("demo.faults_not_drained", extra={"platform": platform})
        return False

    async def _wait_for_loop(self, client: httpx.AsyncClient, platform: str) -> None:
        """Wait until the platform served a looping page, at most LOOP_SECONDS."""
        with trio.move_on_after(LOOP_SECONDS):
            while True:
                injected = fault_statistics(await self._stats(client), platform)["injected"]
                if injected["page_loop"]:
                    return
                await trio.sleep(0.25)

    async def _stats(self, client: httpx.AsyncClient) -> dict[str, Any]:
        response = await client.get("/_sandbox/stats")
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats

    async def _post(self, client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> None:
        response = await client.post(path, json=body)
        response.raise_for_status()

    async def injected(self) -> dict[str, dict[str, int]]:
        """Return the faults the sandbox injected, by platform and kind; zero counts left out."""
        async with httpx.AsyncClient(base_url=self.base_url, timeout=10.0) as client:
            stats = await self._stats(client)
        counts: dict[str, dict[str, int]] = {}
        for platform in PLATFORMS:
            injected = fault_statistics(stats, platform)["injected"]
            counts[platform] = {
                kind: int(injected[kind]) for kind in FAULT_KINDS if injected.get(kind)
            }
        return counts


def fault_statistics(stats: dict[str, Any], platform: str) -> dict[str, Any]:
    """Return one platform's fault statistics from the sandbox's ``/_sandbox/stats`` document."""
    if platform == "google":
        faults: dict[str, Any] = stats["faults"]
    else:
        faults = stats["stand_ins"][platform]["faults"]
    return faults


def retries_by_cause(metrics_text: str) -> dict[str, dict[str, int]]:
    """Return ``plaudit_platform_retries_total`` of a Prometheus text page by platform and cause."""
    seen: dict[str, dict[str, int]] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name != "plaudit_platform_retries":
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total") or sample.value <= 0:
                continue
            causes = seen.setdefault(sample.labels["platform"], {})
            causes[sample.labels["cause"]] = int(sample.value)
    return seen


def platform_faults_summary(
    script: FaultScript, injected: dict[str, dict[str, int]], errors: dict[str, dict[str, int]]
) -> dict[str, dict[str, Any]]:
    """Return, per platform, the faults scripted and injected and the errors the daemon saw.

    The sandbox counts the faults it served; an expired token is a revocation,
    so the script's own record counts it.
    """
    return {
        platform: {
            "faults_scripted": script.applied[platform],
            "faults_injected": injected.get(platform, {})
            | ({"expired_token": 1} if "expired_token" in script.applied[platform] else {}),
            "errors_seen": errors.get(platform, {}),
            "faults_not_applicable": {
                name: reason
                for (owner, name), reason in NOT_APPLICABLE.items()
                if owner == platform
            },
        }
        for platform in PLATFORMS
    }
