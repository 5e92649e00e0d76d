"""The matching task of the daemon, and the ``review`` control command.

The task refreshes matches and the report gauges every
``REFRESH_INTERVAL_SECONDS``.  ``review`` serves ``plaudit ctl review
match`` (list candidates, confirm, reject, rescan) and ``review links``
(a couple's reviews across platforms).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, cast

import msgspec
import trio

from plaudit.config.model import Config
from plaudit.daemon.control_wire import InvalidArgument
from plaudit.errors import ControlError
from plaudit.journal import AsyncJournal, Tx
from plaudit.matching.facts import CampaignLinks
from plaudit.matching.links import review_groups
from plaudit.matching.store import (
    MATCH_STATES,
    MatchNotFoundError,
    MatchState,
    confirm_match,
    count_matches,
    list_matches,
    refresh_matches,
    reject_match,
)
from plaudit.messaging.campaigns import campaigns_stopping_on
from plaudit.reporting.figures import ReportContext, build_report
from plaudit.reporting.metrics import publish_report

if TYPE_CHECKING:
    from plaudit.daemon.app import Daemon
    from plaudit.daemon.supervisor import ChildContext, StartFunction

log = logging.getLogger(__name__)

Command = Callable[[dict[str, Any]], Awaitable[Any]]
# Matching and the report gauges lag new reviews by at most this long.
REFRESH_INTERVAL_SECONDS: Final = 60.0
MAX_LIMIT: Final = 1000
ACTIONS: Final = ("list", "confirm", "reject", "rescan")


def campaign_links(config: Config) -> dict[str, frozenset[str]]:
    """Return campaign name -> platforms whose review links its steps send."""
    links = frozenset(config.vendor.review_links) if config.vendor is not None else frozenset()
    return {
        campaign.name: frozenset().union(*(step.platforms or links for step in campaign.steps))
        for campaign in config.campaigns
    }


def report_context(config: Config) -> ReportContext:
    """Return the report context of the configuration: vendor name and review links."""
    vendor = config.vendor
    return ReportContext(
        vendor=vendor.name if vendor is not None else "",
        review_links=frozenset(vendor.review_links) if vendor is not None else frozenset(),
        review_link_urls=dict(vendor.review_links) if vendor is not None else {},
        campaign_links=campaign_links(config),
    )


def matching_children(
    journal: AsyncJournal, settings: Callable[[], Config]
) -> list[tuple[str, StartFunction]]:
    """Return the matching task to supervise; ``settings`` returns the current config."""

    async def start(ctx: ChildContext) -> None:
        ctx.started()
        while not ctx.stop_requested.is_set():
            await refresh_once(journal, settings())
            with trio.move_on_after(REFRESH_INTERVAL_SECONDS):
                await ctx.stop_requested.wait()

    return [("matching", start)]


async def refresh_once(journal: AsyncJournal, config: Config) -> None:
    """Refresh matches, then the report gauges, in one transaction each."""
    links = campaign_links(config)
    stops = campaigns_stopping_on(config, "review")
    outcome = await journal.transaction(
        lambda tx: refresh_matches(tx, campaign_links=links, stop_campaigns=stops)
    )
    if outcome.reviews_scored:
        log.info(
            "matching.refreshed",
            extra={
                "reviews": outcome.reviews_scored,
                "candidates": outcome.candidates,
                "confirmed": outcome.confirmed,
            },
        )
    context = report_context(config)
    # Wall-clock time: the report's windows are calendar days.
    now = time.time()
    report, matches = await journal.transaction(
        lambda tx: (
            build_report(tx, journal=str(tx.path), now=now, context=context),
            count_matches(tx),
        )
    )
    publish_report(report, matches=matches)


def matching_commands(daemon: Daemon) -> dict[str, Command]:
    """Return the ``review`` control command, keyed by name."""

    async def review(args: dict[str, Any]) -> dict[str, Any]:
        journal = daemon.journal
        if journal is None:
            raise ControlError("the journal is not open yet; try again in a moment")
        subcommand = args.get("subcommand")
        if subcommand == "links":
            couple = _optional_int(args, "couple")
            groups = await journal.transaction(lambda tx: review_groups(tx, couple_id=couple))
            return {"subcommand": "links", "groups": msgspec.to_builtins(groups)}
        if subcommand != "match":
            raise InvalidArgument(
                f"unknown review subcommand {subcommand!r}; use 'list', 'reply', 'match' or 'links'"
            )
        links = campaign_links(daemon.config)
        stops = campaigns_stopping_on(daemon.config, "review")
        return await _match(journal, args, links, stops)

    return {"review": review}


async def _match(
    journal: AsyncJournal, args: dict[str, Any], links: CampaignLinks, stops: frozenset[str]
) -> dict[str, Any]:
    action = args.get("action", "list")
    if action not in ACTIONS:
        raise InvalidArgument(f"unknown match action {action!r}; use one of {', '.join(ACTIONS)}")
    if action in ("confirm", "reject"):
        match_id = _required_int(args, "match")
        try:
            if action == "confirm":
                match = await journal.transaction(
                    lambda tx: confirm_match(tx, match_id, stop_campaigns=stops)
                )
            else:
                match = await journal.transaction(lambda tx: reject_match(tx, match_id))
        except MatchNotFoundError as error:
            raise InvalidArgument(str(error)) from error
        return {"subcommand": "match", "action": action, "match": msgspec.to_builtins(match)}

    refreshed = None
    if action == "rescan":
        outcome = await journal.transaction(
            lambda tx: refresh_matches(tx, campaign_links=links, full=True, stop_campaigns=stops)
        )
        refreshed = msgspec.to_builtins(outcome)
    state = _state(args)
    limit = _optional_int(args, "limit") or 50
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgument(f"argument 'limit' must be 1 to {MAX_LIMIT}, got {limit}")

    def listing(tx: Tx) -> list[Any]:
        return list_matches(tx, state=state, couple_id=_optional_int(args, "couple"), limit=limit)

    matches = await journal.transaction(listing)
    return {
        "subcommand": "match",
        "action": action,
        "refreshed": refreshed,
        "matches": msgspec.to_builtins(matches),
    }


def _state(args: dict[str, Any]) -> MatchState | None:
    state = args.get("state")
    if state is None:
        return None
    if state not in MATCH_STATES:
        raise InvalidArgument(
            f"unknown match state {state!r}; use one of {', '.join(MATCH_STATES)}"
        )
    return cast(MatchState, state)


def _optional_int(args: dict[str, Any], name: str) -> int | None:
    value = args.get(name)
    if value is None:
        return None
    return _required_int(args, name)


def _required_int(args: dict[str, Any], name: str) -> int:
    value = args.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > 2**63 - 1:
        raise InvalidArgument(f"argument {name!r} must be a non-negative integer, got {value!r}")
    return value
