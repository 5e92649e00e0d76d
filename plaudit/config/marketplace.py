"""Rules for the ``[platforms.marketplace]`` table.

Each rule yields ``(key path, message)`` pairs; :mod:`plaudit.config.rules`
wraps them into problems.  Storefront URLs must be on the site's own domain,
because a typo that points Plaudit at another host would poll a stranger's
server.  ``allow_any_host`` lifts that rule for the sandbox on loopback.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Final
from urllib.parse import urlsplit

from plaudit.config.base import is_loopback_host
from plaudit.config.model import Config, MarketplaceConfig, MarketplaceProfile

Finding = tuple[tuple[str | int, ...], str]

# Storefront polls closer together than 15 minutes are impolite to sites
# without an API, and they make bot-challenge pages more likely.
MIN_POLL_INTERVAL: Final = 900.0
# Sites whose pages Plaudit can read; the others reach it by e-mail and import only.
_PAGE_FAMILY: Final = "weddingwire"


def check_marketplace(config: Config) -> Iterator[Finding]:
    """Yield every problem of the ``[platforms.marketplace]`` table."""
    marketplace = config.platforms.marketplace
    if marketplace is None:
        return

    table = ("platforms", "marketplace")
    if marketplace.enabled and not marketplace.profiles:
        yield (*table, "profiles"), "no profiles configured; add [[platforms.marketplace.profiles]]"
    seen: dict[tuple[str, str], int] = {}
    maildirs: dict[str, int] = {}
    imap_folders: dict[str, int] = {}
    for index, profile in enumerate(marketplace.profiles):
        path = (*table, "profiles", index)
        yield from _check_profile(path, profile, marketplace)
        key = (profile.site, profile.profile_id)
        if key in seen:
            yield (
                (*path, "profile_id"),
                f"profile {profile.profile_id!r} of {profile.site} is also profiles[{seen[key]}]; "
                "keep one entry",
            )
        seen.setdefault(key, index)
        if profile.maildir and "mailbox" in profile.modes:
            first = maildirs.get(profile.maildir)
            if first is not None:
                yield (
                    (*path, "maildir"),
                    f"Maildir {profile.maildir} is also used by profiles[{first}]; give each "
                    "profile its own Maildir (a mail filter can sort by sender)",
                )
            maildirs.setdefault(profile.maildir, index)
        if profile.imap_host and "mailbox" in profile.modes:
            folder = f"{profile.imap_user}@{profile.imap_host}:{profile.imap_port}/"
            folder += profile.imap_folder
            first = imap_folders.get(folder)
            if first is not None:
                yield (
                    (*path, "imap_folder"),
                    f"IMAP folder {folder} is also read by profiles[{first}]; give each profile "
                    "its own folder, because reading flags each message \\Seen",
                )
            imap_folders.setdefault(folder, index)


def _check_profile(
    path: tuple[str | int, ...], profile: MarketplaceProfile, marketplace: MarketplaceConfig
) -> Iterator[Finding]:
    # Imported here, so a configuration without marketplaces never loads the parsers.
    from plaudit.connectors.marketplace.sites import SITES

    site = SITES.get(profile.site)
    if site is None:
        known = ", ".join(sorted(SITES))
        yield (*path, "site"), f"unknown site {json.dumps(profile.site)}; use one of: {known}"
        return

    if not profile.profile_id.strip():
        yield (*path, "profile_id"), "empty; set the vendor's id on the site"
    if not profile.vendor_name.strip():
        yield (*path, "vendor_name"), "empty; set the business name the storefront shows"
    if len(set(profile.modes)) != len(profile.modes) or not profile.modes:
        yield (*path, "modes"), "list each of mailbox, storefront and import at most once"
    if "storefront" in profile.modes and site.family != _PAGE_FAMILY:
        yield (
            (*path, "modes"),
            f"{site.display_name} reaches Plaudit by its notification e-mails and by import; "
            "use mailbox or import for it (`plaudit inspect storefront` can still read a "
            "saved page)",
        )
    yield from _check_urls(path, profile, site.domain)
    yield from _check_folders(path, profile)
    if (
        "storefront" in profile.modes
        and profile.poll_interval < MIN_POLL_INTERVAL
        and not marketplace.allow_short_poll_interval
    ):
        yield (
            (*path, "poll_interval"),
            f"{profile.poll_interval:g} s is below the minimum of {MIN_POLL_INTERVAL:g} s; "
            "poll storefronts at most every 15 minutes",
        )


def _check_urls(
    path: tuple[str | int, ...], profile: MarketplaceProfile, domain: str
) -> Iterator[Finding]:
    if "storefront" in profile.modes and not profile.storefront_url:
        yield (*path, "storefront_url"), "missing; mode storefront needs the vendor's page URL"
    for name in ("storefront_url", "review_link"):
        url = getattr(profile, name)
        if not url:
            continue
        reason = _host_problem(url, domain, allow_any_host=profile.allow_any_host)
        if reason:
            yield (*path, name), reason


def _host_problem(url: str, domain: str, *, allow_any_host: bool) -> str:
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
    except ValueError:
        return f"invalid URL {json.dumps(url)}; use an absolute https:// URL"

    if parts.scheme not in ("http", "https") or not host:
        return f"invalid URL {json.dumps(url)}; use an absolute https:// URL"
    if allow_any_host:
        return ""
    bare = domain.removeprefix("www.")
    if host != bare and not host.endswith("." + bare):
        return (
            f"host {host} of {json.dumps(url)} is not on {domain}; use the site's own URL "
            "(or set allow_any_host for the sandbox)"
        )
    return ""


def _check_folders(path: tuple[str | int, ...], profile: MarketplaceProfile) -> Iterator[Finding]:
    if "mailbox" in profile.modes and not profile.maildir and not profile.imap_host:
        yield (*path, "maildir"), "missing; mode mailbox needs maildir or imap_host"
    if "import" in profile.modes and not profile.import_folder:
        yield (*path, "import_folder"), "missing; mode import needs import_folder"
    # maildir and import_folder may be relative, because they are taken from [daemon] state_dir.
    if profile.imap_password_file and not os.path.isabs(profile.imap_password_file):
        yield (
            (*path, "imap_password_file"),
            f"relative path {json.dumps(profile.imap_password_file)}; use an absolute path",
        )
    yield from _check_imap(path, profile)


def _check_imap(path: tuple[str | int, ...], profile: MarketplaceProfile) -> Iterator[Finding]:
    if not profile.imap_host:
        return
    for name in ("imap_user", "imap_password_file"):
        if not getattr(profile, name):
            yield (*path, name), f"missing; imap_host {json.dumps(profile.imap_host)} needs {name}"
    if profile.imap_security == "none" and not is_loopback_host(profile.imap_host):
        yield (
            (*path, "imap_security"),
            f"'none' would send the password to {profile.imap_host} in clear text; use 'tls' "
            "or 'starttls' ('none' is for loopback hosts only)",
        )
