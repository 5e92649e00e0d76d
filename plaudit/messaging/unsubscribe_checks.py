"""check-config rules for the route an e-mail's https unsubscribe link needs.

``[vendor] unsubscribe_url`` puts an https link, and with it the RFC 8058
one-click ``List-Unsubscribe-Post`` header, in every review-request e-mail.
Only the ``[inbound]`` listener serves ``/unsubscribe/<token>`` and checks
the token, so without ``[inbound]`` that link leads nowhere.

- With no ``unsubscribe_mailto`` either, a couple has no working way to
  unsubscribe from any message: that is an error, and the daemon does not
  start with it.
- With ``unsubscribe_mailto`` set, the mailto address in the same header
  still works, but the visible link and one-click do not: a warning, which
  check-config prints and the daemon logs at start and reload.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from plaudit.config.locate import KeyPath, format_key_path
from plaudit.config.model import Config

log = logging.getLogger(__name__)

_KEY: KeyPath = ("vendor", "unsubscribe_url")


def check_unsubscribe_route(config: Config) -> Iterator[tuple[KeyPath, str]]:
    """Yield the error for e-mail whose only unsubscribe link nothing serves."""
    if not _link_unserved(config) or config.vendor is None or config.vendor.unsubscribe_mailto:
        return
    yield (
        _KEY,
        f"{config.vendor.unsubscribe_url!r} is in every e-mail, but without an [inbound] "
        "table nothing serves it, so couples could not unsubscribe; add [inbound] and route "
        "this URL's /unsubscribe/ path to it, or set unsubscribe_mailto as well",
    )


def unsubscribe_route_warnings(config: Config) -> list[tuple[KeyPath, str]]:
    """Return the warning for an unserved https link beside a working mailto address."""
    if not _link_unserved(config) or config.vendor is None or not config.vendor.unsubscribe_mailto:
        return []
    return [
        (
            _KEY,
            f"{config.vendor.unsubscribe_url!r} and one-click unsubscribe lead nowhere without "
            "an [inbound] table, so only unsubscribe_mailto works and mailbox providers that "
            "require one-click may file the mail as spam; add [inbound] and route this URL's "
            "/unsubscribe/ path to it",
        )
    ]


def config_warnings(config: Config) -> list[str]:
    """Return check-config's warnings, each as "key: message"."""
    return [
        f"{format_key_path(path)}: {message}"
        for path, message in unsubscribe_route_warnings(config)
    ]


def log_config_warnings(config: Config) -> None:
    """Log each warning of ``config`` once, for a daemon start or reload."""
    for warning in config_warnings(config):
        log.warning("config.warning", extra={"warning": warning})


def _link_unserved(config: Config) -> bool:
    vendor = config.vendor
    if vendor is None or not vendor.unsubscribe_url or config.inbound is not None:
        return False
    return any(step.channel == "email" for campaign in config.campaigns for step in campaign.steps)
