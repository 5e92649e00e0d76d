"""The daemon's side of ``plaudit ctl request ...`` and ``plaudit ctl template preview``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from plaudit.daemon.control_wire import InvalidArgument
from plaudit.errors import ControlError
from plaudit.journal import AsyncJournal, Tx
from plaudit.messaging.couples import Couple, load_couple
from plaudit.messaging.preview import preview_step
from plaudit.messaging.requests import (
    REQUEST_STATES,
    NewCouple,
    RequestError,
    add_request,
    find_campaign,
    list_requests,
    show_request,
    validate_couple,
)

if TYPE_CHECKING:
    from plaudit.daemon.app import Daemon

Command = Callable[[dict[str, Any]], Awaitable[Any]]
# SQLite stores integers in 64 bits; larger ids cannot exist.
MAX_ID: Final = 2**63 - 1
MAX_LIST: Final = 1000


def request_commands(daemon: Daemon) -> dict[str, Command]:
    """Return the ``request`` and ``template`` control commands, keyed by name."""

    def journal() -> AsyncJournal:
        if daemon.journal is None:
            raise ControlError("the journal is not open yet; try again in a moment")
        return daemon.journal

    async def request(args: dict[str, Any]) -> dict[str, Any]:
        action = args.get("action")
        try:
            if action == "add":
                result = await _add(daemon, journal(), args)
            elif action == "list":
                result = await _list(journal(), args)
            elif action == "show":
                request_id = _id_arg(args, "request")
                result = await journal().transaction(lambda tx: show_request(tx, request_id))
            else:
                raise InvalidArgument(
                    f"argument 'action' must be add, list or show, got {action!r}"
                )
        except RequestError as error:
            raise InvalidArgument(str(error)) from error
        return result

    async def template(args: dict[str, Any]) -> dict[str, Any]:
        if args.get("action") != "preview":
            raise InvalidArgument(f"argument 'action' must be preview, got {args.get('action')!r}")
        campaign = _optional_str(args, "campaign")
        step = _id_arg(args, "step")
        couple_id = args.get("couple")
        couple: Couple | None = None
        if couple_id is not None:
            wanted = _id_arg(args, "couple")
            couple = await journal().transaction(lambda tx: load_couple(tx, wanted))
            if couple is None:
                raise InvalidArgument(
                    f"no couple with id {wanted}; see the ids in plaudit ctl request list"
                )
        try:
            return preview_step(daemon.config, campaign, step, couple)
        except RequestError as error:
            raise InvalidArgument(str(error)) from error

    return {"request": request, "template": template}


async def _add(daemon: Daemon, journal: AsyncJournal, args: dict[str, Any]) -> dict[str, Any]:
    config = daemon.config
    campaign = find_campaign(config, _optional_str(args, "campaign"))
    couple_id = _id_arg(args, "couple") if args.get("couple") is not None else None
    couple = None if couple_id is not None else validate_couple(_new_couple(args))

    def add(tx: Tx) -> dict[str, Any]:
        return add_request(tx, config, campaign, couple_id=couple_id, couple=couple)

    result = await journal.transaction(add)
    notifier = daemon.actors.get("notifier")
    if notifier is not None:
        notifier.wake()
    return result


async def _list(journal: AsyncJournal, args: dict[str, Any]) -> dict[str, Any]:
    state = _optional_str(args, "state")
    if state is not None and state not in REQUEST_STATES:
        raise InvalidArgument(
            f"unknown request state {state!r}; use one of {', '.join(REQUEST_STATES)}"
        )
    campaign = _optional_str(args, "campaign")
    couple_id = _id_arg(args, "couple") if args.get("couple") is not None else None
    limit = _id_arg(args, "limit") if args.get("limit") is not None else 50
    if not 1 <= limit <= MAX_LIST:
        raise InvalidArgument(f"limit must be between 1 and {MAX_LIST}, got {limit}")
    requests = await journal.transaction(
        lambda tx: list_requests(
            tx, state=state, campaign=campaign, couple_id=couple_id, limit=limit
        )
    )
    return {"action": "list", "requests": requests}


def _new_couple(args: dict[str, Any]) -> NewCouple:
    names = _str_list(args, "names")
    emails = _str_list(args, "emails")
    wedding_date = _optional_str(args, "wedding_date")
    missing = [
        option
        for option, value in (
            ("--name", names),
            ("--email", emails),
            ("--wedding-date", wedding_date),
        )
        if not value
    ]
    if missing:
        raise InvalidArgument(
            f"a new couple needs {', '.join(missing)}; add them, or name a stored couple "
            "with --couple ID"
        )
    return NewCouple(
        names=names,
        emails=emails,
        wedding_date=str(wedding_date),
        phone=_optional_str(args, "phone") or "",
        venue=_optional_str(args, "venue") or "",
        timezone=_optional_str(args, "timezone") or "",
        consent_email=_bool_arg(args, "consent_email", default=True),
        consent_sms=_bool_arg(args, "consent_sms", default=False),
    )


def _id_arg(args: dict[str, Any], name: str) -> int:
    value = args.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        raise InvalidArgument(f"argument {name!r} must be a positive integer, got {value!r}")
    return value


def _optional_str(args: dict[str, Any], name: str) -> str | None:
    value = args.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(f"argument {name!r} must be a non-empty string, got {value!r}")
    return value


def _str_list(args: dict[str, Any], name: str) -> list[str]:
    value = args.get(name) or []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidArgument(f"argument {name!r} must be a list of strings, got {value!r}")
    return [item for item in value if item.strip()]


def _bool_arg(args: dict[str, Any], name: str, *, default: bool) -> bool:
    value = args.get(name, default)
    if not isinstance(value, bool):
        raise InvalidArgument(f"argument {name!r} must be true or false, got {value!r}")
    return value
