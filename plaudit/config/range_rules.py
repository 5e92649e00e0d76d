"""Rules for pairs of keys that bound one interval, in every table that has them.

Retry tables (``[platforms.NAME.retry]``, ``[smtp.retry]``, ...) grow their
wait from ``backoff_initial`` up to ``backoff_max``, and breaker tables grow
their open interval from ``open_initial`` up to ``open_max``.  A start above
its cap would make every wait the cap, so the configuration is rejected
instead of quietly running with other waits than the file names.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import msgspec

from plaudit.config.locate import KeyPath
from plaudit.config.model import BreakerConfig, Config, RetryConfig

Finding = tuple[KeyPath, str]

# (struct type, the key that starts the interval, the key that caps it)
_PAIRS: Final = (
    (RetryConfig, "backoff_initial", "backoff_max"),
    (BreakerConfig, "open_initial", "open_max"),
)


def check_ranges(config: Config) -> Iterator[Finding]:
    """Yield a problem for every table whose start value is greater than its cap.

    Each problem names the table rather than one key, so that check_rules
    drops it when either key of the pair is itself invalid: a stand-in value
    would otherwise be compared.
    """
    for path, table in _tables(config, ()):
        for struct_type, low, high in _PAIRS:
            if not isinstance(table, struct_type):
                continue
            low_value: float = getattr(table, low)
            high_value: float = getattr(table, high)
            if low_value > high_value:
                dotted = ".".join(str(part) for part in path)
                yield (
                    path,
                    f"{low} ({low_value:g} s) is greater than {high} ({high_value:g} s); "
                    f"lower {dotted}.{low} or raise {dotted}.{high}",
                )


def _tables(value: Any, path: KeyPath) -> Iterator[tuple[KeyPath, msgspec.Struct]]:
    """Yield every table of the configuration with its key path, depth first."""
    if isinstance(value, msgspec.Struct):
        yield path, value
        for name in value.__struct_fields__:
            yield from _tables(getattr(value, name), (*path, name))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _tables(item, (*path, index))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _tables(item, (*path, str(key)))
