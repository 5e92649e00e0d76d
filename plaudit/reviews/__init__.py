"""The normalised review model and its journal writes.

- ``plaudit.reviews.model``: :class:`Review`, the record every connector
  produces, and the UTC timestamp format it uses.
- ``plaudit.reviews.store``: applying a platform listing to the ``reviews``
  table inside a journal transaction, with one outbox event per change.
"""

from plaudit.reviews.model import Review, format_timestamp, normalize_timestamp

__all__ = ["Review", "format_timestamp", "normalize_timestamp"]
