"""Clients for review platforms: HTTP, authentication and parsing.

Connectors know nothing of the journal or of supervision.  They turn platform
responses into :class:`plaudit.reviews.Review` records and platform failures
into :class:`plaudit.errors.PlatformError`.

- ``plaudit.connectors.base``: capabilities, ingestion modes and the
  :class:`Connector` protocol every connector follows.
- ``plaudit.connectors.apiclient``: the HTTP client with retries, limits
  and bounded bodies that the API connectors share.
- ``plaudit.connectors.google``: Google Business Profile API v4; its OAuth
  token, parsing, listing and error translation live in ``google_auth``,
  ``google_parse``, ``google_reviews`` and ``google_errors``.
- ``plaudit.connectors.facebook``, ``.trustpilot``, ``.yelp``: the other
  review APIs; ``plaudit.connectors.marketplace``: the WeddingWire family's
  storefronts, notification e-mails and exports.
"""

from plaudit.connectors.base import Capability, Connector, IngestionMode

__all__ = ["Capability", "Connector", "IngestionMode"]
