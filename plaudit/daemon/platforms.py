"""Building the platform actors from the configuration, and reloading them."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from plaudit.actors.base import Actor
from plaudit.actors.google import GoogleActor
from plaudit.config import Config, read_secret
from plaudit.config.model import GoogleConfig
from plaudit.connectors.google import GoogleClient
from plaudit.journal import AsyncJournal

if TYPE_CHECKING:
    from plaudit.daemon.app import Daemon

log = logging.getLogger(__name__)


def google_client(config: GoogleConfig) -> GoogleClient:
    secret = read_secret(
        config.client_secret, config.client_secret_file, key="platforms.google.client_secret"
    )
    token = read_secret(
        config.refresh_token, config.refresh_token_file, key="platforms.google.refresh_token"
    )
    return GoogleClient(config, client_secret=secret, refresh_token=token)


def build_platform_actors(config: Config, journal: AsyncJournal) -> dict[str, Actor]:
    """Return one actor per enabled platform, keyed by actor name."""
    actors: dict[str, Actor] = {}
    google = config.platforms.google
    if google is not None and google.enabled:
        actors["google"] = GoogleActor(
            journal, google, google_client(google), lease_seconds=config.journal.lease_seconds
        )
    return actors


async def reconfigure_platform_actors(daemon: Daemon, config: Config) -> None:
    """Hand reloaded settings to running actors.

    NOTE: enabling or disabling a whole platform takes a restart; the reload
    logs it and keeps the running set of actors.
    """
    google = config.platforms.google
    actor = daemon.actors.get("google")
    if isinstance(actor, GoogleActor) and google is not None and google.enabled:
        old_client = actor.client
        actor.reconfigure(google, google_client(google))
        await old_client.aclose()
    wanted = {"google"} if google is not None and google.enabled else set()
    if wanted != set(daemon.actors):
        log.warning(
            "config.platforms_need_restart",
            extra={"running": sorted(daemon.actors), "configured": sorted(wanted)},
        )
