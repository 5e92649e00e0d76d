"""Platform names as vendors know them, for the report's prose and tables."""

from __future__ import annotations

from typing import Final

from plaudit.connectors.marketplace.sites import SITES

# Platform id -> display name; the marketplace sites bring their own.
PLATFORM_NAMES: Final = {
    "google": "Google",
    "facebook": "Facebook",
    "trustpilot": "Trustpilot",
    "yelp": "Yelp",
    **{site.name: site.display_name for site in SITES.values()},
}


def platform_name(platform: str) -> str:
    """Return the platform's name as vendors know it, or the id when it is not known."""
    return PLATFORM_NAMES.get(platform, platform)
