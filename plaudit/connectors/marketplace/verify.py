"""Profile verification: does a configured storefront exist and name the vendor?

The check is pure: the caller fetches the page (following redirects) and
hands over the HTML and the URL it ended on.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from typing import Final, Literal, final
from urllib.parse import urlsplit

import msgspec

from plaudit.connectors.marketplace.errors import (
    BlockedPageError,
    MarkupDriftError,
    NotAStorefrontError,
)
from plaudit.connectors.marketplace.models import VendorCard
from plaudit.connectors.marketplace.sites import Site, site_for_host
from plaudit.connectors.marketplace.storefront import parse_storefront

# Similarity (difflib ratio, 0 to 1) above which two normalised names are
# taken to be the same vendor: "The Willow Barn" and "Willow Barn Weddings"
# pass, "Willow Barn" and "Oak Barn" do not.
NAME_MATCH_RATIO: Final = 0.8

VerificationState = Literal["verified", "mismatch", "blocked", "not_a_storefront", "drift"]

_FILLER_WORDS: Final = frozenset({"the", "ltd", "llc", "limited", "inc"})


@final
class Verification(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of checking one configured storefront."""

    platform: str
    profile: str
    state: VerificationState
    vendor: VendorCard | None
    problems: list[str]


def normalize_name(name: str) -> str:
    """Fold a vendor name for comparison: case, accents, "&" as "and", punctuation, filler words."""
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(char for char in decomposed if not unicodedata.combining(char)).casefold()
    plain = plain.replace("&", " and ").replace("+", " and ")
    words = re.sub(r"[^\w\s]|_", " ", plain).split()
    return " ".join(word for word in words if word not in _FILLER_WORDS)


def names_match(expected: str, found: str) -> bool:
    """Tell whether two vendor names are the same after :func:`normalize_name`.

    One name containing the other counts ("Willow Barn" in "Willow Barn
    Weddings"), and so does a similarity of at least NAME_MATCH_RATIO.
    """
    left, right = normalize_name(expected), normalize_name(found)
    if not left or not right:
        return False

    if f" {left} " in f" {right} " or f" {right} " in f" {left} ":
        return True

    return difflib.SequenceMatcher(None, left, right).ratio() >= NAME_MATCH_RATIO


def verify_storefront(
    html: str,
    *,
    site: Site,
    profile: str,
    expected_name: str,
    final_url: str | None = None,
) -> Verification:
    """Check that a fetched storefront page belongs to the vendor and shows its rating.

    ``final_url`` is where redirects ended; a redirect to another site or to
    a listing page is a failed verification, not an error.
    """

    def outcome(
        state: VerificationState, problems: list[str], vendor: VendorCard | None = None
    ) -> Verification:
        return Verification(
            platform=site.name, profile=profile, state=state, vendor=vendor, problems=problems
        )

    if final_url is not None and site_for_host(urlsplit(final_url).hostname or "") is not site:
        return outcome(
            "not_a_storefront",
            [f"the storefront URL redirected to {final_url}, off {site.domain}; update the URL"],
        )

    try:
        page = parse_storefront(html, site=site, profile=profile)
    except BlockedPageError as error:
        return outcome("blocked", [str(error)])
    except NotAStorefrontError as error:
        return outcome("not_a_storefront", [str(error)])
    except MarkupDriftError as error:
        return outcome("drift", [str(error)])

    problems = _vendor_problems(page.vendor, expected_name)
    return outcome("mismatch" if problems else "verified", problems, page.vendor)


def _vendor_problems(vendor: VendorCard, expected_name: str) -> list[str]:
    problems = []
    if not names_match(expected_name, vendor.name):
        problems.append(
            f"the storefront names {vendor.name!r}, not the configured vendor "
            f"{expected_name!r}; check the storefront URL or the vendor name"
        )
    if vendor.rating is None or vendor.review_count == 0:
        problems.append(
            f"the storefront of {vendor.name!r} shows no rating or review count yet; "
            "verification completes after its first review"
        )
    return problems
