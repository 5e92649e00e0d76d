"""The platform and profiles a review import may write to, taken from the running configuration.

An import may add reviews only to a platform Plaudit has a connector for and under a
profile that the configuration lists for that platform.  Reviews under any
other platform or profile would still emit ``review.created`` events and
appear in reports, but no sync, reconciliation or reply would ever reach
them.

Platform names are compared case-insensitively, and the site's display name
(``Bodas.net``) is accepted too.  Reviews are stored under the lower-case
name.  A row may name its profile by the configured id or by the profile's
configured name (``vendor_name`` of a marketplace profile, ``name`` of a
Google location, Facebook Page, Trustpilot business unit or Yelp business).

NOTE: reviews that earlier, unchecked imports stored under another platform
name or profile stay in the journal.  ``plaudit ctl review list --platform
NAME`` shows them, but no command removes them yet.
"""

from __future__ import annotations

from typing import Final, final

import msgspec

from plaudit.actors.google import profile_of
from plaudit.config.model import PlatformsConfig
from plaudit.connectors.marketplace.sites import SITES
from plaudit.errors import PlauditError

API_PLATFORMS: Final = ("google", "facebook", "trustpilot", "yelp")
# The configuration tables that list each API platform's profiles.
API_PROFILE_TABLES: Final = {
    "google": "[[platforms.google.locations]]",
    "facebook": "[[platforms.facebook.pages]]",
    "trustpilot": "[[platforms.trustpilot.business_units]]",
    "yelp": "[[platforms.yelp.businesses]]",
}
# Maximum choices listed in one message.  A longer list ends with a count of the rest.
MAX_LISTED: Final = 20


class ImportTargetError(PlauditError):
    """The platform of an import is unknown or has no configured profile."""


@final
class ImportTarget(msgspec.Struct, frozen=True, kw_only=True):
    """The canonical platform of an import and the profiles its rows may name."""

    platform: str
    # Configured profile ids of the platform, in configuration order.
    profiles: tuple[str, ...]
    # Folded configured names to the profile id they name.
    names: dict[str, str]
    # Folded names that several profiles share, so they name none.
    ambiguous: frozenset[str]
    # The configuration table that lists the platform's profiles.
    table: str

    def resolve_profile(self, value: str) -> str:
        """Return the profile id that ``value`` names, by id or by configured name.

        Raises ValueError naming the value and listing the configured ids.
        """
        if value in self.profiles:
            return value

        folded = _fold(value)
        profile = self.names.get(folded)
        if profile is not None:
            return profile

        choices = _listing(self.profiles)
        if folded in self.ambiguous:
            raise ValueError(
                f"profile name {value!r} belongs to several {self.platform} profiles; "
                f"use one of the ids: {choices}"
            )
        raise ValueError(
            f"profile {value!r} is not configured for {self.platform}; use one of: {choices} "
            f"(the profiles in {self.table}), or add it there and reload"
        )


def known_platforms() -> list[str]:
    """Return the names of every platform Plaudit has a connector for, sorted."""
    return sorted({*API_PLATFORMS, *SITES})


def canonical_platform(name: str) -> str | None:
    """Return the lower-case platform name that ``name`` spells, or None when it is unknown."""
    folded = _fold(name)
    for platform in API_PLATFORMS:
        if folded == platform:
            return platform

    for site in SITES.values():
        if folded in (site.name, _fold(site.display_name)):
            return site.name

    return None


def configured_profiles(platforms: PlatformsConfig) -> dict[str, list[tuple[str, str]]]:
    """Return each platform's configured (profile id, name) pairs, leaving out platforms without.

    A platform table with ``enabled = false`` still counts: its profiles are
    synced again once it is enabled.
    """
    found: dict[str, list[tuple[str, str]]] = {}
    if platforms.google is not None:
        found["google"] = [(profile_of(item), item.name) for item in platforms.google.locations]
    if platforms.facebook is not None:
        found["facebook"] = [(item.page_id, item.name) for item in platforms.facebook.pages]
    if platforms.trustpilot is not None:
        units = platforms.trustpilot.business_units
        found["trustpilot"] = [(item.business_unit_id, item.name) for item in units]
    if platforms.yelp is not None:
        found["yelp"] = [(item.business_id, item.name) for item in platforms.yelp.businesses]
    if platforms.marketplace is not None:
        for profile in platforms.marketplace.profiles:
            entry = (profile.profile_id, profile.vendor_name)
            found.setdefault(profile.site, []).append(entry)

    return {platform: entries for platform, entries in found.items() if entries}


def import_target(platforms: PlatformsConfig, platform: str) -> ImportTarget:
    """Return where an import into ``platform`` may write.

    Raises ImportTargetError when the platform is unknown or has no
    configured profile, naming the value and the configured platforms.
    """
    configured = configured_profiles(platforms)
    choices = _listing(sorted(configured))
    canonical = canonical_platform(platform)
    if canonical is None:
        raise ImportTargetError(
            f"unknown platform {platform!r}; use a platform with configured profiles: {choices}"
        )

    table = _profile_table(canonical)
    entries = configured.get(canonical)
    if not entries:
        raise ImportTargetError(
            f"no {canonical} profile is configured; add one in {table} and reload, "
            f"or import into a platform with configured profiles: {choices}"
        )

    return _target(canonical, entries, table)


def _target(platform: str, entries: list[tuple[str, str]], table: str) -> ImportTarget:
    owners: dict[str, set[str]] = {}
    for profile, name in entries:
        if name.strip():
            owners.setdefault(_fold(name), set()).add(profile)

    names = {name: next(iter(ids)) for name, ids in owners.items() if len(ids) == 1}
    ambiguous = frozenset(name for name, ids in owners.items() if len(ids) > 1)
    profiles = tuple(dict.fromkeys(profile for profile, _ in entries))
    return ImportTarget(
        platform=platform, profiles=profiles, names=names, ambiguous=ambiguous, table=table
    )


def _profile_table(platform: str) -> str:
    table = API_PROFILE_TABLES.get(platform)
    if table is not None:
        return table
    return f'[[platforms.marketplace.profiles]] with site = "{platform}"'


def _listing(values: tuple[str, ...] | list[str]) -> str:
    if not values:
        return "none"
    listed = ", ".join(values[:MAX_LISTED])
    if len(values) > MAX_LISTED:
        listed += f" and {len(values) - MAX_LISTED} more"
    return listed


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()
