"""``plaudit ctl webhooks | deliveries | replay``: the operator's side of the webhook commands."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime
from typing import Any

COMMANDS = ("webhooks", "deliveries", "replay")
DELIVERY_STATES = ("delivered", "retry", "dead", "disabled", "skipped")


def add_parsers(commands: Any) -> None:
    """Add the webhook subcommands to ``plaudit ctl``'s subparsers."""
    webhooks = commands.add_parser(
        "webhooks", help="webhook endpoints: state, breaker and delivery backlog"
    )
    webhooks.add_argument(
        "--enable", metavar="ENDPOINT", help="clear the disabled state of this endpoint first"
    )
    deliveries = commands.add_parser("deliveries", help="webhook delivery attempts, newest first")
    deliveries.add_argument("--endpoint", help="only attempts to this endpoint")
    deliveries.add_argument(
        "--state", choices=DELIVERY_STATES, help="only attempts with this outcome"
    )
    deliveries.add_argument(
        "--limit", type=int, help="maximum number of attempts (the daemon's default is 50)"
    )
    replay = commands.add_parser(
        "replay",
        help="send failed or dead webhook deliveries again: one by id, "
        "or an endpoint's since a time",
    )
    replay.add_argument("delivery", nargs="?", type=int, metavar="DELIVERY_ID")
    replay.add_argument("--endpoint", help="replay every failed or dead delivery of this endpoint")
    replay.add_argument(
        "--since",
        type=_iso_time,
        metavar="ISO_TIME",
        help="with --endpoint: deliveries created at or after this time, such as "
        "2026-01-31T08:00:00Z",
    )


def request_args(options: argparse.Namespace) -> dict[str, Any]:
    """Build the request's ``args`` for a webhook command."""
    if options.command == "webhooks":
        return {} if options.enable is None else {"enable": options.enable}
    if options.command == "deliveries":
        fields = {"endpoint": options.endpoint, "state": options.state, "limit": options.limit}
        return {key: value for key, value in fields.items() if value is not None}
    if options.delivery is not None:
        return {"job": options.delivery}
    return {"endpoint": options.endpoint, "since": options.since}


def renderers() -> dict[str, Callable[[dict[str, Any]], str]]:
    return {"webhooks": render_webhooks, "deliveries": render_deliveries, "replay": render_replay}


def render_webhooks(result: dict[str, Any]) -> str:
    from plaudit.daemon.ctl import _cell, _dict, _list, _time, format_table

    rows = []
    for endpoint in map(_dict, _list(result.get("endpoints"))):
        breaker = _dict(endpoint.get("breaker"))
        backlog = _dict(endpoint.get("backlog"))
        rows.append(
            [
                _cell(endpoint.get("name")),
                _cell(endpoint.get("state")),
                _cell(breaker.get("state") or "closed"),
                " ".join(f"{state}={count}" for state, count in sorted(backlog.items())) or "-",
                _time(endpoint.get("last_success_at")),
                _time(endpoint.get("failing_since")),
                _cell(endpoint.get("disabled_reason")),
            ]
        )
    if not rows:
        return "no webhook endpoints\n"
    headers = ["ENDPOINT", "STATE", "BREAKER", "BACKLOG", "LAST SUCCESS", "FAILING SINCE"]
    return format_table([*headers, "DISABLED BECAUSE"], rows)


def render_deliveries(result: dict[str, Any]) -> str:
    from plaudit.daemon.ctl import _cell, _dict, _list, _time, format_table

    attempts = [_dict(row) for row in _list(result.get("attempts"))]
    if not attempts:
        return "no delivery attempts match\n"
    headers = ["DELIVERY", "ENDPOINT", "EVENT", "ATTEMPT", "STATUS", "MS", "OUTCOME", "AT"]
    rows = [
        [
            _cell(row.get("job_id")),
            _cell(row.get("endpoint")),
            _cell(row.get("event_key")),
            _cell(row.get("attempt")),
            _cell(row.get("status_code")),
            _cell(row.get("latency_ms")),
            _cell(row.get("outcome")),
            _time(row.get("attempted_at")),
            _cell(row.get("error")),
        ]
        for row in attempts
    ]
    return format_table([*headers, "ERROR"], rows)


def render_replay(result: dict[str, Any]) -> str:
    from plaudit.daemon.ctl import _cell, _dict, _list

    jobs = [_dict(job) for job in _list(result.get("replayed"))]
    if not jobs:
        return "no failed or dead deliveries match\n"
    lines = [f"delivery {_cell(job.get('id'))} ({_cell(job.get('key'))}) is ready" for job in jobs]
    return "\n".join(lines) + "\n"


def _iso_time(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid time {text!r}; use ISO 8601 such as 2026-01-31T08:00:00Z"
        ) from None
    if moment.tzinfo is None:
        # A time without an offset is the operator's local time.
        moment = moment.astimezone()
    return moment.timestamp()
