"""The marketplace actors: one per site with configured profiles (hitched, theknot, ...).

Each profile brings reviews in by one or more modes, each a periodic job of
kind ``<site>.<mode>`` keyed by its schedule slot, so a restart never doubles
the work:

- ``storefront``: the vendor's page through :class:`StorefrontFetcher` (at
  most one request per profile per ``poll_interval``, robots.txt, conditional
  GET), decided by :func:`plan_snapshot` and stored by ``apply_snapshot``;
- ``mailbox``: the "new review" notification e-mails in the profile's Maildir
  or IMAP folder (:mod:`plaudit.actors.marketplace_mail`);
- ``import``: CSV or JSON files dropped into the profile's watched folder.

A challenge page, markup drift or a storefront that became a listing fails
the job with an error naming the site, the profile and the selector.  The
health monitor then turns the profile degraded, and no snapshot is stored, so
a blocked page never reads as "zero reviews".

:func:`~plaudit.actors.marketplace_steps.due_jobs` and
:func:`~plaudit.actors.marketplace_steps.decide_fetch` are the pure steps; the
actor is the Trio shell around them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final, final
from urllib.parse import urlsplit

import httpx
import msgspec
import trio

from plaudit import metrics
from plaudit.actors.base import Actor, ChildContext, Effects
from plaudit.actors.marketplace_mail import log_mailbox_report, read_mailboxes
from plaudit.actors.marketplace_steps import (
    MODES,
    Defer,
    Mode,
    Reject,
    Unchanged,
    decide_fetch,
    due_jobs,
    job_kind,
    verification_subject,
)
from plaudit.config import Config
from plaudit.config.model import MarketplaceConfig, MarketplaceProfile
from plaudit.connectors.marketplace.fetch import (
    DEFAULT_MIN_INTERVAL,
    StorefrontFetcher,
    user_agent,
)
from plaudit.connectors.marketplace.pagination import read_further_pages
from plaudit.connectors.marketplace.sites import Site, get_site
from plaudit.connectors.marketplace.storefront import parse_storefront
from plaudit.connectors.marketplace.sync import health_problem, plan_snapshot
from plaudit.connectors.marketplace.verify import Verification, verify_storefront
from plaudit.connectors.tls import shared_ssl_context
from plaudit.errors import PlatformError
from plaudit.journal import AsyncJournal, Job, Tx
from plaudit.reliability.breaker import CircuitBreaker
from plaudit.reliability.monitor import PlatformHealthMonitor
from plaudit.reviews.dropfolder import import_dropped_files
from plaudit.reviews.store import apply_snapshot, load_reviews

log = logging.getLogger(__name__)

# Used in the User-Agent when the config names no contact.
DEFAULT_CONTACT: Final = "operator of this Plaudit instance"


@final
class MarketplaceActorStatistics(msgspec.Struct, frozen=True, kw_only=True):
    site: str
    profiles: int
    fetcher: dict[str, int]
    pages_stored: int
    mailbox_passes: int
    files_imported: int


class MarketplaceActor(Actor):
    """Brings in the reviews of every configured profile on one marketplace site."""

    def __init__(
        self,
        journal: AsyncJournal,
        site: Site,
        config: MarketplaceConfig,
        *,
        lease_seconds: float,
        poll_interval: float = 1.0,
        monitor: PlatformHealthMonitor | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        circuit = CircuitBreaker(
            site.name, config.breaker, clock=trio.current_time, on_change=self.breaker_changed
        )
        super().__init__(
            site.name,
            journal,
            lease_seconds=lease_seconds,
            poll_interval=poll_interval,
            breaker=circuit,
            monitor=monitor,
        )
        self.kinds = tuple(job_kind(site.name, mode) for mode in MODES)
        self.site = site
        self.config = config
        self._client = client or httpx.AsyncClient(
            timeout=config.request_timeout, verify=shared_ssl_context()
        )
        self.fetcher = self._new_fetcher()
        self._scheduled: dict[tuple[str, Mode], int] = {}
        # The error of each profile's last failed fetch, until a fetch succeeds.
        self._fetch_problems: dict[str, str] = {}
        self._pages_stored = 0
        self._mailbox_passes = 0
        self._files_imported = 0
        if monitor is not None:
            monitor.register(site.name, [profile.profile_id for profile in self.profiles])

    def __repr__(self) -> str:
        return (
            f"<MarketplaceActor {self.site.name} profiles={len(self.profiles)} "
            f"health={self.health} pages_stored={self._pages_stored}>"
        )

    def marketplace_statistics(self) -> MarketplaceActorStatistics:
        return MarketplaceActorStatistics(
            site=self.site.name,
            profiles=len(self.profiles),
            fetcher=self.fetcher.statistics(),
            pages_stored=self._pages_stored,
            mailbox_passes=self._mailbox_passes,
            files_imported=self._files_imported,
        )

    @property
    def profiles(self) -> list[MarketplaceProfile]:
        """This site's profiles of the configuration."""
        return [profile for profile in self.config.profiles if profile.site == self.site.name]

    def profile(self, profile_id: str) -> MarketplaceProfile | None:
        return next((p for p in self.profiles if p.profile_id == profile_id), None)

    def _new_fetcher(self) -> StorefrontFetcher:
        # One interval for the site: the shortest of its profiles, so no
        # profile is polled more often than its own poll_interval allows.
        return StorefrontFetcher(
            self._client,
            contact=self.config.contact or DEFAULT_CONTACT,
            min_interval=self._min_poll_interval(),
            retry=self.config.retry,
        )

    def _min_poll_interval(self) -> float:
        intervals = [p.poll_interval for p in self.profiles if "storefront" in p.modes]
        return min(intervals, default=DEFAULT_MIN_INTERVAL)

    def reconfigure(self, config: MarketplaceConfig) -> None:
        """Use reloaded settings from the next job on; fetch history is kept."""
        self.config = config
        self._scheduled = {}
        self.fetcher.plan.min_interval = self._min_poll_interval()
        self.fetcher.retry = config.retry
        if self.monitor is not None:
            self.monitor.register(self.name, [profile.profile_id for profile in self.profiles])
        self.wake()

    async def start(self, ctx: ChildContext) -> None:
        try:
            await super().start(ctx)
        finally:
            with trio.CancelScope(shield=True):
                await self._client.aclose()

    async def on_start(self) -> None:
        await self._schedule()

    async def on_idle(self) -> None:
        await self._schedule()

    async def _schedule(self) -> None:
        slots, jobs = due_jobs(
            self.site.name, self.profiles, self.config, self._scheduled, now=time.time()
        )
        for job in jobs:
            await self.journal.enqueue(**job)
        self._scheduled = slots

    def profile_of(self, job: Job) -> str:
        return str(job.payload.get("profile", ""))

    async def handle(self, job: Job) -> Effects | None:
        profile = self.profile(self.profile_of(job))
        if profile is None:
            # Removed from the configuration since the job was queued.
            return None

        mode = job.kind.rsplit(".", 1)[1]
        if mode == "storefront":
            return await self._storefront(job, profile)
        if mode == "mailbox":
            await self._mailbox(profile)
        else:
            await self._import(profile)
        return None

    async def _storefront(self, job: Job, profile: MarketplaceProfile) -> Effects | None:
        site = self.site
        try:
            result = await self.fetcher.fetch(
                profile.storefront_url, site=site, profile=profile.profile_id
            )
        except PlatformError as error:
            self._fetch_failed(profile, error, outcome=health_problem(error)[0])
            raise
        if result.outcome != "fetched":
            # A fetched page is counted once parsed, by what it turned out to be.
            metrics.MARKETPLACE_FETCHES.labels(site.name, result.outcome).inc()
        action = decide_fetch(
            result, site=site, profile=profile, wall_now=time.time(), clock_now=trio.current_time()
        )
        if isinstance(action, Defer):
            problem = self._fetch_problems.get(profile.profile_id)
            if problem is not None:
                # The last fetch failed and the interval forbids another, so
                # the failure remains: a wait must not count as a success in health.
                wait = max(0.0, action.run_at - time.time())
                raise PlatformError(problem, retryable=True, retry_after=wait)
            return _defer(job, action)
        if isinstance(action, Unchanged):
            self._fetch_problems.pop(profile.profile_id, None)
            return None
        if isinstance(action, Reject):
            rejected = PlatformError(action.error, retryable=action.retryable)
            # A fetched page rejected here was redirected off the site's domain.
            outcome = "not_a_storefront" if result.outcome == "fetched" else None
            raise self._fetch_failed(profile, rejected, outcome=outcome)

        try:
            page = await trio.to_thread.run_sync(
                lambda: parse_storefront(action.html, site=site, profile=profile.profile_id)
            )
        except PlatformError as error:
            self._fetch_failed(profile, error, outcome=health_problem(error)[0])
            raise
        metrics.MARKETPLACE_FETCHES.labels(site.name, "fetched").inc()
        self._fetch_problems.pop(profile.profile_id, None)
        # Every fetched storefront is verified on the page already in hand, so
        # a renamed or moved profile shows in health without another request.
        began = trio.current_time()
        final_url = None if profile.allow_any_host else result.final_url
        verification = await trio.to_thread.run_sync(
            lambda: verify_storefront(
                action.html,
                site=site,
                profile=profile.profile_id,
                expected_name=profile.vendor_name,
                final_url=final_url,
            )
        )
        self._observe_verification(profile.profile_id, verification, began)
        pages = 1
        if page.next_page and profile.max_pages > 1:
            paged = await read_further_pages(
                self.fetcher,
                page,
                result.final_url,
                site=site,
                profile=profile.profile_id,
                max_pages=profile.max_pages,
                page_delay=self.config.page_delay,
            )
            page, pages = paged.page, paged.pages
        today = datetime.now(UTC).date()
        now = time.time()

        def record(tx: Tx) -> None:
            stored = load_reviews(tx, site.name, profile.profile_id)
            plan = plan_snapshot(
                page, site=site, profile=profile.profile_id, stored=stored, today=today, now=now
            )
            outcome = apply_snapshot(
                tx,
                platform=plan.platform,
                profile=plan.profile,
                reviews=plan.reviews,
                complete=plan.complete,
            )
            log.info(
                "marketplace.storefront_synced",
                extra={
                    "site": site.name,
                    "profile": profile.profile_id,
                    "source": page.source,
                    "pages": pages,
                    "aged_out": len(plan.aged_out),
                    "outcome": msgspec.to_builtins(outcome),
                },
            )

        self._pages_stored += 1
        return record

    def _fetch_failed(
        self, profile: MarketplaceProfile, error: PlatformError, *, outcome: str | None
    ) -> PlatformError:
        """Count (unless ``outcome`` is None), remember and log a failed fetch; return ``error``.

        A retryable error's ``retry_after`` grows to the wait for the profile's
        next allowed request, so the retry fetches again instead of meeting
        the interval.
        """
        if outcome is not None:
            metrics.MARKETPLACE_FETCHES.labels(self.site.name, outcome).inc()
        self._fetch_problems[profile.profile_id] = str(error)
        if error.retryable:
            allowed_at = self.fetcher.plan.next_allowed_at(profile.profile_id)
            wait = max(0.0, allowed_at - trio.current_time())
            error.retry_after = max(error.retry_after or 0.0, wait)
        self._log_unreadable(profile, error)
        return error

    def _log_unreadable(self, profile: MarketplaceProfile, error: PlatformError) -> None:
        cause, message = health_problem(error)
        log.warning(
            "marketplace.storefront_unreadable",
            extra={
                "site": self.site.name,
                "profile": profile.profile_id,
                "cause": cause,
                "selector": getattr(error, "selector", None),
                "error": message,
            },
        )

    async def _mailbox(self, profile: MarketplaceProfile) -> None:
        # NOTE: a Maildir pass reads and moves mail on the journal's worker
        # thread, which delays other commits for its length (at most 500 messages).
        reports = await read_mailboxes(self.journal, profile, site=self.site.name)
        self._mailbox_passes += 1
        for report in reports:
            log_mailbox_report(report, site=self.site.name, profile=profile.profile_id)

    async def _import(self, profile: MarketplaceProfile) -> None:
        try:
            outcomes = await self.journal.read(
                lambda journal: import_dropped_files(
                    journal,
                    profile.import_folder,
                    platform=self.site.name,
                    profile=profile.profile_id,
                )
            )
        except OSError as error:
            raise PlatformError(
                f"failed to read import folder {profile.import_folder} of {self.site.name} "
                f"profile {profile.profile_id!r}: {error.strerror}; create it or fix its "
                "permissions",
                # A local problem: it must not open the site's circuit breaker,
                # and the next pass runs at the next slot anyway.
                retryable=False,
            ) from error
        self._files_imported += len(outcomes)
        for outcome in outcomes:
            log.info(
                "marketplace.file_imported"
                if outcome.error is None
                else "marketplace.file_rejected",
                extra={
                    "site": self.site.name,
                    "profile": profile.profile_id,
                    "file": outcome.name,
                    "moved_to": outcome.moved_to,
                    "error": outcome.error,
                },
            )

    async def verify(self, profile_id: str) -> Verification:
        """Fetch the profile's storefront now and check it names the vendor and shows a rating.

        Anything but "verified" turns the health subject ``<profile>/verify``
        degraded until a later verification passes.
        Raises PlatformError when the profile is unknown or has no storefront URL.
        """
        profile = self.profile(profile_id)
        if profile is None or not profile.storefront_url:
            raise PlatformError(
                f"{self.site.name} profile {profile_id!r} has no storefront_url in the config; "
                "add one to verify it",
                retryable=False,
            )

        began = trio.current_time()
        verification = await self._verify_page(profile)
        self._observe_verification(profile_id, verification, began)
        return verification

    def _observe_verification(
        self, profile_id: str, verification: Verification, began: float
    ) -> None:
        if self.monitor is not None:
            problem = None
            if verification.state != "verified":
                problem = f"verification {verification.state}: " + "; ".join(verification.problems)
            # A subject of its own, so the next successful sync does not hide a mismatch.
            self.monitor.observe_job(
                self.name,
                verification_subject(profile_id),
                ok=problem is None,
                seconds=trio.current_time() - began,
                error=problem,
            )
        log.info(
            "marketplace.verified",
            extra={"site": self.site.name, "profile": profile_id, "state": verification.state},
        )

    async def _verify_page(self, profile: MarketplaceProfile) -> Verification:
        # An operator's check is still a crawl: robots.txt applies to it too.
        if not await self.fetcher.robots_allow(profile.storefront_url):
            return Verification(
                platform=self.site.name,
                profile=profile.profile_id,
                state="blocked",
                vendor=None,
                problems=[
                    f"robots.txt of {urlsplit(profile.storefront_url).hostname} disallows "
                    f"{profile.storefront_url}; use mailbox or import mode for this profile"
                ],
            )
        headers = {"User-Agent": user_agent(self.config.contact or DEFAULT_CONTACT)}
        try:
            response = await self._client.get(
                profile.storefront_url, headers=headers, follow_redirects=True
            )
        except httpx.HTTPError as error:
            raise PlatformError(
                f"{self.site.name} storefront request to {profile.storefront_url} failed: "
                f"{error.__class__.__name__}: {error}; check the URL and the network",
                retryable=True,
            ) from error

        final_url = str(response.url)
        text = response.text
        expected = profile.vendor_name
        if profile.allow_any_host:
            # On loopback the host never names the site, so only a move off the
            # configured host counts as a redirect elsewhere.
            moved = response.url.host != (urlsplit(profile.storefront_url).hostname or "")
            if moved:
                return Verification(
                    platform=self.site.name,
                    profile=profile.profile_id,
                    state="not_a_storefront",
                    vendor=None,
                    problems=[f"the storefront URL redirected to {final_url}; update the URL"],
                )
            return verify_storefront(
                text, site=self.site, profile=profile.profile_id, expected_name=expected
            )
        return verify_storefront(
            text,
            site=self.site,
            profile=profile.profile_id,
            expected_name=expected,
            final_url=final_url,
        )


def _defer(job: Job, action: Defer) -> Effects:
    def enqueue(tx: Tx) -> None:
        tx.enqueue(
            kind=job.kind,
            owner=job.owner,
            key=f"{job.key}:deferred",
            payload=dict(job.payload),
            run_at=action.run_at,
        )

    return enqueue


def build_marketplace_actors(
    config: Config, journal: AsyncJournal, *, monitor: PlatformHealthMonitor | None = None
) -> dict[str, Actor]:
    """Return one actor per marketplace site that has a configured profile."""
    marketplace = config.platforms.marketplace
    if marketplace is None or not marketplace.enabled:
        return {}

    sites = sorted({profile.site for profile in marketplace.profiles})
    return {
        name: MarketplaceActor(
            journal,
            get_site(name),
            marketplace,
            lease_seconds=config.journal.lease_seconds,
            monitor=monitor,
        )
        for name in sites
    }


def reconfigure_marketplace_actors(actors: Mapping[str, Actor], config: Config) -> set[str]:
    """Hand reloaded settings to running marketplace actors; return the sites configured."""
    marketplace = config.platforms.marketplace
    if marketplace is None or not marketplace.enabled:
        return set()

    sites = {profile.site for profile in marketplace.profiles}
    for name in sites:
        actor = actors.get(name)
        if isinstance(actor, MarketplaceActor):
            actor.reconfigure(marketplace)
    return sites


def find_profile_actor(actors: Mapping[str, Actor], profile_id: str) -> MarketplaceActor | None:
    """Return the marketplace actor that has ``profile_id`` ("site:id" or a bare id), or None."""
    site, _, bare = profile_id.rpartition(":")
    for actor in actors.values():
        if not isinstance(actor, MarketplaceActor):
            continue
        if site and actor.site.name != site:
            continue
        if actor.profile(bare) is not None:
            return actor
    return None


def marketplace_restart_pending(actors: Mapping[str, Actor], config: Config) -> bool:
    """Return True when the configured sites differ from the running site actors.

    A reload hands new profiles to running actors.  It starts no actor for a
    site added and stops none for a site removed, so those wait for a restart.
    """
    marketplace = config.platforms.marketplace
    configured: set[str] = set()
    if marketplace is not None and marketplace.enabled:
        configured = {profile.site for profile in marketplace.profiles}
    running = {name for name, actor in actors.items() if isinstance(actor, MarketplaceActor)}
    return configured != running
