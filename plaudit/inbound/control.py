"""``plaudit ctl inbound``: the inbox by provider and state, and SNS subscriptions to confirm.

An SNS SubscriptionConfirmation is stored but its SubscribeURL is not
followed by itself.  This command lists each one with its topic and URL; once
the operator has checked the topic, ``--confirm ID`` follows the URL (see
:mod:`plaudit.inbound.subscriptions` for the checks).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from plaudit.errors import ControlError
from plaudit.inbound.subscriptions import confirm
from plaudit.journal import Journal

if TYPE_CHECKING:
    from plaudit.daemon.app import Daemon

Command = Callable[[dict[str, Any]], Awaitable[Any]]

_COUNTS = """
SELECT provider, state, count(*) FROM inbound_events GROUP BY provider, state ORDER BY 1, 2
"""
_CONFIRMATIONS = """
SELECT id, provider_event_id, body, received_at FROM inbound_events
WHERE state = 'confirmation_required' ORDER BY id DESC LIMIT 50
"""


def inbound_commands(daemon: Daemon) -> dict[str, Command]:
    """Return the ``inbound`` control command, keyed by name."""

    async def inbound(args: dict[str, Any]) -> dict[str, Any]:
        journal = daemon.journal
        if journal is None:
            raise ControlError("the journal is not open yet; try again in a moment")
        target = args.get("confirm")
        if target is None:
            return await journal.read(report)
        if not isinstance(target, int) or isinstance(target, bool):
            raise ControlError(f"confirm must be an inbound event id, not {target!r}")
        inbound_config = daemon.config.inbound
        ses = inbound_config.ses if inbound_config is not None else None
        if ses is None:
            raise ControlError("[inbound.ses] is not configured, so there is nothing to confirm")
        return await confirm(journal, target, extra_hosts=list(ses.confirm_hosts), now=time.time())

    return {"inbound": inbound}


def report(journal: Journal) -> dict[str, Any]:
    """Count stored requests by provider and state; list subscriptions awaiting confirmation."""
    counts = [
        {"provider": provider, "state": state, "count": count}
        for provider, state, count in journal.query(_COUNTS)
    ]
    confirmations = []
    for inbound_id, message_id, body, received_at in journal.query(_CONFIRMATIONS):
        try:
            message = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            message = {}
        confirmations.append(
            {
                "id": inbound_id,
                "message_id": message_id,
                "received_at": received_at,
                "topic": message.get("TopicArn"),
                "subscribe_url": message.get("SubscribeURL"),
            }
        )
    return {"counts": counts, "confirmations": confirmations}


def add_parsers(commands: Any) -> None:
    """Add ``inbound`` to ``plaudit ctl``'s subparsers."""
    inbound = commands.add_parser(
        "inbound", help="inbound webhook events by provider and state; SNS subscriptions to confirm"
    )
    inbound.add_argument(
        "--confirm",
        type=int,
        metavar="ID",
        help="confirm the SNS subscription with this id (after checking its topic)",
    )


def request_args(options: Any) -> dict[str, Any]:
    """Build the ``inbound`` request's args."""
    return {} if options.confirm is None else {"confirm": options.confirm}


def render_inbound(result: dict[str, Any]) -> str:
    from plaudit.daemon.ctl import _cell, _dict, _list, _time, format_table

    if "subscription_arn" in result:
        return f"confirmed {result.get('topic')}: {result.get('subscription_arn')}\n"

    rows = [
        [_cell(row.get("provider")), _cell(row.get("state")), _cell(row.get("count"))]
        for row in map(_dict, _list(result.get("counts")))
    ]
    text = format_table(["PROVIDER", "STATE", "COUNT"], rows) if rows else "no inbound events\n"
    pending = list(map(_dict, _list(result.get("confirmations"))))
    if pending:
        text += "\nSNS subscriptions awaiting confirmation (check the topic, then open the URL):\n"
        for item in pending:
            text += (
                f"  {_time(item.get('received_at'))} {_cell(item.get('topic'))}\n"
                # In full: a truncated URL cannot be opened.
                f"    {item.get('subscribe_url') or '-'}\n"
            )
    return text
