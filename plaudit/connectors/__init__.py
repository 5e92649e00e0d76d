"""Clients for review platforms: HTTP, authentication and parsing.

Connectors know nothing of the journal or of supervision.  They turn platform
responses into :class:`plaudit.reviews.Review` records and platform failures
into :class:`plaudit.errors.PlatformError`.

- ``plaudit.connectors.base``: capabilities, ingestion modes and the
  :class:`Connector` protocol every connector follows.
- ``plaudit.connectors.google``: Google Business Profile API v4.
"""

from plaudit.connectors.base import Capability, Connector, IngestionMode

__all__ = ["Capability", "Connector", "IngestionMode"]
