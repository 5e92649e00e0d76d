"""The pure steps of the marketplace actors: which jobs are due, and what a fetch means.

:func:`due_jobs` turns the configured profiles and the slots already queued
into new jobs; :func:`decide_fetch` turns one storefront fetch into an action.
Neither performs I/O, so both are tested without a network or a clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal, final
from urllib.parse import urlsplit

import msgspec

from plaudit.config.model import MarketplaceConfig, MarketplaceProfile
from plaudit.connectors.marketplace.fetch import FetchResult
from plaudit.connectors.marketplace.sites import Site, site_for_host

Mode = Literal["storefront", "mailbox", "import"]
MODES: Final[tuple[Mode, ...]] = ("storefront", "mailbox", "import")


def job_kind(site: str, mode: Mode) -> str:
    return f"{site}.{mode}"


def mode_interval(profile: MarketplaceProfile, config: MarketplaceConfig, mode: Mode) -> float:
    """Return the seconds between two jobs of ``mode`` for ``profile``."""
    if mode == "storefront":
        return profile.poll_interval
    return config.mailbox_interval if mode == "mailbox" else config.import_interval


def slot_job(site: str, mode: Mode, profile: str, *, slot: int, interval: float) -> dict[str, Any]:
    """Return the enqueue arguments of one profile's job of ``mode`` for one slot."""
    kind = job_kind(site, mode)
    return {
        "kind": kind,
        "owner": site,
        "key": f"{kind}:{profile}:{slot}",
        "payload": {"profile": profile, "slot": slot},
        "run_at": slot * interval,
    }


def due_jobs(
    site: str,
    profiles: Sequence[MarketplaceProfile],
    config: MarketplaceConfig,
    scheduled: Mapping[tuple[str, Mode], int],
    *,
    now: float,
) -> tuple[dict[tuple[str, Mode], int], list[dict[str, Any]]]:
    """Return the updated slot of each (profile, mode) and the jobs of slots not yet queued."""
    slots = dict(scheduled)
    jobs = []
    for profile in profiles:
        for mode in profile.modes:
            interval = mode_interval(profile, config, mode)
            slot = math.floor(now / interval)
            if slots.get((profile.profile_id, mode)) == slot:
                continue
            jobs.append(slot_job(site, mode, profile.profile_id, slot=slot, interval=interval))
            slots[(profile.profile_id, mode)] = slot
    return slots, jobs


@final
class Defer(msgspec.Struct, frozen=True, kw_only=True):
    """Action: the profile's last request is too recent; run again at ``run_at`` (Unix seconds)."""

    run_at: float


@final
class Unchanged(msgspec.Struct, frozen=True, kw_only=True):
    """Action: the page is unchanged since the last fetch (HTTP 304)."""


@final
class Parse(msgspec.Struct, frozen=True, kw_only=True):
    """Action: parse the fetched page and store its snapshot."""

    html: str


@final
class Reject(msgspec.Struct, frozen=True, kw_only=True):
    """Action: fail the job with ``error``; ``retryable`` is true when a later attempt may pass."""

    error: str
    retryable: bool


def decide_fetch(
    result: FetchResult,
    *,
    site: Site,
    profile: MarketplaceProfile,
    wall_now: float,
    clock_now: float,
) -> Defer | Unchanged | Parse | Reject:
    """Choose what one storefront fetch means; ``clock_now`` is on the fetcher's clock."""
    if result.outcome == "too_soon":
        return Defer(run_at=wall_now + max(0.0, result.next_allowed_at - clock_now))
    if result.outcome == "disallowed":
        return Reject(
            error=f"robots.txt of {urlsplit(result.url).netloc} disallows {result.url} for "
            f"{site.name} profile {profile.profile_id!r}; switch the profile to mailbox or import",
            retryable=False,
        )
    if result.outcome == "not_modified":
        return Unchanged()

    problem = _final_url_problem(result, site=site, profile=profile)
    if problem:
        return Reject(error=problem, retryable=False)
    return Parse(html=result.html or "")


def _final_url_problem(result: FetchResult, *, site: Site, profile: MarketplaceProfile) -> str:
    final_host = urlsplit(result.final_url).hostname or ""
    if profile.allow_any_host:
        if final_host == (urlsplit(result.url).hostname or ""):
            return ""
    elif site_for_host(final_host) is site:
        return ""
    return (
        f"{site.name} storefront of profile {profile.profile_id!r} redirected to "
        f"{result.final_url}, off {site.domain}; update storefront_url"
    )


def verification_subject(profile_id: str) -> str:
    """Return the health subject under which a profile's verification outcome shows."""
    return f"{profile_id}/verify"
