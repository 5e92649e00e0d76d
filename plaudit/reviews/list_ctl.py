"""``plaudit ctl review list``: the operator's side.

Prints one line per review with the ``PLATFORM:ID`` that ``review reply``
takes.  The text output trims authors and review texts, and ``--json`` has
them whole.
"""

from __future__ import annotations

import argparse
from typing import Any, Final

# Characters of review text and author name shown per line.
TEXT_WIDTH: Final = 50
AUTHOR_WIDTH: Final = 24


def add_list_parser(actions: Any) -> None:
    """Add ``list`` to the ``review`` subcommands."""
    parser = actions.add_parser(
        "list", help="list stored reviews, most recently updated first, with their PLATFORM:ID"
    )
    parser.add_argument("--platform", help="only reviews of this platform, such as google")
    parser.add_argument("--profile", help="only reviews of this profile id")
    parser.add_argument(
        "--limit", type=int, metavar="N", help="list at most N reviews (default 20, at most 1000)"
    )
    parser.add_argument(
        "--unreplied", action="store_true", help="only reviews without a vendor reply"
    )


def request_args(options: argparse.Namespace) -> dict[str, Any]:
    """Build the request's ``args`` from the parsed options."""
    args: dict[str, Any] = {"subcommand": "list", "unreplied": options.unreplied}
    for name in ("platform", "profile", "limit"):
        value = getattr(options, name)
        if value is not None:
            args[name] = value
    return args


def render_list(result: dict[str, Any]) -> str:
    """Render the listing as a table, with a line saying how many more reviews match."""
    from plaudit.daemon.ctl import _dict, _list, format_table

    reviews = [_dict(review) for review in _list(result.get("reviews"))]
    if not reviews:
        return "no reviews match\n"

    headers = ["REVIEW", "STARS", "AUTHOR", "UPDATED", "REPLIED", "TEXT"]
    text = format_table(headers, [_review_row(review) for review in reviews])
    total = result.get("total")
    if isinstance(total, int) and total > len(reviews):
        text += f"{len(reviews)} of {total} reviews shown; raise --limit or filter to see more\n"
    return text


def _review_row(review: dict[str, Any]) -> list[str]:
    # The id is never trimmed: the operator copies it into ``review reply``.
    reference = _printable(f"{review.get('platform')}:{review.get('review_id')}")
    rating = review.get("stars")
    if rating is None:
        rating = review.get("recommendation")
    return [
        reference,
        "-" if rating is None else _printable(rating),
        _trimmed(review.get("author"), AUTHOR_WIDTH),
        _printable(review.get("updated_at") or "-"),
        "yes" if review.get("replied") else "no",
        _trimmed(review.get("text"), TEXT_WIDTH),
    ]


def _trimmed(value: Any, width: int) -> str:
    text = " ".join(str(value or "").split())
    if not text:
        return "-"
    if len(text) > width:
        text = text[: width - 3] + "..."
    return _printable(text)


def _printable(value: Any) -> str:
    # Ids, names and texts come from platforms and imports, so control
    # characters are shown as escapes instead of reaching the terminal.
    text = str(value)
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")
