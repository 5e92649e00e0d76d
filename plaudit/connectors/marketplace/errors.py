"""Errors raised while reading marketplace pages, e-mails and import files."""

from __future__ import annotations

from plaudit.errors import PlatformError


class MarkupDriftError(PlatformError):
    """A page no longer has the shape the parser expects.

    The message names the site, the profile and the selector or field that
    failed, so an operator can tell a changed page from a network problem.
    Retrying does not help until the parser is updated.
    """

    def __init__(self, *, site: str, profile: str, selector: str, problem: str) -> None:
        self.site = site
        self.profile = profile
        self.selector = selector
        super().__init__(
            f"{site} page of profile {profile!r} no longer matches: {problem} "
            f"(selector or field {selector!r}); the site changed its markup, so the "
            "marketplace parser needs an update",
            retryable=False,
        )


class BlockedPageError(PlatformError):
    """The site responded with a bot challenge or an access-denied page.

    This is a health state, never "zero reviews", because the page shows nothing of
    the profile.  A later, slower attempt may get through.
    """

    def __init__(self, *, site: str, profile: str, signal: str) -> None:
        self.site = site
        self.profile = profile
        self.signal = signal
        super().__init__(
            f"{site} served a bot challenge or block page for profile {profile!r} "
            f"(detected by {signal}); no reviews were read. Lower the fetch rate or "
            "switch the profile to mailbox or import ingestion",
            retryable=True,
        )


class NotAStorefrontError(PlatformError):
    """The configured storefront URL led to a listing or search page instead."""

    def __init__(self, *, site: str, profile: str, vendors: int) -> None:
        self.site = site
        self.profile = profile
        super().__init__(
            f"{site} profile {profile!r} resolves to a listing page with {vendors} vendors, "
            "not to one storefront; the vendor page probably moved, so set the storefront "
            "URL to the vendor's current page",
            retryable=False,
        )
