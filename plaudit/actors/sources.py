"""The Facebook, Trustpilot and Yelp connectors as listing sources, and their actors."""

from __future__ import annotations

from typing import Final, final

from plaudit.actors.base import Actor
from plaudit.actors.listing import Listing, ListingActor, ListingSource
from plaudit.config import Config, read_secret
from plaudit.config.model import BreakerConfig, FacebookConfig, TrustpilotConfig, YelpConfig
from plaudit.connectors.facebook import FacebookClient, facebook_client
from plaudit.connectors.paging import PageHook
from plaudit.connectors.trustpilot import TrustpilotClient, trustpilot_client
from plaudit.connectors.yelp import YelpClient, yelp_client
from plaudit.journal import AsyncJournal
from plaudit.reliability.monitor import PlatformHealthMonitor

# 200 pages is far beyond any wedding vendor's review count; a listing cut
# off there never infers deletions.
MAX_PAGES: Final = 200


@final
class FacebookSource:
    """The ratings of the configured Pages."""

    platform: Final = "facebook"

    def __init__(self, config: FacebookConfig, client: FacebookClient) -> None:
        self.config = config
        self.client = client

    def __repr__(self) -> str:
        return f"<FacebookSource pages={len(self.config.pages)}>"

    def profiles(self) -> list[str]:
        return [page.page_id for page in self.config.pages]

    async def list_profile(
        self, profile: str, *, resume: str | None = None, on_page: PageHook | None = None
    ) -> Listing:
        listing = await self.client.list_all_ratings(
            profile, max_pages=MAX_PAGES, start_after=resume, on_page=on_page
        )
        return Listing(reviews=listing.reviews, complete=listing.complete)

    async def post_reply(self, profile: str, review_id: str, text: str) -> str | None:
        """Comment on the rating's story, whose id is the review id; Facebook returns no time."""
        await self.client.reply(profile, review_id, text)
        return None

    async def aclose(self) -> None:
        await self.client.aclose()


@final
class TrustpilotSource:
    """The reviews of the configured business units, with the address and reference of each."""

    platform: Final = "trustpilot"

    def __init__(self, config: TrustpilotConfig, client: TrustpilotClient) -> None:
        self.config = config
        self.client = client

    def __repr__(self) -> str:
        return f"<TrustpilotSource business_units={len(self.config.business_units)}>"

    def profiles(self) -> list[str]:
        return [unit.business_unit_id for unit in self.config.business_units]

    async def list_profile(
        self, profile: str, *, resume: str | None = None, on_page: PageHook | None = None
    ) -> Listing:
        start = int(resume) if resume and resume.isdigit() and int(resume) >= 1 else 1
        listing = await self.client.list_all_reviews(
            profile, max_pages=MAX_PAGES, start_page=start, on_page=on_page
        )
        return Listing(
            reviews=listing.reviews, complete=listing.complete, contacts=listing.contacts
        )

    async def post_reply(self, profile: str, review_id: str, text: str) -> str | None:
        """Create or replace the business unit's reply; Trustpilot returns no time."""
        await self.client.reply(review_id, text)
        return None

    async def aclose(self) -> None:
        await self.client.aclose()


@final
class YelpSource:
    """The review excerpts of the configured businesses; never complete, so never deletes."""

    platform: Final = "yelp"

    def __init__(self, config: YelpConfig, client: YelpClient) -> None:
        self.config = config
        self.client = client

    def __repr__(self) -> str:
        return f"<YelpSource businesses={len(self.config.businesses)}>"

    def profiles(self) -> list[str]:
        return [business.business_id for business in self.config.businesses]

    async def list_profile(
        self, profile: str, *, resume: str | None = None, on_page: PageHook | None = None
    ) -> Listing:
        # One request lists every excerpt, so there is nothing to resume.
        listing = await self.client.list_excerpts(profile)
        return Listing(reviews=listing.reviews, complete=False)

    async def aclose(self) -> None:
        await self.client.aclose()


def build_sources(config: Config) -> dict[str, tuple[ListingSource, float, BreakerConfig]]:
    """Return each enabled listing platform's source, sync interval and breaker settings.

    Raises ConfigError when a secret or its file is missing.
    """
    sources: dict[str, tuple[ListingSource, float, BreakerConfig]] = {}
    platforms = config.platforms
    if platforms.facebook is not None and platforms.facebook.enabled:
        facebook = platforms.facebook
        tokens = {
            page.page_id: read_secret(
                page.access_token,
                page.access_token_file,
                key=f"platforms.facebook.pages[{index}].access_token",
            )
            for index, page in enumerate(facebook.pages)
        }
        client = facebook_client(facebook, page_tokens=tokens)
        sources["facebook"] = (
            FacebookSource(facebook, client),
            facebook.sync_interval,
            facebook.breaker,
        )
    if platforms.trustpilot is not None and platforms.trustpilot.enabled:
        trustpilot = platforms.trustpilot
        secret = read_secret(
            trustpilot.api_secret, trustpilot.api_secret_file, key="platforms.trustpilot.api_secret"
        )
        client_tp = trustpilot_client(trustpilot, api_secret=secret)
        sources["trustpilot"] = (
            TrustpilotSource(trustpilot, client_tp),
            trustpilot.sync_interval,
            trustpilot.breaker,
        )
    if platforms.yelp is not None and platforms.yelp.enabled:
        yelp = platforms.yelp
        key = read_secret(yelp.api_key, yelp.api_key_file, key="platforms.yelp.api_key")
        client_yelp = yelp_client(yelp, api_key=key)
        sources["yelp"] = (YelpSource(yelp, client_yelp), yelp.sync_interval, yelp.breaker)
    return sources


def build_listing_actors(
    config: Config, journal: AsyncJournal, *, monitor: PlatformHealthMonitor | None = None
) -> dict[str, Actor]:
    """Return one listing actor per enabled Facebook, Trustpilot and Yelp table."""
    return {
        name: ListingActor(
            journal,
            source,
            sync_interval=interval,
            breaker=breaker,
            lease_seconds=config.journal.lease_seconds,
            monitor=monitor,
        )
        for name, (source, interval, breaker) in build_sources(config).items()
    }


async def reconfigure_listing_actors(actors: dict[str, Actor], config: Config) -> set[str]:
    """Hand reloaded settings to running listing actors; return the listing platforms configured."""
    sources = build_sources(config)
    for name, (source, interval, _) in sources.items():
        actor = actors.get(name)
        if isinstance(actor, ListingActor):
            old = actor.source
            actor.reconfigure(source, sync_interval=interval)
            await old.aclose()
        else:
            await source.aclose()
    return set(sources)
