"""``plaudit ctl alerts [--open]``: operator alerts, both sides of the control socket."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import msgspec

from plaudit.alerts import list_alerts
from plaudit.daemon.control_wire import InvalidArgument
from plaudit.errors import ControlError

if TYPE_CHECKING:
    from plaudit.daemon.app import Daemon

COMMANDS = ("alerts",)
MAX_LIMIT: Final = 1000
Command = Callable[[dict[str, Any]], Awaitable[Any]]


def alert_commands(daemon: Daemon) -> dict[str, Command]:
    """Return the ``alerts`` control command, keyed by name."""

    async def alerts(args: dict[str, Any]) -> dict[str, Any]:
        journal = daemon.journal
        if journal is None:
            raise ControlError("the journal is not open yet; try again in a moment")
        open_only = args.get("open", False)
        if not isinstance(open_only, bool):
            raise InvalidArgument(f"argument 'open' must be true or false, got {open_only!r}")
        limit = args.get("limit", 100)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise InvalidArgument(f"argument 'limit' must be 1 to {MAX_LIMIT}, got {limit!r}")
        found = await journal.transaction(
            lambda tx: list_alerts(tx, open_only=open_only, limit=limit)
        )
        return {"open_only": open_only, "alerts": msgspec.to_builtins(found)}

    return {"alerts": alerts}


def add_parsers(commands: Any) -> None:
    """Add the alerts subcommand to ``plaudit ctl``'s subparsers."""
    alerts = commands.add_parser("alerts", help="operator alerts, newest first")
    alerts.add_argument("--open", action="store_true", help="only alerts not yet resolved")
    alerts.add_argument(
        "--limit", type=int, help=f"maximum number of alerts, 1 to {MAX_LIMIT} (default 100)"
    )
    # SUPPRESS keeps `plaudit ctl --json alerts` working: the subcommand's
    # default would otherwise overwrite the global option.
    alerts.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print the JSON result"
    )


def request_args(options: argparse.Namespace) -> dict[str, Any]:
    """Build the request's ``args`` for the alerts command."""
    args: dict[str, Any] = {"open": options.open}
    if options.limit is not None:
        args["limit"] = options.limit
    return args


def renderers() -> dict[str, Callable[[dict[str, Any]], str]]:
    return {"alerts": render_alerts}


def render_alerts(result: dict[str, Any]) -> str:
    """Render alerts as a table, newest first."""
    from plaudit.daemon.ctl import _cell, _dict, _list, _time, format_table

    rows = [
        [
            _cell(alert.get("id")),
            _cell(alert.get("severity")),
            _cell(alert.get("source")),
            _cell(alert.get("key")),
            _time(alert.get("raised_at")),
            _cell(alert.get("repeats")),
            _time(alert.get("resolved_at")) if alert.get("resolved_at") else "open",
            _cell(alert.get("summary")),
        ]
        for alert in map(_dict, _list(result.get("alerts")))
    ]
    if not rows:
        return "no open alerts\n" if result.get("open_only") else "no alerts\n"
    headers = ["ID", "SEVERITY", "SOURCE", "KEY", "RAISED", "REPEATS", "RESOLVED", "SUMMARY"]
    return format_table(headers, rows)
