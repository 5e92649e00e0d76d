"""Configuration: one TOML file decoded into strict, typed msgspec structs.

- ``model``: the root ``Config`` struct, re-exporting the table structs that
  ``base`` and the ``*_tables`` modules define by subject; unknown keys are rejected.
- ``loader``: ``load_config`` reads, parses and validates a file and reports
  every problem with its file, line, column and key path.
- ``validate`` and ``rules``: the per-value schema check and the semantic rules
  between keys that the loader runs.
- ``locate``: positions of keys in the TOML source, for those messages.
- ``paths``: ``resolve_paths`` and ``read_secret`` for the daemon.
- ``check``: ``plaudit check-config``.
"""

from plaudit.config.check import check_config, summarize_config
from plaudit.config.loader import load_config
from plaudit.config.model import (
    Config,
    ControlConfig,
    DaemonConfig,
    GoogleConfig,
    GoogleLocation,
    JournalConfig,
    MetricsConfig,
    PlatformsConfig,
    SupervisorConfig,
)
from plaudit.config.paths import Paths, read_secret, resolve_paths

__all__ = [
    "Config",
    "ControlConfig",
    "DaemonConfig",
    "GoogleConfig",
    "GoogleLocation",
    "JournalConfig",
    "MetricsConfig",
    "Paths",
    "PlatformsConfig",
    "SupervisorConfig",
    "check_config",
    "load_config",
    "read_secret",
    "resolve_paths",
    "summarize_config",
]
