"""Wiring of the inbound listener and the inbox actor into the daemon."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

from plaudit.config import Config
from plaudit.errors import ConfigError
from plaudit.inbound.inbox import InboxActor
from plaudit.inbound.providers import CredentialError, Verifiers
from plaudit.inbound.server import serve_inbound
from plaudit.inbound.sns import TrustStoreError
from plaudit.journal import AsyncJournal
from plaudit.messaging.event_rules import CampaignRulesSource, no_rules
from plaudit.messaging.unsubscribe import UnsubscribePages


def build_inbound(
    config: Config,
    journal: AsyncJournal,
    *,
    config_path: str,
    unsubscribe_pages: UnsubscribePages | None = None,
    rules: CampaignRulesSource = no_rules,
) -> tuple[InboxActor, Callable[..., Awaitable[None]]] | None:
    """Return the inbox actor and the listener's serve function, or None without ``[inbound]``.

    ``rules`` returns the campaigns that a complaint or hard bounce stops.
    Raises ConfigError when a credential file cannot be read.
    """
    inbound = config.inbound
    if inbound is None:
        return None
    try:
        verifiers = Verifiers(inbound)
    except (CredentialError, TrustStoreError) as error:
        raise ConfigError(config_path, [f"inbound: {error}"]) from error
    platforms = frozenset(
        name for name in ("google", "facebook") if getattr(config.platforms, name) is not None
    )
    actor = InboxActor(
        journal, lease_seconds=config.journal.lease_seconds, platforms=platforms, rules=rules
    )
    serve = partial(
        serve_inbound,
        journal,
        verifiers,
        inbound.host,
        inbound.port,
        max_body_bytes=inbound.max_body_bytes,
        unsubscribe_pages=unsubscribe_pages,
    )
    return actor, serve
