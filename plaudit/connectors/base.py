"""The declarations every platform connector makes about itself.

A connector is a client for one review platform.  It declares which
operations the platform lets it perform (:class:`Capability`) and how reviews
reach Plaudit from that platform (:class:`IngestionMode`), so actors and the
health monitor can plan without knowing the platform.
"""

from __future__ import annotations

import enum
from typing import Protocol


class Capability(enum.Enum):
    """An operation a connector can perform on its platform."""

    # Fetch the reviews of a profile, page by page.
    LIST = "list"
    # Receive notifications of new and changed reviews.
    PUSH = "push"
    # Post or update the vendor's public reply to a review.
    REPLY = "reply"
    # Check that a configured profile exists and names the vendor.
    VERIFY_PROFILE = "verify_profile"
    # Build the link that couples follow to write a review.
    REQUEST_LINK = "request_link"


class IngestionMode(enum.Enum):
    """A way reviews reach Plaudit from a platform."""

    # Periodic listing through the platform's API.
    API_POLL = "api_poll"
    # Notifications pushed by the platform (webhooks, Pub/Sub).
    PUSH = "push"
    # The platform's "new review" notification e-mails.
    EMAIL = "email"
    # The public storefront or profile page.
    PAGE = "page"
    # CSV or JSON files exported by the vendor.
    IMPORT = "import"


class Connector(Protocol):
    """The part of a connector that the rest of Plaudit relies on."""

    @property
    def name(self) -> str:
        """Platform name as used in config tables, metric labels and event keys."""
        ...

    @property
    def capabilities(self) -> frozenset[Capability]:
        """Operations this connector implements."""
        ...

    @property
    def ingestion_modes(self) -> frozenset[IngestionMode]:
        """Ways this connector brings reviews in."""
        ...
