"""One actor for the listing platforms: Facebook Pages, Trustpilot and Yelp.

Each profile (a Page, a business unit, a business) has one ``<platform>.sync``
job per schedule slot (``sync_interval`` seconds wide), keyed by the slot as
the Google actor does, so a restart never doubles the work.  A sync lists the
profile through a :class:`ListingSource` and commits the review changes, their
events, the job's completion and the next slot's job in one transaction.  A
listing that lacks stored reviews is repeated before they are marked deleted
(:mod:`plaudit.reliability.reconcile`).

Each page's reviews and the cursor of the next page are committed as the
page is read (the ``listing:<profile>`` sync cursor), so a listing cut short
by a crash or a failing page resumes there in the next job.  A resumed
listing infers no deletions, and a cursor the platform rejects starts the
listing again at the first page.

:func:`decide` is the pure step: the outcome of one listing attempt and the
configured profiles in, the next state and the journal actions out.

When Facebook responds that the Graph version no longer offers the ratings
edge, the actor's health becomes ``unsupported-api-version`` and it stops
scheduling syncs until a configuration reload: another attempt cannot succeed.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from typing import Any, Final, Protocol, final

import msgspec
import trio

from plaudit.actors.base import Actor, ChildContext, Effects
from plaudit.actors.schedule import current_slot, pull_in_sync_jobs
from plaudit.config.model import BreakerConfig
from plaudit.connectors.facebook import ApiVersionUnsupportedError
from plaudit.connectors.paging import ListedPage, PageHook
from plaudit.errors import PlatformError, ReconnectRequiredError
from plaudit.journal import AsyncJournal, Job, Tx
from plaudit.reliability.breaker import CircuitBreaker
from plaudit.reliability.monitor import PlatformHealthMonitor
from plaudit.reliability.reconcile import ProfileListing, confirmed_listing
from plaudit.reliability.resume import (
    clear_resume,
    store_page_cursor,
    take_resume,
)
from plaudit.reviews.contacts import store_contacts
from plaudit.reviews.model import Contact, Review
from plaudit.reviews.replies import REPLY_KIND, PostReply, post_reply
from plaudit.reviews.store import SyncOutcome, apply_snapshot, delete_absent

log = logging.getLogger(__name__)

UNSUPPORTED: Final = "unsupported-api-version"


@final
class Listing(msgspec.Struct, frozen=True, kw_only=True):
    """A profile's reviews as one sync saw them."""

    reviews: list[Review]
    # False when the listing may miss reviews, so none are taken as deleted.
    complete: bool
    # Review id -> the address and reference the platform gave with it
    # (Trustpilot private reviews); stored with the reviews.
    contacts: dict[str, Contact] = msgspec.field(default_factory=dict)


class ListingSource(Protocol):
    """A platform connector seen by the actor: its profiles and how to list one."""

    @property
    def platform(self) -> str: ...

    def profiles(self) -> list[str]: ...

    async def list_profile(
        self, profile: str, *, resume: str | None = None, on_page: PageHook | None = None
    ) -> Listing:
        """List the profile from the page cursor ``resume`` (None: the first page)."""
        ...

    async def aclose(self) -> None: ...


@final
class CommittedPages(msgspec.Struct, kw_only=True):
    """The page commits of one sync: the ids of the reviews they stored and the changes made."""

    review_ids: set[str] = msgspec.field(default_factory=set)
    outcome: SyncOutcome = msgspec.field(default_factory=SyncOutcome)


@final
class Synced(msgspec.Struct, frozen=True, kw_only=True):
    """Event: a profile was listed."""

    profile: str
    listing: Listing


@final
class Unsupported(msgspec.Struct, frozen=True, kw_only=True):
    """Event: the platform's API version no longer serves the listing."""

    error: str


@final
class Record(msgspec.Struct, frozen=True, kw_only=True):
    """Action: store the listing and, when the profile is still configured, queue the next sync."""

    profile: str
    listing: Listing
    next_job: dict[str, Any] | None


@final
class Stop(msgspec.Struct, frozen=True, kw_only=True):
    """Action: fail the job without retry and stop scheduling."""

    error: str


def sync_kind(platform: str) -> str:
    return f"{platform}.sync"


def sync_job(platform: str, profile: str, *, slot: int, interval: float) -> dict[str, Any]:
    """Return the enqueue arguments of one profile's sync job for one slot."""
    kind = sync_kind(platform)
    return {
        "kind": kind,
        "owner": platform,
        "key": f"{kind}:{profile}:{slot}",
        "payload": {"profile": profile, "slot": slot},
        "run_at": slot * interval,
    }


def decide(
    platform: str,
    profiles: Sequence[str],
    event: Synced | Unsupported,
    *,
    now: float,
    interval: float,
) -> Record | Stop:
    """Choose what to do with the outcome of one sync attempt."""
    if isinstance(event, Unsupported):
        return Stop(error=event.error)

    next_job = None
    if event.profile in profiles:
        slot = current_slot(now, interval) + 1
        next_job = sync_job(platform, event.profile, slot=slot, interval=interval)
    return Record(profile=event.profile, listing=event.listing, next_job=next_job)


class ListingActor(Actor):
    """Syncs every profile of one listing platform into the journal."""

    def __init__(
        self,
        journal: AsyncJournal,
        source: ListingSource,
        *,
        sync_interval: float,
        breaker: BreakerConfig,
        lease_seconds: float,
        poll_interval: float = 1.0,
        monitor: PlatformHealthMonitor | None = None,
    ) -> None:
        self.unsupported: str | None = None
        platform = source.platform
        circuit = CircuitBreaker(
            platform, breaker, clock=trio.current_time, on_change=self.breaker_changed
        )
        super().__init__(
            platform,
            journal,
            lease_seconds=lease_seconds,
            poll_interval=poll_interval,
            breaker=circuit,
            monitor=monitor,
        )
        self.kinds = (sync_kind(platform), REPLY_KIND)
        self.source = source
        self.sync_interval = sync_interval
        self._scheduled_slot = -1
        if monitor is not None:
            monitor.register(platform, source.profiles())

    @property
    def health(self) -> str:
        """The base health, unless the platform's API version is unsupported."""
        return UNSUPPORTED if self.unsupported else self._health

    @health.setter
    def health(self, value: str) -> None:
        self._health = value

    def reconfigure(self, source: ListingSource, *, sync_interval: float) -> None:
        """Use reloaded settings from the next job on; a reload also retries an unsupported API."""
        self.source = source
        self.sync_interval = sync_interval
        self.unsupported = None
        self._scheduled_slot = -1
        if self.monitor is not None:
            self.monitor.register(self.name, source.profiles())
        self.credentials_replaced()
        self.wake()

    async def start(self, ctx: ChildContext) -> None:
        try:
            await super().start(ctx)
        finally:
            # The supervisor restarts a crashed actor by calling start() again
            # on this object, so the source's HTTP client stays open until a stop.
            if ctx.stop_requested.is_set():
                with trio.CancelScope(shield=True):
                    await self.source.aclose()

    async def on_start(self) -> None:
        await self._schedule_current_slot()

    async def on_idle(self) -> None:
        await self._schedule_current_slot()

    async def _schedule_current_slot(self) -> None:
        if self.unsupported:
            return

        now = time.time()
        slot = current_slot(now, self.sync_interval)
        if slot == self._scheduled_slot:
            return
        for profile in self.source.profiles():
            job = sync_job(self.name, profile, slot=slot, interval=self.sync_interval)
            await self.journal.enqueue(**job)
        platform, kind, interval = self.name, sync_kind(self.name), self.sync_interval
        await self.journal.transaction(
            lambda tx: pull_in_sync_jobs(tx, owner=platform, kind=kind, now=now, interval=interval)
        )
        self._scheduled_slot = slot

    def profile_of(self, job: Job) -> str:
        return str(job.payload.get("profile", ""))

    async def handle(self, job: Job) -> Effects | None:
        if job.kind == REPLY_KIND:
            return await post_reply(self.journal, job, self._reply_poster())
        profile = str(job.payload["profile"])
        if profile not in self.source.profiles():
            # A push can name any Page the app is subscribed to, and a reload
            # can drop a profile while its job waits; neither has credentials.
            log.warning(
                "listing.unconfigured_profile",
                extra={"platform": self.name, "profile": profile, "job": job.id},
            )
            return None

        event: Synced | Unsupported
        committed = CommittedPages()
        try:
            listing = await self._confirmed_listing(profile, committed)
            event = Synced(profile=profile, listing=listing)
        except ApiVersionUnsupportedError as error:
            event = Unsupported(error=str(error))

        action = decide(
            self.name,
            self.source.profiles(),
            event,
            now=time.time(),
            interval=self.sync_interval,
        )
        if isinstance(action, Stop):
            self.unsupported = action.error
            log.error("platform.api_unsupported", extra={"actor": self.name, "error": action.error})
            raise ApiVersionUnsupportedError(action.error)

        return self._record(action, committed)

    def _reply_poster(self) -> PostReply:
        """Return the source's reply call; raises PlatformError when the platform has none."""
        poster: PostReply | None = getattr(self.source, "post_reply", None)
        if poster is None:
            raise PlatformError(
                f"{self.name} has no reply API; reply in the platform's own dashboard",
                retryable=False,
            )
        return poster

    async def _confirmed_listing(self, profile: str, committed: CommittedPages) -> Listing:
        """List the profile; list it again when the first listing implies deletions."""
        contacts: dict[str, Contact] = {}

        async def list_once() -> ProfileListing:
            listing = await self._resumable_listing(profile, committed)
            contacts.update(listing.contacts)
            return ProfileListing(reviews=listing.reviews, complete=listing.complete)

        confirmed = await confirmed_listing(
            self.journal, platform=self.name, profile=profile, list_profile=list_once
        )
        return Listing(reviews=confirmed.reviews, complete=confirmed.complete, contacts=contacts)

    async def _resumable_listing(self, profile: str, committed: CommittedPages) -> Listing:
        """List the profile from where an interrupted listing stopped, or from the first page.

        A resumed listing lacks the pages an earlier job read and committed,
        so it is returned as incomplete and infers no deletions.  The listing
        after it starts at the first page.
        """
        platform = self.name
        resume = await self.journal.transaction(lambda tx: take_resume(tx, platform, profile))
        on_page = functools.partial(self._commit_page, profile, committed)
        if not resume:
            return await self.source.list_profile(profile, on_page=on_page)

        log.info("listing.resumed", extra={"platform": platform, "profile": profile})
        try:
            listing = await self.source.list_profile(profile, resume=resume, on_page=on_page)
        except PlatformError as error:
            unrelated = (ReconnectRequiredError, ApiVersionUnsupportedError)
            if error.retryable or isinstance(error, unrelated):
                raise
            # Page tokens and cursors expire, so a rejected one means a fresh start.
            log.warning(
                "listing.resume_rejected",
                extra={"platform": platform, "profile": profile, "error": str(error)},
            )
            await self.journal.transaction(lambda tx: clear_resume(tx, platform, profile))
            return await self.source.list_profile(profile, on_page=on_page)

        return Listing(reviews=listing.reviews, complete=False, contacts=listing.contacts)

    async def _commit_page(self, profile: str, committed: CommittedPages, page: ListedPage) -> None:
        """Store one page's reviews and the cursor of the next page in one transaction."""
        platform = self.name

        def commit(tx: Tx) -> SyncOutcome:
            outcome = apply_snapshot(
                tx, platform=platform, profile=profile, reviews=page.reviews, complete=False
            )
            if page.contacts:
                store_contacts(tx, platform, page.contacts)
            store_page_cursor(tx, platform, profile, page.next_cursor)
            return outcome

        committed.outcome.add(await self.journal.transaction(commit))
        committed.review_ids.update(review.review_id for review in page.reviews)

    def _record(self, action: Record, committed: CommittedPages) -> Effects:
        """Return the final writes: reviews no page stored, deletions, and the next job.

        A review that a page commit stored has the listing's latest content
        already (a second listing's pages commit after the first one's), so
        only the rest is applied here.
        """
        platform = self.name
        listing = action.listing
        rest = [
            review for review in listing.reviews if review.review_id not in committed.review_ids
        ]

        def record(tx: Tx) -> None:
            outcome = apply_snapshot(
                tx, platform=platform, profile=action.profile, reviews=rest, complete=False
            )
            outcome.add(committed.outcome)
            if listing.complete:
                present = {review.review_id for review in listing.reviews}
                outcome.deleted += delete_absent(
                    tx, platform=platform, profile=action.profile, present=present
                )
            if listing.contacts:
                store_contacts(tx, platform, listing.contacts)
            log.info(
                "listing.synced",
                extra={
                    "platform": platform,
                    "profile": action.profile,
                    "outcome": msgspec.to_builtins(outcome),
                },
            )
            if action.next_job is not None:
                tx.enqueue(**action.next_job)

        return record
