"""``plaudit ctl deliverability``: the operator's view of rates, alerts and suppressions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

COMMANDS = ("deliverability",)


def add_parsers(commands: Any) -> None:
    """Add the deliverability subcommand to ``plaudit ctl``'s subparsers."""
    commands.add_parser(
        "deliverability",
        help="delivery, hard-bounce and complaint rates per provider and recipient domain, "
        "thresholds, active alerts and suppression counts",
    )


def renderers() -> dict[str, Callable[[dict[str, Any]], str]]:
    return {"deliverability": render_deliverability}


def render_deliverability(result: dict[str, Any]) -> str:
    from plaudit.daemon.ctl import _cell, _dict, _list, format_table

    thresholds = _dict(result.get("thresholds"))
    lines = [
        "thresholds: complaints alert {} critical {}, hard bounces alert {}, "
        "alerts from {} messages".format(
            _percent(thresholds.get("complaint_alert")),
            _percent(thresholds.get("complaint_critical")),
            _percent(thresholds.get("hard_bounce_alert")),
            _cell(thresholds.get("min_attempts")),
        ),
        "",
    ]
    rows = [
        [
            _cell(rate.get("provider")),
            _cell(rate.get("domain") or "*"),
            _window(rate.get("window_seconds")),
            _cell(rate.get("attempts")),
            _delivery(rate),
            _percent(rate.get("hard_bounce_rate")),
            _percent(rate.get("complaint_rate")),
            _cell(rate.get("level")),
        ]
        for rate in sorted(map(_dict, _list(result.get("rates"))), key=_scope)
    ]
    headers = ["PROVIDER", "DOMAIN", "WINDOW", "ATTEMPTS", "DELIVERED", "HARD", "COMPLAINTS"]
    if rows:
        lines.append(format_table([*headers, "LEVEL"], rows).rstrip("\n"))
    else:
        lines.append("no message events in any window")
    if any(_dict(rate).get("delivery_estimated") for rate in _list(result.get("rates"))):
        lines.append("~ estimated: no deliveries reported, so mail that did not bounce counts")

    alerts = [_dict(alert) for alert in _list(result.get("alerts"))]
    lines += ["", f"active alerts: {len(alerts)}"]
    for alert in alerts:
        reasons = "; ".join(str(reason) for reason in _list(alert.get("reasons")))
        scope = f"{_cell(alert.get('provider'))}/{_cell(alert.get('domain') or '*')}"
        window = _window(alert.get("window_seconds"))
        lines.append(f"  {_cell(alert.get('level'))} {scope} {window}: {reasons}")

    suppressions = _dict(result.get("suppressions"))
    counts = ", ".join(f"{reason} {count}" for reason, count in sorted(suppressions.items()))
    lines += ["", f"suppressed addresses: {counts or 'none'}"]
    return "\n".join(lines) + "\n"


def _scope(rate: dict[str, Any]) -> tuple[str, str, float]:
    window = rate.get("window_seconds")
    return (str(rate.get("provider")), str(rate.get("domain")), float(window or 0))


def _delivery(rate: dict[str, Any]) -> str:
    text = _percent(rate.get("delivery_rate"))
    return "~" + text if rate.get("delivery_estimated") and text != "-" else text


def _percent(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    return f"{value * 100:.2f}%"


def _window(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    days = value / 86400
    return f"{days:g}d" if days >= 1 else f"{value / 3600:g}h"
