"""``plaudit ctl request add | list | show`` and ``plaudit ctl template preview``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from plaudit.messaging.requests import REQUEST_STATES

COMMANDS = ("request", "template")


def add_parsers(commands: Any) -> None:
    """Add the request and template subcommands to ``plaudit ctl``'s subparsers."""
    request = commands.add_parser("request", help="add, list and show review requests")
    actions = request.add_subparsers(dest="action", required=True, metavar="ACTION")

    add = actions.add_parser(
        "add",
        help="schedule a campaign for a new couple (validated like a CSV import) "
        "or for a stored one (--couple)",
    )
    add.add_argument("--couple", type=_positive_int, metavar="ID", help="a stored couple's id")
    add.add_argument(
        "--name", action="append", default=[], help="a partner's full name; repeat for each"
    )
    add.add_argument(
        "--email", action="append", default=[], help="an e-mail address; repeat for each"
    )
    add.add_argument("--phone", help="phone number with country code, such as +1 312 555 0100")
    add.add_argument("--wedding-date", help="wedding date, such as 2026-06-13")
    add.add_argument("--venue", help="the venue's name")
    add.add_argument("--timezone", help="the couple's IANA time zone (default: the vendor's)")
    add.add_argument(
        "--no-email-consent",
        action="store_true",
        help="the couple did not agree to e-mail; their e-mail steps are suppressed",
    )
    add.add_argument(
        "--sms-consent", action="store_true", help="the couple agreed to review requests by SMS"
    )
    add.add_argument(
        "--campaign", help="campaign name from the config (needed when there are several)"
    )

    listing = actions.add_parser("list", help="review requests, newest first")
    listing.add_argument("--state", choices=REQUEST_STATES, help="only requests in this state")
    listing.add_argument("--campaign", help="only requests of this campaign")
    listing.add_argument("--couple", type=_positive_int, metavar="ID", help="only this couple's")
    listing.add_argument(
        "--limit", type=_positive_int, help="maximum number of requests (default 50)"
    )

    show = actions.add_parser(
        "show", help="one request: its state, every step, times, messages and stop reason"
    )
    show.add_argument("request", type=_positive_int, metavar="REQUEST_ID")

    template = commands.add_parser("template", help="render campaign templates")
    template_actions = template.add_subparsers(dest="action", required=True, metavar="ACTION")
    preview = template_actions.add_parser(
        "preview", help="render one campaign step with a couple's values, or sample values"
    )
    preview.add_argument("--campaign", help="campaign name (needed when there are several)")
    preview.add_argument(
        "--step", type=_positive_int, required=True, metavar="N", help="step number, from 1"
    )
    preview.add_argument(
        "--couple", type=_positive_int, metavar="ID", help="a stored couple (default: a sample)"
    )


def request_args(options: argparse.Namespace) -> dict[str, Any]:
    """Build the request's ``args`` for a request or template command."""
    if options.command == "template":
        fields = {"campaign": options.campaign, "step": options.step, "couple": options.couple}
    elif options.action == "add":
        fields = {
            "couple": options.couple,
            "names": options.name or None,
            "emails": options.email or None,
            "phone": options.phone,
            "wedding_date": options.wedding_date,
            "venue": options.venue,
            "timezone": options.timezone,
            "campaign": options.campaign,
            "consent_email": not options.no_email_consent,
            "consent_sms": options.sms_consent,
        }
    elif options.action == "list":
        fields = {
            "state": options.state,
            "campaign": options.campaign,
            "couple": options.couple,
            "limit": options.limit,
        }
    else:
        fields = {"request": options.request}
    args = {key: value for key, value in fields.items() if value is not None}
    args["action"] = options.action
    return args


def renderers() -> dict[str, Callable[[dict[str, Any]], str]]:
    return {"request": render_request, "template": render_preview}


def render_request(result: dict[str, Any]) -> str:
    """Render the result of request add, list or show."""
    action = result.get("action")
    if action == "add":
        return _render_added(result)
    if action == "list":
        return _render_list(result)
    return _render_show(result)


def _render_added(result: dict[str, Any]) -> str:
    from plaudit.daemon.ctl import _cell, _time

    couple = "new couple" if result.get("couple_created") else "couple"
    return (
        f"request {_cell(result.get('request'))} for {couple} {_cell(result.get('couple'))} "
        f"in campaign {_cell(result.get('campaign'))}, "
        f"first step due {_time(result.get('scheduled_at'))}\n"
    )


def _render_list(result: dict[str, Any]) -> str:
    from plaudit.daemon.ctl import _cell, _dict, _list, _time, format_table

    rows = [
        [
            _cell(request.get("id")),
            _cell(request.get("couple_id")),
            _cell(" & ".join(str(name) for name in _list(request.get("names")))),
            _cell(request.get("campaign")),
            _cell(request.get("step")),
            _cell(request.get("channel")),
            _cell(request.get("state")),
            _time(request.get("scheduled_at")),
            _time(request.get("sent_at")),
            # The last column, so it is printed whole rather than cut to the cell width.
            _whole(_error(request)),
        ]
        for request in map(_dict, _list(result.get("requests")))
    ]
    if not rows:
        return "no requests match\n"
    headers = ["ID", "COUPLE", "NAMES", "CAMPAIGN", "STEP", "CHANNEL", "STATE", "SCHEDULED"]
    return format_table([*headers, "SENT", "LAST ERROR"], rows)


def _render_show(result: dict[str, Any]) -> str:
    from plaudit.daemon.ctl import _cell, _dict, _list, _time, format_table
    from plaudit.daemon.ctl_text import wrap_field

    request = _dict(result.get("request"))
    couple = _dict(result.get("couple"))
    names = " & ".join(str(name) for name in _list(couple.get("names")))
    emails = ", ".join(str(address) for address in _list(couple.get("emails")))
    lines = [
        f"request {_cell(request.get('id'))}: campaign {_cell(request.get('campaign'))} "
        f"step {_cell(request.get('step'))} ({_cell(request.get('channel'))}), "
        f"{_cell(request.get('state'))}{' (unconfirmed)' if request.get('unconfirmed') else ''}",
        f"couple {_cell(request.get('couple_id'))}: {names or '-'} <{emails or '-'}>, "
        f"wedding {_cell(couple.get('wedding_date'))}",
    ]
    if result.get("stop_reason"):
        lines.append(f"stop reason: {result.get('stop_reason')}")
    job = _dict(result.get("job"))
    if job:
        lines.append(
            f"job {_cell(job.get('id'))}: {_cell(job.get('state'))}, "
            f"{_cell(job.get('attempts'))} attempts, next run {_time(job.get('next_run_at'))}"
        )
    if request.get("send_error"):
        # The send job's error while it retries or after it died, such as an
        # SMTP server that refuses connections.  The table below cuts it short.
        lines += wrap_field("send error: ", request.get("send_error"))
    steps = [
        [
            _cell(step.get("step")),
            _cell(step.get("id")),
            _cell(step.get("channel")),
            _cell(step.get("state")) + (" (unconfirmed)" if step.get("unconfirmed") else ""),
            _time(step.get("scheduled_at")),
            _time(step.get("sent_at")),
            _cell(step.get("message_id")),
            _cell(_error(step)),
        ]
        for step in map(_dict, _list(result.get("steps")))
    ]
    headers = ["STEP", "REQUEST", "CHANNEL", "STATE", "SCHEDULED", "SENT", "MESSAGE-ID", "ERROR"]
    text = "\n".join(lines) + "\n\n" + format_table(headers, steps)
    messages = [
        [
            _time(message.get("occurred_at")),
            _cell(message.get("address")),
            _cell(message.get("kind")),
            _cell(message.get("status")),
            _cell(message.get("message_id")),
        ]
        for message in map(_dict, _list(result.get("messages")))
    ]
    if messages:
        headers = ["AT", "ADDRESS", "EVENT", "STATUS", "MESSAGE-ID"]
        text += "\n" + format_table(headers, messages)
    return text + _render_consent(result) + _render_send_time(result)


def _render_consent(result: dict[str, Any]) -> str:
    from plaudit.daemon.ctl import _cell, _dict, _list, _time, format_table

    rows = [
        [
            _cell(record.get("channel")),
            "given" if record.get("granted") else "withdrawn",
            _time(record.get("recorded_at")),
            _cell(record.get("source")),
            _cell(record.get("detail")),
        ]
        for record in map(_dict, _list(result.get("consent")))
    ]
    if not rows:
        return "\nconsent: none recorded for this couple\n"
    headers = ["CONSENT", "CHANGE", "RECORDED", "SOURCE", "DETAIL"]
    return "\n" + format_table(headers, rows)


def _render_send_time(result: dict[str, Any]) -> str:
    from plaudit.daemon.ctl import _dict
    from plaudit.personalisation.ctl import render_explain

    explanation = _dict(result.get("personalisation"))
    if not explanation:
        return "\nsend time: not chosen yet; it is chosen when the step first runs\n"
    return "\nsend time and variant:\n" + render_explain(explanation)


def render_preview(result: dict[str, Any]) -> str:
    """Render a template preview, or the template error with its line."""
    from plaudit.daemon.ctl import _dict, _list

    title = f"{result.get('template')} ({result.get('channel')})"
    if result.get("sample"):
        title += ", sample couple"
    error = _dict(result.get("error"))
    if error:
        where = [f"{error[key]}" for key in ("part", "line") if error.get(key) is not None]
        position = f" at {' line '.join(where)}" if where else ""
        return f"{title}: template error{position}\n{error.get('message')}\n"

    lines = [
        title,
        f"Subject: {result.get('subject')}",
        "",
        "--- text ---",
        str(result.get("text")),
    ]
    if result.get("html"):
        lines += ["--- html ---", str(result.get("html"))]
    lines.append("--- links ---")
    for link in map(_dict, _list(result.get("review_links"))):
        lines.append(f"{link.get('platform')}: {link.get('url')}")
    lines.append(f"unsubscribe: {result.get('unsubscribe_link')}")
    return "\n".join(lines).rstrip("\n") + "\n"


def _whole(value: Any) -> str:
    return "-" if value is None or value == "" else " ".join(str(value).split())


def _error(request: dict[str, Any]) -> Any:
    # The request's own error is final, such as a bounce or a stop reason.
    # Until there is one, the send job's error shows why the step is not sent.
    return request.get("last_error") or request.get("send_error")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
