"""Rules for the Facebook, Trustpilot and Yelp tables under ``[platforms]``.

Each rule yields ``(key path, message)`` pairs; :mod:`plaudit.config.rules`
wraps them into problems.  Besides the per-table checks, one rule rejects a
Yelp link anywhere in the configuration except ``platforms.yelp.api_base``:
Yelp forbids asking for reviews, so Plaudit must never send couples one.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any, Final
from urllib.parse import urlsplit

import msgspec

from plaudit.config.model import Config

Finding = tuple[tuple[str | int, ...], str]

_PAGE_ID = re.compile(r"[0-9]{1,30}")
_UNIT_ID = re.compile(r"[0-9a-fA-F]{1,64}")
_BUSINESS_ID = re.compile(r"[A-Za-z0-9_-]{1,120}")
_YELP_HOST = re.compile(r"(^|\.)yelp\.[a-z.]{2,10}$|(^|\.)yelp\.to$")
_YELP_API_KEYS: Final = (("platforms", "yelp", "api_base"),)


def check_api_platforms(config: Config) -> Iterator[Finding]:
    """Yield every problem of the Facebook, Trustpilot and Yelp tables, and Yelp links."""
    yield from _check_facebook(config)
    yield from _check_trustpilot(config)
    yield from _check_yelp(config)
    yield from _check_yelp_links(config)


def _check_url(path: tuple[str | int, ...], url: str) -> Iterator[Finding]:
    # Imported here because rules imports this module.
    from plaudit.config.rules import _url_problem

    reason = _url_problem(url)
    if reason:
        yield path, f"{reason}; use an absolute http:// or https:// URL"


def _check_pair(
    path: tuple[str | int, ...], value: str, file: str, name: str, *, required: bool = True
) -> Iterator[Finding]:
    file_key = f"{name}_file"
    if value and file:
        yield (*path, file_key), f"both {name} and {file_key} are set; keep only one of them"
    elif required and not value and not file:
        yield (*path, name), f"missing; set {name} or {file_key}"
    elif file and not os.path.isabs(file):
        yield (*path, file_key), f"relative path {json.dumps(file)}; use an absolute path"


def _check_facebook(config: Config) -> Iterator[Finding]:
    facebook = config.platforms.facebook
    if facebook is None:
        return

    table = ("platforms", "facebook")
    yield from _check_url((*table, "api_base"), facebook.api_base)
    yield from _check_pair(
        table, facebook.app_secret, facebook.app_secret_file, "app_secret", required=False
    )
    if facebook.enabled and not facebook.pages:
        yield (*table, "pages"), "no Pages configured; add a [[platforms.facebook.pages]] table"
    seen: set[str] = set()
    for index, page in enumerate(facebook.pages):
        path = (*table, "pages", index)
        if not _PAGE_ID.fullmatch(page.page_id):
            yield (*path, "page_id"), f"invalid Page id {json.dumps(page.page_id)}; use digits only"
        elif page.page_id in seen:
            yield (*path, "page_id"), f"Page {page.page_id} is listed twice; keep one entry"
        seen.add(page.page_id)
        yield from _check_pair(path, page.access_token, page.access_token_file, "access_token")


def _check_trustpilot(config: Config) -> Iterator[Finding]:
    trustpilot = config.platforms.trustpilot
    if trustpilot is None:
        return

    table = ("platforms", "trustpilot")
    yield from _check_url((*table, "api_base"), trustpilot.api_base)
    yield from _check_url((*table, "token_url"), trustpilot.token_url)
    if not trustpilot.api_key:
        yield (*table, "api_key"), "empty; set the API key of the Trustpilot application"
    yield from _check_pair(table, trustpilot.api_secret, trustpilot.api_secret_file, "api_secret")
    if trustpilot.enabled and not trustpilot.business_units:
        yield (
            (*table, "business_units"),
            "no business units configured; add a [[platforms.trustpilot.business_units]] table",
        )
    for index, unit in enumerate(trustpilot.business_units):
        if not _UNIT_ID.fullmatch(unit.business_unit_id):
            yield (
                (*table, "business_units", index, "business_unit_id"),
                f"invalid business unit id {json.dumps(unit.business_unit_id)}; "
                "use the hexadecimal id from the Trustpilot Business app",
            )


def _check_yelp(config: Config) -> Iterator[Finding]:
    yelp = config.platforms.yelp
    if yelp is None:
        return

    table = ("platforms", "yelp")
    yield from _check_url((*table, "api_base"), yelp.api_base)
    yield from _check_pair(table, yelp.api_key, yelp.api_key_file, "api_key")
    if yelp.enabled and not yelp.businesses:
        yield (*table, "businesses"), "no businesses configured; add [[platforms.yelp.businesses]]"
    for index, business in enumerate(yelp.businesses):
        if not _BUSINESS_ID.fullmatch(business.business_id):
            yield (
                (*table, "businesses", index, "business_id"),
                f"invalid Yelp business id {json.dumps(business.business_id)}; "
                "use the id or alias from the business's Yelp URL",
            )


def _check_yelp_links(config: Config) -> Iterator[Finding]:
    for path, value in _strings(msgspec.to_builtins(config), ()):
        if path not in _YELP_API_KEYS and is_yelp_url(value):
            yield (
                path,
                f"{json.dumps(value)} is a Yelp link; Yelp forbids asking customers for "
                "reviews, so Plaudit never sends one: remove it",
            )


def is_yelp_url(value: str) -> bool:
    """Return whether ``value`` is a URL on a Yelp host."""
    # The same test as plaudit.connectors.yelp.is_yelp_link, which config
    # does not import because it would load the HTTP stack.
    if "://" not in value:
        return False
    try:
        host = urlsplit(value.strip()).hostname or ""
    except ValueError:
        return False
    return bool(_YELP_HOST.search(host.lower().rstrip(".")))


def _strings(
    value: Any, path: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*path, index))
