"""``plaudit ctl review match`` and ``review links``: the operator's side.

``review match`` lists candidate matches, highest confidence first;
``--confirm ID`` and ``--reject ID`` decide one, and ``--rescan`` scores
every review against every couple again before listing.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, Final

from plaudit.reviews import list_ctl, reply_ctl

COMMANDS: Final = ("review",)
STATES: Final = ("candidate", "confirmed", "rejected")
# The text listing shows this many reasons per match; --json has all.
SHOWN_REASONS: Final = 3


def add_parsers(commands: Any) -> None:
    """Add ``review`` to ``plaudit ctl``'s subparsers."""
    parser = commands.add_parser(
        "review",
        help="list reviews, reply to them, match them to couples and list a couple's reviews",
    )
    actions = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
    list_ctl.add_list_parser(actions)
    match = actions.add_parser("match", help="list, confirm or reject review-to-couple matches")
    decision = match.add_mutually_exclusive_group()
    decision.add_argument("--confirm", type=int, metavar="ID", help="confirm the match ID")
    decision.add_argument("--reject", type=int, metavar="ID", help="reject the match ID")
    decision.add_argument(
        "--rescan", action="store_true", help="score every review against every couple again"
    )
    match.add_argument(
        "--state", choices=STATES, default="candidate", help="list matches in this state"
    )
    match.add_argument("--couple", type=int, metavar="ID", help="only matches of this couple")
    match.add_argument(
        "--limit", type=int, default=50, metavar="N", help="list at most N matches (default 50)"
    )
    links = actions.add_parser("links", help="each couple's confirmed reviews, by platform")
    links.add_argument("--couple", type=int, metavar="ID", help="only this couple")
    reply_ctl.add_reply_parser(actions)


def request_args(options: argparse.Namespace) -> dict[str, Any]:
    """Build the request's ``args`` from the parsed options."""
    if options.subcommand == "reply":
        return reply_ctl.request_args(options)
    if options.subcommand == "list":
        return list_ctl.request_args(options)
    if options.subcommand == "links":
        couple = {} if options.couple is None else {"couple": options.couple}
        return {"subcommand": "links", **couple}
    args: dict[str, Any] = {"subcommand": "match", "state": options.state, "limit": options.limit}
    if options.couple is not None:
        args["couple"] = options.couple
    if options.confirm is not None:
        return {"subcommand": "match", "action": "confirm", "match": options.confirm}
    if options.reject is not None:
        return {"subcommand": "match", "action": "reject", "match": options.reject}
    args["action"] = "rescan" if options.rescan else "list"
    return args


def plain(value: Any) -> str:
    """Return ``value`` as text with control characters shown as escapes.

    Review ids and names come from platforms and imports, and an escape
    sequence in them must not reach the operator's terminal.
    """
    text = str(value)
    if text.isprintable():
        return text
    return text.encode("unicode_escape").decode("ascii")


def renderers() -> dict[str, Callable[[dict[str, Any]], str]]:
    return {"review": render_review}


def render_review(result: dict[str, Any]) -> str:
    """Render a match listing, a decision or the review groups as text."""
    if result.get("subcommand") == "reply":
        return reply_ctl.render_reply(result)
    if result.get("subcommand") == "list":
        return list_ctl.render_list(result)
    if result.get("subcommand") == "links":
        return _render_links(result.get("groups") or [])
    match = result.get("match")
    if isinstance(match, dict):
        return f"match {match.get('id')} is now {match.get('state')}\n" + _render_match(match)
    lines = []
    refreshed = result.get("refreshed")
    if isinstance(refreshed, dict):
        lines.append(
            f"rescanned {refreshed.get('reviews_scored')} reviews against "
            f"{refreshed.get('couples')} couples: {refreshed.get('confirmed')} confirmed"
        )
    matches = result.get("matches") or []
    if not matches:
        lines.append("no matches in this state")
    text = "\n".join(lines) + "\n" if lines else ""
    return text + "".join(_render_match(item) for item in matches if isinstance(item, dict))


def _render_match(match: dict[str, Any]) -> str:
    line = (
        f"#{match.get('id')}  {plain(match.get('platform'))} {plain(match.get('review_id'))}  "
        f"couple {match.get('couple_id')}  confidence {match.get('confidence')}  "
        f"{match.get('method')}  {match.get('state')}"
    )
    if match.get("decided_by"):
        line += f" by {match.get('decided_by')}"
    reasons = [f"    {plain(reason)}" for reason in (match.get("reasons") or [])[:SHOWN_REASONS]]
    return "\n".join([line, *reasons]) + "\n"


def _render_links(groups: list[Any]) -> str:
    if not groups:
        return "no couple has a confirmed review yet\n"
    lines = []
    for group in groups:
        if not isinstance(group, dict):
            continue
        names = plain(" & ".join(group.get("names") or []))
        lines.append(f"couple {group.get('couple_id')} ({names})")
        for review in group.get("reviews") or []:
            rating = review.get("stars") or review.get("recommendation") or "-"
            deleted = " (deleted on the platform)" if review.get("deleted_at") else ""
            lines.append(
                f"  {plain(review.get('platform'))} {plain(review.get('review_id'))}  {rating}  "
                f"{review.get('created_at')}{deleted}"
            )
    return "\n".join(lines) + "\n"
