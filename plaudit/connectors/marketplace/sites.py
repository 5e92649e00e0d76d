"""Per-site settings of the wedding marketplaces, and their date formats.

The WeddingWire family (WeddingWire, The Knot, Hitched, Bodas.net,
Mariages.net, Matrimonio.com, Casamentos, WeddingWire India) runs one
platform with one markup, so one parser serves all of them.  What differs is
the domain, the language of dates, the day/month order and the review window.
Zola, Bridebook and Easy Weddings have their own markup: their vendor pages
are read from the schema.org JSON-LD alone, and they have no listing parser.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, timedelta
from typing import Final, Literal, final

import msgspec

Family = Literal["weddingwire", "zola", "bridebook", "easyweddings"]
PageSource = Literal["markup", "json-ld"]

# Month names by language, January first; matching uses the first three
# letters after accents are removed, and accepts the longer forms too.
_MONTHS: Final[dict[str, tuple[str, ...]]] = {
    "en": (
        "january", "february", "march", "april", "may", "june",
        "july", "august", "september", "october", "november", "december",
    ),
    "es": (
        "enero", "febrero", "marzo", "abril", "mayo", "junio",
        "julio", "agosto", "septiembre", "octubre", "noviembre", "diciembre",
    ),
    "fr": (
        "janvier", "fevrier", "mars", "avril", "mai", "juin",
        "juillet", "aout", "septembre", "octobre", "novembre", "decembre",
    ),
    "it": (
        "gennaio", "febbraio", "marzo", "aprile", "maggio", "giugno",
        "luglio", "agosto", "settembre", "ottobre", "novembre", "dicembre",
    ),
    "pt": (
        "janeiro", "fevereiro", "marco", "abril", "maio", "junho",
        "julho", "agosto", "setembro", "outubro", "novembro", "dezembro",
    ),
}  # fmt: skip

# Reviews older than two years drop off the European sites of the family.
TWO_YEARS_DAYS: Final = 730


@final
class Site(msgspec.Struct, frozen=True, kw_only=True):
    """One marketplace site and how its pages and e-mails are read."""

    # The platform name used in config, metric labels and review records.
    name: str
    display_name: str
    family: Family
    domain: str
    # Language of month names on its pages and e-mails: a key of _MONTHS.
    language: str
    # True where 03/04/2024 means 3 April (everywhere but the United States).
    day_first: bool = True
    # Days after which the site stops showing a review; None when it keeps all.
    review_window_days: int | None = None
    # Where a couple writes a review, with {storefront_url} replaced by the
    # vendor's configured storefront page.
    review_link_template: str = "{storefront_url}#reviews"
    # The vendor dashboard page where replies are written.
    dashboard_url: str = ""
    # The source of a vendor page's data.  "markup" tries the JSON-LD first and
    # falls back to the family's selectors, and "json-ld" reads the JSON-LD only.
    page_source: PageSource = "markup"
    # True where listing (search result) pages can be read as vendor cards.
    listing_pages: bool = True


def _family_site(
    name: str,
    display_name: str,
    domain: str,
    language: str,
    *,
    day_first: bool = True,
    window: int | None = None,
) -> Site:
    return Site(
        name=name,
        display_name=display_name,
        family="weddingwire",
        domain=domain,
        language=language,
        day_first=day_first,
        review_window_days=window,
        dashboard_url=f"https://{domain}/emp-AdminOpiniones.php",
    )


def _json_ld_site(name: Family, display_name: str, domain: str, *, day_first: bool = True) -> Site:
    # NOTE: no saved vendor page of these sites was available, so their JSON-LD
    # is read by the schema.org vocabulary alone.  The dashboard URL is the
    # site's home page until the vendor area's address is confirmed.
    return Site(
        name=name,
        display_name=display_name,
        family=name,
        domain=domain,
        language="en",
        day_first=day_first,
        dashboard_url=f"https://{domain}/",
        page_source="json-ld",
        listing_pages=False,
    )


def page_support(site: Site) -> str:
    """Describe which pages of ``site`` Plaudit reads, for error messages."""
    if site.page_source == "markup":
        return f"{site.display_name} listing and vendor pages are read from JSON-LD or markup"

    return (
        f"{site.display_name} vendor pages are read from their schema.org JSON-LD only "
        "(an object such as a LocalBusiness with aggregateRating and review); listing pages "
        "are not read, and mailbox and import modes need no page"
    )


# NOTE: review links point at the storefront's reviews section.  The family's
# dedicated "write a review" form takes a vendor id that only the vendor
# dashboard shows, so a configured review_link overrides this default.
SITES: Final[dict[str, Site]] = {
    site.name: site
    for site in (
        _family_site("weddingwire", "WeddingWire", "www.weddingwire.com", "en", day_first=False),
        _family_site("theknot", "The Knot", "www.theknot.com", "en", day_first=False),
        _family_site("hitched", "Hitched", "www.hitched.co.uk", "en", window=TWO_YEARS_DAYS),
        _family_site("bodas", "Bodas.net", "www.bodas.net", "es", window=TWO_YEARS_DAYS),
        _family_site("mariages", "Mariages.net", "www.mariages.net", "fr", window=TWO_YEARS_DAYS),
        _family_site(
            "matrimonio", "Matrimonio.com", "www.matrimonio.com", "it", window=TWO_YEARS_DAYS
        ),
        _family_site("casamentos", "Casamentos", "www.casamentos.pt", "pt", window=TWO_YEARS_DAYS),
        _family_site("weddingwire_india", "WeddingWire India", "www.weddingwire.in", "en"),
        _json_ld_site("zola", "Zola", "www.zola.com", day_first=False),
        _json_ld_site("bridebook", "Bridebook", "bridebook.com"),
        _json_ld_site("easyweddings", "Easy Weddings", "www.easyweddings.com.au"),
    )
}  # fmt: skip


def get_site(name: str) -> Site:
    """Return the site called ``name``; raise ValueError listing the known names otherwise."""
    site = SITES.get(name)
    if site is None:
        known = ", ".join(sorted(SITES))
        raise ValueError(f"unknown marketplace {name!r}; expected one of: {known}")

    return site


def site_for_host(host: str) -> Site | None:
    """Return the site whose domain is ``host`` or a parent of it, or None."""
    host = host.lower().rstrip(".")
    for site in SITES.values():
        bare = site.domain.removeprefix("www.")
        if host == bare or host.endswith("." + bare):
            return site

    return None


def review_link(site: Site, storefront_url: str) -> str:
    """Return the URL a couple follows to write a review of the vendor at ``storefront_url``."""
    return site.review_link_template.format(storefront_url=storefront_url)


def in_review_window(site: Site, created: date, *, today: date) -> bool:
    """Tell whether the site still shows a review written on ``created``.

    A review outside the window vanished from the page because of its age,
    which is not a deletion.
    """
    if site.review_window_days is None:
        return True

    return today - created <= timedelta(days=site.review_window_days)


_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[T ][\d:.]+(?:Z|[+-]\d{2}:?\d{2})?)?")
_NUMERIC = re.compile(r"\b(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})\b")
_YEAR = re.compile(r"\b(\d{4})\b")
_DAY = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th|er|º|°)?\b")
_WORD = re.compile(r"[a-z]+")


def parse_site_date(site: Site, text: str) -> date:
    """Parse a date as the site writes it: ISO, numeric, or with a month name.

    Accepts "2024-03-12", "12/03/2024" (month first on US sites), "12 March
    2024", "March 12th, 2024", "12 de marzo de 2024", "12 févr. 2024".  Raises
    ValueError naming the text and the site's language when nothing matches.
    """
    plain = _strip_accents(text).casefold().strip()
    iso = _ISO.search(plain)
    if iso:
        return _make_date(text, int(iso[1]), int(iso[2]), int(iso[3]))

    numeric = _NUMERIC.search(plain)
    if numeric:
        first, second, year = int(numeric[1]), int(numeric[2]), int(numeric[3])
        day, month = (first, second) if site.day_first else (second, first)
        return _make_date(text, year, month, day)

    month_number = _find_month(site.language, plain)
    year_match = _YEAR.search(plain)
    day_match = _DAY.search(_YEAR.sub(" ", plain))
    if month_number is None or year_match is None or day_match is None:
        raise ValueError(
            f"invalid {site.display_name} date {text!r}: expected a day, a month name in "
            f"language {site.language!r} and a year, or YYYY-MM-DD"
        )

    return _make_date(text, int(year_match[1]), month_number, int(day_match[1]))


def _find_month(language: str, plain: str) -> int | None:
    names = _MONTHS.get(language, _MONTHS["en"])
    for word in _WORD.findall(plain):
        if len(word) < 3:
            continue
        for index, name in enumerate(names):
            if name.startswith(word) or (word.startswith(name[:3]) and name.startswith(word[:4])):
                return index + 1

    return None


def _make_date(text: str, year: int, month: int, day: int) -> date:
    try:
        return date(year, month, day)
    except ValueError as error:
        raise ValueError(f"invalid date {text!r}: {error}") from error


def date_to_timestamp(value: date) -> datetime:
    """Return midnight UTC of ``value``: the sites give dates without a time."""
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char))
