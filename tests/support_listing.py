"""Shared pieces for tests of review listings that fail part-way and resume.

The sandbox they list comes from the ``quiet_sandbox_url`` fixture in
tests/conftest.py.
"""

from __future__ import annotations

import httpx

from plaudit.journal import AsyncJournal
from plaudit.reviews.model import Review
from plaudit.reviews.store import apply_snapshot, load_reviews

PHANTOM_ID = "phantom-1"


class RefusingTransport(httpx.AsyncBaseTransport):
    """Forwards requests over loopback HTTP, except those :meth:`refuses` picks.

    A picked request fails as a refused connection.  Subclasses override
    :meth:`refuses`, and this class picks none.
    """

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()

    def refuses(self, request: httpx.Request) -> bool:
        return False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.refuses(request):
            raise httpx.ConnectError("connection refused by the test", request=request)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def store_phantom(journal: AsyncJournal, platform: str, profile: str) -> None:
    """Store a review that the platform never lists, as if it had been deleted there."""
    phantom = Review(
        platform=platform,
        profile=profile,
        review_id=PHANTOM_ID,
        stars=5,
        text="Lovely flowers.",
        author="A. Couple",
        created_at="2025-01-01T00:00:00.000Z",
        updated_at="2025-01-01T00:00:00.000Z",
    )
    await journal.transaction(
        lambda tx: apply_snapshot(
            tx, platform=platform, profile=profile, reviews=[phantom], complete=False
        )
    )


async def phantom_deleted(journal: AsyncJournal, platform: str, profile: str) -> bool:
    """Return whether the review from :func:`store_phantom` is marked deleted."""
    reviews = await journal.transaction(
        lambda tx: load_reviews(tx, platform, profile, include_deleted=True)
    )
    (phantom,) = [review for review in reviews if review.review_id == PHANTOM_ID]
    return phantom.deleted_at is not None
