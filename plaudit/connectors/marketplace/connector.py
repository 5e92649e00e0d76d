"""The capabilities and ingestion modes each marketplace connector declares.

None of these platforms lets a vendor reply through an API, so REPLY is
never declared.  The WeddingWire family has public storefront pages, which
allow the PAGE mode, LIST (reading a storefront) and profile verification;
Zola, Bridebook and Easy Weddings reach Plaudit only through notification
e-mails and imports.
"""

from __future__ import annotations

from typing import Final, final

from plaudit.connectors.base import Capability, IngestionMode
from plaudit.connectors.marketplace.sites import SITES, Site, review_link

_FAMILY_CAPABILITIES: Final = frozenset(
    {Capability.LIST, Capability.VERIFY_PROFILE, Capability.REQUEST_LINK}
)
_FAMILY_MODES: Final = frozenset({IngestionMode.EMAIL, IngestionMode.PAGE, IngestionMode.IMPORT})
_OTHER_CAPABILITIES: Final = frozenset({Capability.REQUEST_LINK})
_OTHER_MODES: Final = frozenset({IngestionMode.EMAIL, IngestionMode.IMPORT})


@final
class MarketplaceConnector:
    """The declarations of one marketplace site, for actors and the health monitor."""

    def __init__(self, site: Site) -> None:
        self.site = site

    def __repr__(self) -> str:
        return f"<MarketplaceConnector {self.site.name} family={self.site.family}>"

    @property
    def name(self) -> str:
        """Platform name as used in config tables, metric labels and event keys."""
        return self.site.name

    @property
    def capabilities(self) -> frozenset[Capability]:
        """Operations this connector implements."""
        return _FAMILY_CAPABILITIES if self.site.family == "weddingwire" else _OTHER_CAPABILITIES

    @property
    def ingestion_modes(self) -> frozenset[IngestionMode]:
        """Ways this connector brings reviews in."""
        return _FAMILY_MODES if self.site.family == "weddingwire" else _OTHER_MODES

    def request_link(self, storefront_url: str) -> str:
        """Return the link couples follow to write a review of the vendor at ``storefront_url``."""
        return review_link(self.site, storefront_url)


def marketplace_connectors() -> dict[str, MarketplaceConnector]:
    """Return one connector per marketplace site, keyed by platform name."""
    return {name: MarketplaceConnector(site) for name, site in SITES.items()}
