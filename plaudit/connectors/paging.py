"""Pages of a listing handed to the caller as they are read, so a listing can resume.

A listing connector calls a :data:`PageHook` after each page with the
page's reviews and the cursor of the page that follows.  The listing actor
commits both in one transaction, so a listing cut short by a crash or a
failed page starts again at the next page instead of the first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import final

import msgspec

from plaudit.reviews.model import Contact, Review


@final
class ListedPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of a listing, handed over as soon as it is read."""

    reviews: list[Review]
    # Review id -> the address and reference the platform gave with it.
    contacts: dict[str, Contact] = msgspec.field(default_factory=dict)
    # The platform's cursor (or page number) of the next page; None when the
    # listing stops after this page, complete or not.
    next_cursor: str | None


PageHook = Callable[[ListedPage], Awaitable[None]]
"""Receives each page of a listing before the next page is requested."""
