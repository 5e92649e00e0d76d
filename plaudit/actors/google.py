"""The Google Business Profile actor: incremental syncs and full reconciliations.

Each location has one ``google.sync`` job per schedule slot (``sync_interval``
seconds wide).  The idempotency key names the slot, so enqueueing the same
slot twice is harmless and a restart never doubles the work.  A sync lists
every page, then commits in one transaction: the review changes, their
events, the job's completion and the next slot's job.  A listing that lacks
stored reviews is repeated before they are marked deleted
(:mod:`plaudit.reliability.reconcile`).  The locations of one claimed batch
(up to four jobs) are listed concurrently, each location's jobs in turn.

Google lists reviews most recently updated first.  Between full listings
(every ``full_sync_interval`` seconds per location) a sync is incremental: it
stops after the first page whose oldest review was updated before the newest
stored update time minus ``incremental_overlap``.  An incremental listing is
partial, so it never marks reviews deleted; the next full listing does.

A full listing commits each page's reviews with the token of the next page
(the ``listing:<profile>`` sync cursor), so a listing cut short by a crash or
a failing page resumes at that page in the next job.  A resumed listing lacks
the pages read before, so it infers no deletions and does not count as a
full listing: the next sync lists from the first page again.  Google returns
400 for a page token it no longer accepts, and the listing then starts over.

A vendor reply made in Google's dashboard sets the reply's own updateTime,
and Google does not document that it changes the review's updateTime, so an
incremental sync may never reach it.  Full listings bound the delay: a full
listing starts once the next sync would begin more than
``full_sync_interval`` seconds after the last full one started.  While syncs
run on schedule, a reply is stored at most ``full_sync_interval`` seconds
(plus one listing's duration) after it was made.  Deletions follow the same
bound.

The listing logic is a pure decision step (``SyncState`` + ``PageArrived`` ->
next action) so it is tested without a network or a clock; ``GoogleActor`` is
the shell that performs the requests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, final

import msgspec
import trio

from plaudit.actors.base import Actor, ChildContext, Effects
from plaudit.actors.schedule import current_slot, pull_in_sync_jobs
from plaudit.config.model import GoogleConfig, GoogleLocation
from plaudit.connectors.google import GoogleClient, ReviewPage
from plaudit.errors import PlatformError, ReconnectRequiredError
from plaudit.journal import AsyncJournal, Job, Journal, Tx
from plaudit.reliability.breaker import CircuitBreaker
from plaudit.reliability.monitor import PlatformHealthMonitor
from plaudit.reliability.reconcile import ProfileListing, confirmed_listing
from plaudit.reliability.resume import clear_resume, store_page_cursor, take_resume
from plaudit.reviews.model import Review, format_timestamp
from plaudit.reviews.replies import REPLY_KIND, post_reply
from plaudit.reviews.store import SyncOutcome, apply_snapshot, delete_absent

log = logging.getLogger(__name__)

SYNC_KIND = "google.sync"
# The cursor (owner "google") that contains the start of each location's
# last full listing, in Unix seconds.
FULL_SYNC_CURSOR = "full_sync:{profile}"
_HIGH_WATER = "SELECT max(updated_at) FROM reviews WHERE platform = 'google' AND profile = ?"
_LAST_FULL = "SELECT value FROM cursors WHERE owner = 'google' AND name = ?"
# 200 pages of 50 is 10,000 reviews, far beyond any wedding vendor's
# profile; a listing cut off there never infers deletions.
MAX_PAGES = 200


def profile_of(location: GoogleLocation) -> str:
    return f"{location.account}/{location.location}"


def sync_job(location: GoogleLocation, *, slot: int, interval: float) -> dict[str, Any]:
    """Return the enqueue arguments of the sync job for one location and slot."""
    profile = profile_of(location)
    return {
        "kind": SYNC_KIND,
        "owner": "google",
        "key": f"{SYNC_KIND}:{profile}:{slot}",
        "payload": {"account": location.account, "location": location.location, "slot": slot},
        "run_at": slot * interval,
    }


class FetchPage(msgspec.Struct, frozen=True):
    """Action: request the page that ``token`` names (None for the first page)."""

    token: str | None


class Finish(msgspec.Struct, frozen=True):
    """Action: end the listing; ``complete`` is true when it covered every page."""

    reviews: list[Review]
    complete: bool


class SyncState(msgspec.Struct, frozen=True):
    """A location's listing in progress."""

    profile: str
    pages: int = 0
    reviews: dict[str, Review] = msgspec.field(default_factory=dict)
    # An incremental listing stops after a page with a review updated before
    # this time (format_timestamp form); None lists every page.
    stop_before: str | None = None
    # Page tokens already followed, so a token served twice ends the listing.
    tokens: frozenset[str] = frozenset()


class PageArrived(msgspec.Struct, frozen=True):
    page: ReviewPage


def begin(
    profile: str, *, stop_before: str | None = None, resume: str | None = None
) -> tuple[SyncState, FetchPage]:
    """Start a listing at the first page, or at the page that the token ``resume`` names."""
    tokens = frozenset({resume}) if resume else frozenset()
    state = SyncState(profile=profile, stop_before=stop_before, tokens=tokens)
    return state, FetchPage(token=resume or None)


def incremental_mark(
    *,
    high_water: str | None,
    last_full: float | None,
    now: float,
    full_interval: float,
    overlap: float,
    sync_interval: float = 0.0,
) -> str | None:
    """Return the update time where an incremental listing stops, or None for a full listing.

    A full listing is due when nothing is stored yet, when no full listing
    was recorded, or when waiting for the next sync (``sync_interval``
    seconds away) would leave more than ``full_interval`` seconds between
    the starts of two full listings.
    """
    if high_water is None or last_full is None:
        return None

    if now - last_full >= full_interval - sync_interval:
        return None

    return format_timestamp(datetime.fromisoformat(high_water).timestamp() - overlap)


def decide(state: SyncState, event: PageArrived) -> tuple[SyncState, FetchPage | Finish]:
    """Fold one page into the listing and choose the next step."""
    reviews = dict(state.reviews)
    for review in event.page.reviews:
        reviews[review.review_id] = review
    token = event.page.next_page_token
    repeated = token is not None and token in state.tokens
    state = SyncState(
        profile=state.profile,
        pages=state.pages + 1,
        reviews=reviews,
        stop_before=state.stop_before,
        tokens=state.tokens | {token} if token else state.tokens,
    )
    if not token:
        return state, Finish(reviews=list(reviews.values()), complete=True)
    if repeated:
        # Following the token again would repeat pages without end; the
        # listing is partial, so it marks nothing deleted.
        log.warning(
            "google.page_token_repeated", extra={"profile": state.profile, "pages": state.pages}
        )
        return state, Finish(reviews=list(reviews.values()), complete=False)
    if state.stop_before is not None and _reaches(event.page, state.stop_before):
        # Listed newest first: every later page is older still.
        return state, Finish(reviews=list(reviews.values()), complete=False)
    if state.pages >= MAX_PAGES:
        log.warning(
            "google.listing_truncated", extra={"profile": state.profile, "pages": state.pages}
        )
        return state, Finish(reviews=list(reviews.values()), complete=False)
    return state, FetchPage(token=token)


def _reaches(page: ReviewPage, stop_before: str) -> bool:
    # Normalised timestamps compare as strings in time order.
    return any(review.updated_at < stop_before for review in page.reviews)


@final
class GoogleActor(Actor):
    """Syncs every configured location's reviews into the journal."""

    kinds: Sequence[str] = (SYNC_KIND, REPLY_KIND)

    def __init__(
        self,
        journal: AsyncJournal,
        config: GoogleConfig,
        client_factory: Callable[[GoogleConfig], GoogleClient],
        *,
        lease_seconds: float,
        poll_interval: float = 1.0,
        monitor: PlatformHealthMonitor | None = None,
    ) -> None:
        breaker = CircuitBreaker(
            "google", config.breaker, clock=trio.current_time, on_change=self.breaker_changed
        )
        super().__init__(
            "google",
            journal,
            lease_seconds=lease_seconds,
            poll_interval=poll_interval,
            breaker=breaker,
            monitor=monitor,
        )
        self.config = config
        self._client_factory = client_factory
        # Created at each start and closed at each stop: the supervisor
        # restarts an actor by calling start() again on the same object.
        self.client: GoogleClient | None = None
        self._client_stale = False
        self._scheduled_slot = -1
        if monitor is not None:
            monitor.register("google", [profile_of(location) for location in config.locations])

    def reconfigure(self, config: GoogleConfig) -> None:
        """Use a reloaded configuration, and a client built from it, from the next job on."""
        self.config = config
        self._client_stale = True
        self._scheduled_slot = -1
        if self.breaker is not None:
            self.breaker.config = config.breaker
        if self.monitor is not None:
            self.monitor.register("google", [profile_of(location) for location in config.locations])
        # A reload may carry the new refresh token that a reconnect needs.
        self.credentials_replaced()
        self.wake()

    async def start(self, ctx: ChildContext) -> None:
        self.client = self._client_factory(self.config)
        self._client_stale = False
        try:
            await super().start(ctx)
        finally:
            client, self.client = self.client, None
            with trio.CancelScope(shield=True):
                await client.aclose()

    async def _current_client(self) -> GoogleClient:
        """Return the client that the jobs of the running batch share."""
        if self.client is None:
            raise RuntimeError("the Google actor has no client outside start(); call start first")
        return self.client

    async def _replace_stale_client(self) -> None:
        """Build a new client when a reload replaced the configuration.

        Called between batches, when no job uses the old client, so closing it
        cuts off no request.
        """
        if self.client is not None and self._client_stale:
            old, self.client = self.client, self._client_factory(self.config)
            self._client_stale = False
            await old.aclose()

    async def _run_claimed(self, ctx: ChildContext, jobs: list[Job]) -> None:
        """Run the batch's locations concurrently, and each location's jobs in turn.

        The batch has at most ``batch`` jobs (4), which bounds the locations
        listed at once; the client's rate limiter bounds their requests.  Two
        jobs of one location run in claim order, so an older listing never
        commits after a newer one.
        """
        await self._replace_stale_client()
        by_profile: dict[str, list[Job]] = {}
        for job in jobs:
            # A reply job names its location as "profile".  It runs in turn
            # with that location's syncs, so no listing from before the reply
            # commits after it.
            profile = str(job.payload.get("profile") or self.profile_of(job))
            by_profile.setdefault(profile, []).append(job)
        run_in_turn = super()._run_claimed
        if len(by_profile) <= 1:
            await run_in_turn(ctx, jobs)
            return
        async with trio.open_nursery() as nursery:
            for profile_jobs in by_profile.values():
                nursery.start_soon(run_in_turn, ctx, profile_jobs)

    async def on_start(self) -> None:
        await self._schedule_current_slot()

    async def on_idle(self) -> None:
        await self._schedule_current_slot()

    async def _schedule_current_slot(self) -> None:
        """Make sure each location has the current slot's job; cheap when it already does."""
        now = time.time()
        interval = self.config.sync_interval
        slot = current_slot(now, interval)
        if slot == self._scheduled_slot:
            return
        for location in self.config.locations:
            await self.journal.enqueue(**sync_job(location, slot=slot, interval=interval))
        await self.journal.transaction(
            lambda tx: pull_in_sync_jobs(
                tx, owner="google", kind=SYNC_KIND, now=now, interval=interval
            )
        )
        self._scheduled_slot = slot

    def profile_of(self, job: Job) -> str:
        return f"{job.payload.get('account', '')}/{job.payload.get('location', '')}"

    async def handle(self, job: Job) -> Effects | None:
        if job.kind == REPLY_KIND:
            return await post_reply(self.journal, job, self._post_reply)
        account = str(job.payload["account"])
        location = str(job.payload["location"])
        profile = f"{account}/{location}"
        review_id = job.payload.get("review")
        if isinstance(review_id, str) and review_id:
            targeted = await self._fetch_one(account, location, review_id)
            if targeted is not None:
                return targeted
        began = time.time()
        stop_before = await self._incremental_mark(profile, now=began)
        # What the committed pages of a full listing changed.
        pages = SyncOutcome()
        finish = await self._confirmed_list(account, location, stop_before=stop_before, tally=pages)
        next_job = self._next_job(account, location)
        mode = "full" if stop_before is None else "incremental"

        def record(tx: Tx) -> None:
            if stop_before is None:
                # Every page is stored already; only the deletions remain.
                outcome = pages
                if finish.complete:
                    present = {review.review_id for review in finish.reviews}
                    outcome.deleted += delete_absent(
                        tx, platform="google", profile=profile, present=present
                    )
                    # The listing's start, so changes made while it ran count as unseen.
                    tx.set_cursor("google", FULL_SYNC_CURSOR.format(profile=profile), repr(began))
            else:
                outcome = apply_snapshot(
                    tx,
                    platform="google",
                    profile=profile,
                    reviews=finish.reviews,
                    complete=finish.complete,
                )
            log.info(
                "google.synced",
                extra={
                    "profile": profile,
                    "mode": mode,
                    "complete": finish.complete,
                    "outcome": msgspec.to_builtins(outcome),
                },
            )
            if next_job is not None:
                tx.enqueue(**next_job)

        return record

    async def _fetch_one(self, account: str, location: str, review_id: str) -> Effects | None:
        """Fetch and store the one review a push names, or return None to list the location.

        A review the push names but Google no longer has (404) may have been
        deleted, which only a complete listing may conclude, so that case
        falls back to listing the location.
        """
        client = await self._current_client()
        try:
            review = await client.get_review(account, location, review_id)
        except PlatformError as error:
            if error.status == 404:
                return None
            raise
        profile = f"{account}/{location}"

        def record(tx: Tx) -> None:
            outcome = apply_snapshot(
                tx, platform="google", profile=profile, reviews=[review], complete=False
            )
            log.info(
                "google.synced",
                extra={
                    "profile": profile,
                    "mode": "targeted",
                    "review": review_id,
                    "outcome": msgspec.to_builtins(outcome),
                },
            )

        return record

    async def _post_reply(self, profile: str, review_id: str, text: str) -> str | None:
        """Put the reply; the client waits for the profile's edit limiter (10 a minute)."""
        client = await self._current_client()
        account, _, location = profile.partition("/locations/")
        posted = await client.reply(account, f"locations/{location}", review_id, text)
        return posted.updated_at

    async def _incremental_mark(self, profile: str, *, now: float) -> str | None:
        """Return where this sync's listing stops, or None when a full listing is due."""

        def read(journal: Journal) -> tuple[str | None, float | None]:
            high_water = journal.query(_HIGH_WATER, [profile])[0][0]
            rows = journal.query(_LAST_FULL, [FULL_SYNC_CURSOR.format(profile=profile)])
            return high_water, float(rows[0][0]) if rows else None

        high_water, last_full = await self.journal.read(read)
        return incremental_mark(
            high_water=high_water,
            last_full=last_full,
            now=now,
            full_interval=self.config.full_sync_interval,
            overlap=self.config.incremental_overlap,
            sync_interval=self.config.sync_interval,
        )

    async def _confirmed_list(
        self, account: str, location: str, *, stop_before: str | None, tally: SyncOutcome
    ) -> Finish:
        """List the location; list it again when the first listing implies deletions.

        A full listing commits each page as it arrives and adds what the page
        changed to ``tally``.
        """

        async def list_once() -> ProfileListing:
            finish = await self._list(account, location, stop_before=stop_before, tally=tally)
            return ProfileListing(reviews=finish.reviews, complete=finish.complete)

        confirmed = await confirmed_listing(
            self.journal,
            platform="google",
            profile=f"{account}/{location}",
            list_profile=list_once,
        )
        return Finish(reviews=confirmed.reviews, complete=confirmed.complete)

    async def _list(
        self, account: str, location: str, *, stop_before: str | None, tally: SyncOutcome
    ) -> Finish:
        """List the location; a full listing resumes where an interrupted one stopped."""
        profile = f"{account}/{location}"
        if stop_before is not None:
            state, first = begin(profile, stop_before=stop_before)
            return await self._follow_pages(account, location, state, first, tally=None)

        resume = await self.journal.transaction(lambda tx: take_resume(tx, "google", profile))
        if resume:
            log.info("google.listing_resumed", extra={"profile": profile})
            state, first = begin(profile, resume=resume)
            try:
                finish = await self._follow_pages(account, location, state, first, tally=tally)
            except PlatformError as error:
                if (
                    error.retryable
                    or error.status != 400
                    or isinstance(error, ReconnectRequiredError)
                ):
                    raise
                # Page tokens may expire; a rejected one means a fresh start.
                log.warning(
                    "google.resume_rejected", extra={"profile": profile, "error": str(error)}
                )
                await self.journal.transaction(lambda tx: clear_resume(tx, "google", profile))
            else:
                return Finish(reviews=finish.reviews, complete=False)

        state, first = begin(profile)
        return await self._follow_pages(account, location, state, first, tally=tally)

    async def _follow_pages(
        self,
        account: str,
        location: str,
        state: SyncState,
        action: FetchPage | Finish,
        *,
        tally: SyncOutcome | None,
    ) -> Finish:
        """Request pages until :func:`decide` finishes.

        With a ``tally``, each page is committed as it arrives and what it
        changed is added to the tally.
        """
        client = await self._current_client()
        while isinstance(action, FetchPage):
            page = await client.list_reviews_page(
                account, location, page_token=action.token, page_size=self.config.page_size
            )
            state, action = decide(state, PageArrived(page))
            if tally is not None:
                following = action.token if isinstance(action, FetchPage) else None
                tally.add(await self._commit_page(state.profile, page, following))
        return action

    async def _commit_page(
        self, profile: str, page: ReviewPage, following: str | None
    ) -> SyncOutcome:
        """Store one page's reviews and the token of the page that follows, in one transaction."""
        # A page that names a review twice keeps its last copy, as decide() does.
        reviews = list({review.review_id: review for review in page.reviews}.values())

        def commit(tx: Tx) -> SyncOutcome:
            store_page_cursor(tx, "google", profile, following)
            return apply_snapshot(
                tx, platform="google", profile=profile, reviews=reviews, complete=False
            )

        return await self.journal.transaction(commit)

    def _next_job(self, account: str, location: str) -> dict[str, Any] | None:
        """Return the next slot's job, or None when the location is no longer configured."""
        for configured in self.config.locations:
            if (configured.account, configured.location) == (account, location):
                slot = current_slot(time.time(), self.config.sync_interval) + 1
                return sync_job(configured, slot=slot, interval=self.config.sync_interval)
        return None
