"""Messaging in the daemon: unsubscribe pages, the notifier's links, alerts and reloads."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import final

import msgspec

from plaudit.actors.base import Actor
from plaudit.actors.notifier import NotifierActor, build_notifier, runs_notifier
from plaudit.actors.operator import OperatorAlertActor, build_alert_actor
from plaudit.config.model import Config
from plaudit.errors import PlauditError
from plaudit.journal import AsyncJournal
from plaudit.messaging.campaigns import schedule_new_couples
from plaudit.messaging.unsubscribe import UnsubscribePages, daemon_tokens
from plaudit.messaging.unsubscribe_checks import log_config_warnings

log = logging.getLogger(__name__)


@final
class Messaging(msgspec.Struct, frozen=True, kw_only=True):
    """The messaging parts a daemon runs: the ``notifier`` actor and the unsubscribe pages."""

    notifier: Actor
    # None when the config has no [vendor]: no request, so no link to serve.
    unsubscribe_pages: UnsubscribePages | None


def build_messaging(
    config: Config,
    journal: AsyncJournal,
    *,
    state_dir: Path,
    config_path: str,
    settings: Callable[[], Config],
) -> Messaging:
    """Build the notifier (or the alert-only actor) and the unsubscribe pages.

    ``settings`` returns the daemon's current config, read by the pages on
    every request.  Raises ConfigError when the unsubscribe key cannot be
    read or created.
    """
    log_config_warnings(config)
    tokens = daemon_tokens(config, state_dir, config_path=config_path)
    notifier: Actor | None = build_notifier(config, journal)
    if isinstance(notifier, NotifierActor):
        notifier.unsubscribe_tokens = tokens
    else:
        notifier = build_alert_actor(config, journal)
    pages = None if tokens is None else UnsubscribePages(journal, tokens, settings)
    return Messaging(notifier=notifier, unsubscribe_pages=pages)


async def reconfigure_messaging(actors: dict[str, Actor], config: Config) -> None:
    """Apply a reloaded config to the running notifier, and schedule new campaigns.

    A config the running actor cannot take (no [vendor] any more, or the
    first campaigns while only alerts were delivered) is logged and left for
    a restart.
    """
    log_config_warnings(config)
    notifier = actors.get("notifier")
    if isinstance(notifier, OperatorAlertActor):
        notifier.reconfigure(config)
        if runs_notifier(config):
            log.warning(
                "notifier.restart_required",
                extra={"reason": "campaigns were added; restart the daemon to send them"},
            )
        return
    if not isinstance(notifier, NotifierActor):
        return
    try:
        notifier.reconfigure(config)
    except (ValueError, PlauditError) as error:
        log.warning("notifier.reload_skipped", extra={"error": str(error)})
        return
    scheduled = await notifier.journal.transaction(lambda tx: schedule_new_couples(tx, config))
    if scheduled:
        log.info("notifier.scheduled_after_reload", extra={"requests": scheduled})
    notifier.wake()
