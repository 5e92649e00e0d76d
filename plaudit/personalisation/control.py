"""``plaudit ctl personalisation``: the daemon's side of lift, explain and profile."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec

from plaudit.daemon.control_wire import InvalidArgument
from plaudit.errors import ControlError
from plaudit.journal import AsyncJournal, Tx
from plaudit.personalisation.explain import explain_request
from plaudit.personalisation.lift import measure_lift
from plaudit.personalisation.profiles import MAX_NOTES_CHARS
from plaudit.personalisation.store import Profile, store_profile

if TYPE_CHECKING:
    from plaudit.daemon.app import Daemon

Command = Callable[[dict[str, Any]], Awaitable[Any]]


def personalisation_commands(daemon: Daemon) -> dict[str, Command]:
    """Return the ``personalisation`` control command, keyed by name."""

    async def personalisation(args: dict[str, Any]) -> dict[str, Any]:
        journal = daemon.journal
        if journal is None:
            raise ControlError("the journal is not open yet; try again in a moment")
        action = args.get("action")
        if action == "lift":
            return await _lift(daemon, journal, args)
        if action == "explain":
            return await _explain(journal, args)
        if action == "profile":
            return await _profile(daemon, journal, args)
        raise InvalidArgument(f"argument 'action' must be lift, explain or profile, got {action!r}")

    return {"personalisation": personalisation}


async def _lift(daemon: Daemon, journal: AsyncJournal, args: dict[str, Any]) -> dict[str, Any]:
    campaign = args.get("campaign")
    if campaign is not None and not isinstance(campaign, str):
        raise InvalidArgument(f"argument 'campaign' must be a name, got {campaign!r}")
    days = {entry.name: entry.personalisation.conversion_days for entry in daemon.config.campaigns}
    report = await journal.transaction(
        lambda tx: measure_lift(tx, campaign=campaign, conversion_days=days)
    )
    result: dict[str, Any] = msgspec.to_builtins(report)
    result["action"] = "lift"
    return result


async def _explain(journal: AsyncJournal, args: dict[str, Any]) -> dict[str, Any]:
    request_id = _positive_id(args, "request")
    explained = await journal.transaction(lambda tx: explain_request(tx, request_id))
    if explained is None:
        raise InvalidArgument(
            f"request {request_id} has no personalisation record yet: it is made when the "
            "request's step first runs; see plaudit ctl request show"
        )
    return {"action": "explain", **explained}


async def _profile(daemon: Daemon, journal: AsyncJournal, args: dict[str, Any]) -> dict[str, Any]:
    couple_id = _positive_id(args, "couple")
    found_on = args.get("found_on", "")
    notes = args.get("notes", "")
    if not isinstance(found_on, str) or not isinstance(notes, str):
        raise InvalidArgument("arguments 'found_on' and 'notes' must be strings")
    vendor = daemon.config.vendor
    links = sorted(vendor.review_links) if vendor is not None else []
    if found_on and found_on not in links:
        raise InvalidArgument(
            f"found_on {found_on!r} is not a [vendor] review_links platform; use one of "
            f"{', '.join(links) or '(none configured)'} or leave it empty"
        )
    if len(notes) > MAX_NOTES_CHARS:
        raise InvalidArgument(
            f"notes have {len(notes)} characters, more than {MAX_NOTES_CHARS}; shorten them"
        )

    profile = Profile(found_on=found_on, notes=notes.strip())

    def store(tx: Tx) -> bool:
        return store_profile(tx, couple_id, profile)

    if not await journal.transaction(store):
        raise InvalidArgument(f"no couple with id {couple_id}; see plaudit ctl request list")
    return {"action": "profile", "couple": couple_id, "found_on": found_on, "notes": notes}


def _positive_id(args: dict[str, Any], name: str) -> int:
    value = args.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(f"argument {name!r} must be a positive id, got {value!r}")
    return value
