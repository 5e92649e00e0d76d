"""Vendor-written message templates, rendered with Liquid in a sandbox.

Liquid has no access to Python attributes or functions: a template sees only
the plain strings, lists and mappings passed to it.  Undefined variables are
errors (``StrictUndefined``), so a misspelt ``{{ couple_name }}`` fails at
``check-config`` and at render time instead of sending blank text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, final

import liquid
import msgspec
from liquid.exceptions import LiquidError

from plaudit.errors import PlauditError

# Variables every template may use; ``check-config`` renders with these.
SAMPLE_VARIABLES: Final[dict[str, Any]] = {
    "couple_names": "Ana & Ben",
    "first_names": ["Ana", "Ben"],
    "wedding_date": "2026-06-13",
    "venue": "The Old Mill",
    "vendor": "Sample Photography",
    "vendor_address": "1 Main Street, Springfield, IL 62701, USA",
    "review_links": [{"platform": "google", "url": "https://reviews.invalid/google"}],
    "unsubscribe_link": "https://unsubscribe.invalid/token",
    # Set by personalisation: an AI-drafted first sentence ("" without one) and
    # the review_links platform where the couple found the vendor ("" if unknown).
    "opening_line": "We loved photographing your day at The Old Mill.",
    "found_on": "google",
}
# Output limit: a review request is a few kilobytes.
MAX_OUTPUT_CHARS: Final = 100_000


class TemplateError(PlauditError):
    """A template that does not parse or refers to an unknown variable.

    ``part`` is "subject", "text" or "html" when the error is in one part,
    and ``line`` and ``column`` (from 1) locate it there when Liquid reports a
    position; an unclosed block is located at the end of its part.
    """

    def __init__(
        self, message: str, *, part: str = "", line: int | None = None, column: int | None = None
    ) -> None:
        super().__init__(message)
        self.part = part
        self.line = line
        self.column = column


@final
class RenderedMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A step's subject and bodies, rendered for one couple."""

    subject: str
    text: str
    html: str


class _Environment(liquid.Environment):
    # Bound loops and output so a template cannot run away.
    loop_iteration_limit = 10_000
    output_stream_limit = MAX_OUTPUT_CHARS


_TEXT = _Environment(autoescape=False, undefined=liquid.StrictUndefined)
_HTML = _Environment(autoescape=True, undefined=liquid.StrictUndefined)


@final
class MessageTemplate:
    """One campaign step's subject, text and optional HTML templates, parsed once."""

    __slots__ = ("_html", "_subject", "_text", "name")

    def __init__(self, name: str, *, subject: str, text: str, html: str = "") -> None:
        self.name = name
        self._subject = _parse(_TEXT, name, "subject", subject)
        self._text = _parse(_TEXT, name, "text", text)
        self._html = _parse(_HTML, name, "html", html) if html else None

    def __repr__(self) -> str:
        return f"<MessageTemplate {self.name} html={self._html is not None}>"

    def render(self, variables: Mapping[str, Any]) -> RenderedMessage:
        """Render all parts; raises TemplateError naming the part and the problem."""
        subject = _render(self._subject, self.name, "subject", variables)
        text = _render(self._text, self.name, "text", variables)
        html = "" if self._html is None else _render(self._html, self.name, "html", variables)
        # Headers may not contain line breaks.
        subject = " ".join(subject.split())
        if not subject or not text.strip():
            raise TemplateError(
                f"template {self.name!r} rendered an empty subject or text; "
                "write some text outside of tags"
            )
        return RenderedMessage(subject=subject, text=text, html=html)

    def check(self) -> None:
        """Render with :data:`SAMPLE_VARIABLES`, raising TemplateError on any problem."""
        self.render(SAMPLE_VARIABLES)


def _parse(env: liquid.Environment, name: str, part: str, source: str) -> liquid.BoundTemplate:
    try:
        return env.from_string(source)
    except LiquidError as error:
        line, column = _position(error, source)
        where = f"{part} line {line}" if line is not None else part
        raise TemplateError(
            f"template {name!r} {where}: {error}; correct the template",
            part=part,
            line=line,
            column=column,
        ) from error


def _render(
    template: liquid.BoundTemplate, name: str, part: str, variables: Mapping[str, Any]
) -> str:
    try:
        return template.render(**variables)
    except LiquidError as error:
        known = ", ".join(sorted(SAMPLE_VARIABLES))
        line, column = _position(error, "")
        where = f"{part} line {line}" if line is not None else part
        raise TemplateError(
            f"template {name!r} {where}: {error}; the variables are {known}",
            part=part,
            line=line,
            column=column,
        ) from error


def _position(error: LiquidError, source: str) -> tuple[int | None, int | None]:
    """Return the line and column (from 1) of ``error`` in its template, where known."""
    token = error.token
    if token is None:
        return None, None
    # Liquid leaves the source out of errors found at the end of a template.
    text = token.source or source
    if not text:
        return None, None
    index = token.start_index if 0 <= token.start_index <= len(text) else len(text)
    before = text[:index]
    return before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1
