"""Drafting ahead of the send, in a task beside the notifier's job loop.

The notifier runs one job at a time, so a draft awaited inside a job would
hold up every send queued behind it.  A plan whose send was deferred is
instead handed to :class:`DraftQueue`, whose worker drafts it in the
background before the chosen time.  A due send then only reads the stored
draft, or waits for one still in progress for at most ``send_wait`` seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, final

import msgspec
import trio

from plaudit.errors import JournalError
from plaudit.journal import AsyncJournal
from plaudit.messaging.couples import Couple

if TYPE_CHECKING:
    from plaudit.personalisation.service import Personaliser, Plan

log = logging.getLogger(__name__)

# Plans waiting for the worker.  A full queue drops the newest plan, which
# then gets the bounded wait at its send instead.
QUEUE_SIZE: Final = 256
# Requests due within this many seconds are planned early and drafted ahead.
LOOKAHEAD_SECONDS: Final = 3600.0
# Seconds between looks for such requests, and the most planned per look.
PLAN_INTERVAL: Final = 60.0
PLAN_LIMIT: Final = 50


@final
class DraftQueueStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Plans queued, dropped because the queue was full, and drafted by the worker."""

    queued: int
    dropped: int
    drafted: int
    in_progress: int


@final
class DraftQueue:
    """Plans waiting to be drafted, and the events of drafts in progress."""

    def __init__(self, *, size: int = QUEUE_SIZE) -> None:
        self._send, self._receive = trio.open_memory_channel[tuple[Couple, "Plan"]](size)
        # Request id -> set once its draft is stored.
        self._in_progress: dict[int, trio.Event] = {}
        self._queued = 0
        self._dropped = 0
        self._drafted = 0

    def __repr__(self) -> str:
        return (
            f"<DraftQueue queued={self._queued} dropped={self._dropped} "
            f"drafted={self._drafted} in_progress={len(self._in_progress)}>"
        )

    def statistics(self) -> DraftQueueStatistics:
        return DraftQueueStatistics(
            queued=self._queued,
            dropped=self._dropped,
            drafted=self._drafted,
            in_progress=len(self._in_progress),
        )

    def submit(self, couple: Couple, plan: Plan) -> None:
        """Queue ``plan`` for drafting without waiting; a repeated request id is ignored."""
        if plan.request_id in self._in_progress:
            return
        try:
            self._send.send_nowait((couple, plan))
        except trio.WouldBlock:
            self._dropped += 1
            log.warning(
                "personalisation.draft_queue_full",
                extra={"request": plan.request_id, "dropped": self._dropped},
            )
            return
        self._in_progress[plan.request_id] = trio.Event()
        self._queued += 1

    async def wait_for(self, request_id: int, seconds: float) -> bool:
        """Wait up to ``seconds`` for a queued draft; return False when none is queued."""
        event = self._in_progress.get(request_id)
        if event is None:
            return False
        with trio.move_on_after(seconds):
            await event.wait()
        return True

    async def run(self, journal: AsyncJournal, personaliser: Callable[[], Personaliser]) -> None:
        """Plan requests due soon and draft queued plans one after another, until cancelled.

        ``personaliser`` returns the current one, so a reloaded configuration
        drafts with its own endpoint.
        """
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._plan_soon_due, journal, personaliser)
            await self._draft_queued(journal, personaliser)

    async def plan_once(self, journal: AsyncJournal, personaliser: Personaliser) -> int:
        """Plan the requests due within the lookahead and queue their drafts; return how many."""
        ahead = await journal.transaction(
            lambda tx: personaliser.plan_ahead(tx, within=LOOKAHEAD_SECONDS, limit=PLAN_LIMIT)
        )
        for couple, plan in ahead:
            self.submit(couple, plan)
        return len(ahead)

    async def _plan_soon_due(
        self, journal: AsyncJournal, personaliser: Callable[[], Personaliser]
    ) -> None:
        while True:
            try:
                await self.plan_once(journal, personaliser())
            except JournalError as error:
                # Drafting ahead is optional: the sends still plan at their own jobs.
                log.warning("personalisation.plan_ahead_failed", extra={"error": str(error)})
            await trio.sleep(PLAN_INTERVAL)

    async def _draft_queued(
        self, journal: AsyncJournal, personaliser: Callable[[], Personaliser]
    ) -> None:
        async for couple, plan in self._receive:
            try:
                await personaliser().store_draft(journal, couple, plan)
                self._drafted += 1
            except JournalError as error:
                # The draft stays pending, so the send path may still draft it.
                log.warning(
                    "personalisation.draft_not_stored",
                    extra={"request": plan.request_id, "error": str(error)},
                )
            finally:
                self._in_progress.pop(plan.request_id).set()
