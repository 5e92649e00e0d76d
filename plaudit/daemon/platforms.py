"""Building the platform actors from the configuration, and reloading them."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from plaudit.actors.base import Actor
from plaudit.actors.google import GoogleActor
from plaudit.actors.marketplace import build_marketplace_actors, reconfigure_marketplace_actors
from plaudit.actors.sources import build_listing_actors, reconfigure_listing_actors
from plaudit.config import Config, read_secret
from plaudit.config.model import GoogleConfig
from plaudit.connectors.google import GoogleClient
from plaudit.journal import AsyncJournal
from plaudit.reliability.monitor import PlatformHealthMonitor

if TYPE_CHECKING:
    from plaudit.daemon.app import Daemon

log = logging.getLogger(__name__)


def google_secrets(config: GoogleConfig) -> tuple[str, str]:
    """Return the client secret and refresh token; raises ConfigError when one cannot be read."""
    secret = read_secret(
        config.client_secret, config.client_secret_file, key="platforms.google.client_secret"
    )
    token = read_secret(
        config.refresh_token, config.refresh_token_file, key="platforms.google.refresh_token"
    )
    return secret, token


def google_client(config: GoogleConfig) -> GoogleClient:
    secret, token = google_secrets(config)
    return GoogleClient(config, client_secret=secret, refresh_token=token)


def check_platform_secrets(config: Config) -> None:
    """Read every enabled platform's secrets, so a reload with an unreadable one is rejected."""
    google = config.platforms.google
    if google is not None and google.enabled:
        google_secrets(google)


def build_platform_actors(
    config: Config, journal: AsyncJournal, *, monitor: PlatformHealthMonitor | None = None
) -> dict[str, Actor]:
    """Return one actor per enabled platform, keyed by actor name."""
    actors: dict[str, Actor] = {}
    google = config.platforms.google
    if google is not None and google.enabled:
        actors["google"] = GoogleActor(
            journal,
            google,
            google_client,
            lease_seconds=config.journal.lease_seconds,
            monitor=monitor,
        )
    actors.update(build_listing_actors(config, journal, monitor=monitor))
    actors.update(build_marketplace_actors(config, journal, monitor=monitor))
    return actors


async def reconfigure_platform_actors(daemon: Daemon, config: Config) -> None:
    """Hand reloaded settings to running actors.

    NOTE: enabling or disabling a whole platform takes a restart; the reload
    logs it and keeps the running set of actors.
    """
    google = config.platforms.google
    actor = daemon.actors.get("google")
    if isinstance(actor, GoogleActor) and google is not None and google.enabled:
        actor.reconfigure(google)
    wanted = {"google"} if google is not None and google.enabled else set()
    wanted |= await reconfigure_listing_actors(daemon.actors, config)
    wanted |= reconfigure_marketplace_actors(daemon.actors, config)
    # The webhook actor is not a platform; it always runs.
    if wanted != set(daemon.actors) - {"webhooks"}:
        log.warning(
            "config.platforms_need_restart",
            extra={"running": sorted(daemon.actors), "configured": sorted(wanted)},
        )
