"""``plaudit ctl``: send one command to a running daemon over its control socket.

The result is printed as aligned tables, or as the daemon's JSON with
``--json``.  Exit status: 0 on success, 1 when the daemon reports an error or
cannot be reached or an import reports a row error, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import trio

from plaudit import alerts_ctl
from plaudit.daemon.control_client import ControlTimeoutError, request_stream, request_sync
from plaudit.errors import ControlError
from plaudit.inbound import control as inbound_ctl
from plaudit.matching import ctl as matching_ctl
from plaudit.messaging import push_ctl, request_ctl
from plaudit.messaging.deliverability import ctl as deliverability_ctl
from plaudit.personalisation import ctl as personalisation_ctl
from plaudit.reviews import import_ctl
from plaudit.webhooks import ctl as webhook_ctl

DEFAULT_SOCKET = Path("/run/plaudit/control.sock")
JOB_STATES = ("ready", "running", "succeeded", "failed", "dead")
# Longer values (error messages, keys) are cut so a table row stays on one line.
MAX_CELL_WIDTH = 60
# Seconds to wait for a response when --timeout is not given.
DEFAULT_TIMEOUT = 10.0
# An import of a few hundred thousand rows takes minutes on a slow disk.
IMPORT_TIMEOUT = 600.0
TIMEOUT_HELP = (
    f"seconds to wait for the daemon's response (default {DEFAULT_TIMEOUT:g}, "
    f"{IMPORT_TIMEOUT:g} for import); may also follow COMMAND"
)
# Appended to the message of a timed-out import, saying how to finish it safely.
IMPORT_TIMEOUT_HINT = (
    "the rows an import accepts are stored together or not at all, and importing the "
    "same file again stores no row twice (reviews already stored count as unchanged, couples are "
    "updated by e-mail address), so run the same command again with a longer --timeout"
)


def socket_path_problem(path: Path) -> str | None:
    """Return why ``path`` cannot be a control socket, or None when it may be one.

    A missing or unreadable path returns None, so the connection error reports it.
    """
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if stat.S_ISSOCK(mode):
        return None
    hint = (
        "pass the daemon's socket with --socket: control.sock in its --runtime-dir, "
        "unless [control] socket names another path"
    )
    if not stat.S_ISDIR(mode):
        return f"control socket path {path} is a file but not a socket; {hint}"

    inside = path / "control.sock"
    if inside.is_socket():
        hint = f"pass the socket file in it: --socket {inside}"
    return f"control socket path {path} is a directory, not a socket; {hint}"


def default_socket_path(environ: Mapping[str, str] | None = None) -> Path:
    """Return $PLAUDIT_SOCKET, else $RUNTIME_DIRECTORY/control.sock, else the packaged default."""
    environ = os.environ if environ is None else environ
    if environ.get("PLAUDIT_SOCKET"):
        return Path(environ["PLAUDIT_SOCKET"])

    # systemd sets RUNTIME_DIRECTORY (colon-separated when several are configured).
    runtime = environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if runtime:
        return Path(runtime) / "control.sock"
    return DEFAULT_SOCKET


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plaudit ctl", description="Query and steer a running Plaudit daemon."
    )
    parser.add_argument(
        "--socket",
        type=Path,
        default=None,
        help="control socket path (default: $PLAUDIT_SOCKET, else $RUNTIME_DIRECTORY/control.sock, "
        f"else {DEFAULT_SOCKET})",
    )
    parser.add_argument("--json", action="store_true", help="print the daemon's JSON result")
    parser.add_argument("--timeout", type=_positive_float, default=None, help=TIMEOUT_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("status", help="daemon, actor and journal overview")
    jobs = commands.add_parser("jobs", help="list jobs, newest first")
    jobs.add_argument("--state", choices=JOB_STATES, help="only jobs in this state")
    jobs.add_argument("--kind", help="only jobs of this kind")
    jobs.add_argument("--owner", help="only jobs owned by this actor")
    jobs.add_argument(
        "--limit", type=_positive_int, help="maximum number of jobs (the daemon's default is 50)"
    )
    retry = commands.add_parser("retry", help="make a failed or dead job ready again")
    retry.add_argument("job", type=int, metavar="JOB_ID")
    pause = commands.add_parser("pause", help="stop an actor from claiming new work")
    pause.add_argument("actor", metavar="ACTOR")
    resume = commands.add_parser("resume", help="let a paused actor claim work again")
    resume.add_argument("actor", metavar="ACTOR")
    commands.add_parser("drain", help="stop claiming work and shut down gracefully")
    commands.add_parser("reload", help="re-read the configuration file")
    commands.add_parser("health", help="platform health, uptime, breakers and incidents")
    webhook_ctl.add_parsers(commands)
    import_ctl.add_parsers(commands)
    deliverability_ctl.add_parsers(commands)
    inbound_ctl.add_parsers(commands)
    matching_ctl.add_parsers(commands)
    request_ctl.add_parsers(commands)
    personalisation_ctl.add_parsers(commands)
    alerts_ctl.add_parsers(commands)
    push_ctl.add_parsers(commands)
    commands.add_parser(
        "watch", help="print health state changes as they happen, until interrupted"
    )
    verify = commands.add_parser(
        "verify", help="check that a marketplace storefront resolves and names the vendor"
    )
    verify.add_argument("profile", help="profile_id of a marketplace profile, or site:profile_id")
    _accept_json_after_command(commands)
    _accept_timeout_after_command(commands)
    return parser


def _accept_timeout_after_command(commands: argparse._SubParsersAction[Any]) -> None:
    """Let every subcommand take ``--timeout`` too, as ``--json`` above."""
    for subparser in set(commands.choices.values()):
        if "--timeout" not in subparser._option_string_actions:
            subparser.add_argument(
                "--timeout", type=_positive_float, default=argparse.SUPPRESS, help=TIMEOUT_HELP
            )
        for action in subparser._actions:
            if isinstance(action, argparse._SubParsersAction):
                _accept_timeout_after_command(action)


def command_timeout(options: argparse.Namespace) -> float:
    """Return the --timeout given, else the command's default in seconds."""
    if options.timeout is not None:
        return float(options.timeout)
    return IMPORT_TIMEOUT if options.command == "import" else DEFAULT_TIMEOUT


def _accept_json_after_command(commands: argparse._SubParsersAction[Any]) -> None:
    """Let every subcommand take ``--json`` too, as in ``plaudit ctl health --json``.

    SUPPRESS as the default keeps ``plaudit ctl --json health`` working: the
    subcommand's parser then sets nothing and the top-level value stays.
    """
    for subparser in set(commands.choices.values()):
        if "--json" not in subparser._option_string_actions:
            subparser.add_argument(
                "--json",
                action="store_true",
                default=argparse.SUPPRESS,
                help="print the JSON result",
            )
        for action in subparser._actions:
            if isinstance(action, argparse._SubParsersAction):
                _accept_json_after_command(action)


def request_args(options: argparse.Namespace) -> dict[str, Any]:
    """Build the request's ``args`` from the parsed options of its command."""
    if options.command == "jobs":
        fields = {"state": options.state, "kind": options.kind, "owner": options.owner}
        fields["limit"] = options.limit
        return {key: value for key, value in fields.items() if value is not None}
    if options.command == "retry":
        return {"job": options.job}
    if options.command in ("pause", "resume"):
        return {"actor": options.actor}
    if options.command == "verify":
        return {"profile": options.profile}
    if options.command in webhook_ctl.COMMANDS:
        return webhook_ctl.request_args(options)
    if options.command in import_ctl.COMMANDS:
        return import_ctl.request_args(options)
    if options.command in matching_ctl.COMMANDS:
        return matching_ctl.request_args(options)
    if options.command in request_ctl.COMMANDS:
        return request_ctl.request_args(options)
    if options.command in personalisation_ctl.COMMANDS:
        return personalisation_ctl.request_args(options)
    if options.command in alerts_ctl.COMMANDS:
        return alerts_ctl.request_args(options)
    if options.command in push_ctl.COMMANDS:
        return push_ctl.request_args(options)
    if options.command == "inbound":
        return inbound_ctl.request_args(options)
    return {}


def ctl_main(argv: Sequence[str]) -> int:
    """Run ``plaudit ctl`` with ``argv`` (without the program name) and return the exit status."""
    try:
        options = build_parser().parse_args(list(argv))
    except SystemExit as exc:
        # argparse exits after printing usage errors (2) or --help (0);
        # returning the status leaves the process to the caller.
        return exc.code if isinstance(exc.code, int) else 2

    socket_path = options.socket or default_socket_path()
    problem = socket_path_problem(socket_path)
    if problem is not None:
        print(f"plaudit ctl: {problem}", file=sys.stderr)
        return 1

    timeout = command_timeout(options)
    if options.command == "watch":
        return watch_main(socket_path, as_json=options.json, timeout=timeout)

    try:
        result = request_sync(socket_path, options.command, request_args(options), timeout=timeout)
    except ControlTimeoutError as exc:
        hint = f"; {IMPORT_TIMEOUT_HINT}" if options.command == "import" else ""
        print(f"plaudit ctl: {exc}{hint}", file=sys.stderr)
        return 1
    except ControlError as exc:
        print(f"plaudit ctl: {exc}", file=sys.stderr)
        return 1

    sys.stdout.write(render_json(result) if options.json else render(options.command, result))
    failure = import_ctl.failure_message(result) if options.command == "import" else None
    if failure is not None:
        print(f"plaudit ctl: {failure}", file=sys.stderr)
        return 1
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive seconds, got {text}")
    return value


# -- rendering ----------------------------------------------------------------


def render_json(result: Any) -> str:
    return json.dumps(result, indent=2) + "\n"


def render(command: str, result: Any) -> str:
    """Render a command's result as text; unknown shapes fall back to JSON."""
    if not isinstance(result, dict):
        return render_json(result)

    renderers = {
        "status": render_status,
        "jobs": render_jobs,
        "retry": render_retry,
        "pause": render_pause,
        "resume": render_pause,
        "drain": render_drain,
        "reload": render_reload,
        "health": render_health,
        "verify": render_verify,
        **webhook_ctl.renderers(),
        **import_ctl.renderers(),
        **deliverability_ctl.renderers(),
        "inbound": inbound_ctl.render_inbound,
        **matching_ctl.renderers(),
        **request_ctl.renderers(),
        **personalisation_ctl.renderers(),
        **alerts_ctl.renderers(),
        **push_ctl.renderers(),
    }
    renderer = renderers.get(command)
    return renderer(result) if renderer is not None else render_json(result)


def render_status(result: dict[str, Any]) -> str:
    sections = [
        _render_daemon(_dict(result.get("daemon"))),
        _render_actors(_list(result.get("actors"))),
        _render_journal(_dict(result.get("journal"))),
    ]
    return "\n".join(section for section in sections if section)


def _render_daemon(daemon: dict[str, Any]) -> str:
    rows = [
        ["state", _cell(daemon.get("state"))],
        ["ready", _yes_no(daemon.get("ready"))],
        ["pid", _cell(daemon.get("pid"))],
        ["version", _cell(daemon.get("version"))],
        ["uptime", _duration(daemon.get("uptime_seconds"))],
        ["instance", _cell(daemon.get("instance"))],
        ["config", str(daemon.get("config_path") or "-")],
        ["loaded", _time(daemon.get("config_loaded_at"))],
    ]
    failed = _list(daemon.get("failed_children"))
    if failed:
        # Shown next to "ready no" so the reason is on the same screen.
        rows.insert(2, ["failed", ", ".join(str(name) for name in failed)])
    return "DAEMON\n" + format_table(None, rows)


def _render_actors(actors: list[Any]) -> str:
    headers = ["ACTOR", "STATE", "PAUSED", "BREAKER", "RESTARTS", "RESTART TYPE", "LAST ERROR"]
    rows = [
        [
            _cell(actor.get("name")),
            _cell(actor.get("state")),
            _yes_no(actor.get("paused")),
            _cell(actor.get("breaker")),
            _cell(actor.get("restarts")),
            _cell(actor.get("restart_type")),
            _cell(actor.get("last_error")),
        ]
        for actor in map(_dict, actors)
    ]
    return format_table(headers, rows) if rows else "no actors\n"


def _render_journal(journal: dict[str, Any]) -> str:
    summary = (
        f"JOURNAL {_cell(journal.get('path'))} (schema {_cell(journal.get('schema_version'))})\n"
    )
    totals = _dict(journal.get("totals"))
    if totals:
        summary += "  ".join(f"{state} {count}" for state, count in totals.items()) + "\n"

    rows = [
        [_cell(row.get("kind")), _cell(row.get("state")), _cell(row.get("count"))]
        for row in map(_dict, _list(journal.get("counts")))
    ]
    if not rows:
        return summary
    return summary + "\n" + format_table(["KIND", "STATE", "COUNT"], rows)


def render_jobs(result: dict[str, Any]) -> str:
    jobs = [_dict(job) for job in _list(result.get("jobs"))]
    if not jobs:
        return "no jobs match\n"

    headers = ["ID", "KIND", "OWNER", "STATE", "ATTEMPTS", "NEXT RUN", "LEASE EXPIRES", "UPDATED"]
    headers += ["KEY", "LAST ERROR"]
    return format_table(headers, [_job_row(job) for job in jobs])


def _job_row(job: dict[str, Any]) -> list[str]:
    attempts = f"{_cell(job.get('attempts'))}/{_cell(job.get('max_attempts'))}"
    return [
        _cell(job.get("id")),
        _cell(job.get("kind")),
        _cell(job.get("owner")),
        _cell(job.get("state")),
        attempts,
        _time(job.get("next_run_at")),
        _time(job.get("lease_expires_at")),
        _time(job.get("updated_at")),
        _cell(job.get("key")),
        _cell(job.get("last_error")),
    ]


def render_retry(result: dict[str, Any]) -> str:
    job = _dict(result.get("job"))
    return (
        f"job {_cell(job.get('id'))} ({_cell(job.get('kind'))}, owner {_cell(job.get('owner'))}) "
        f"is {_cell(job.get('state'))}, next run {_time(job.get('next_run_at'))}\n"
    )


def render_pause(result: dict[str, Any]) -> str:
    state = "paused" if result.get("paused") else "resumed"
    return f"actor {_cell(result.get('actor'))} {state}\n"


def render_drain(result: dict[str, Any]) -> str:
    return "daemon is draining\n" if result.get("draining") else "daemon is not draining\n"


def watch_main(socket_path: Path, *, as_json: bool, timeout: float) -> int:
    """Print each item of the daemon's ``watch`` stream until it ends or Ctrl-C."""

    async def stream() -> None:
        async for item in request_stream(socket_path, "watch", {}, timeout=timeout):
            line = json.dumps(item) if as_json else render_watch_item(_dict(item))
            print(line, flush=True)

    try:
        trio.run(stream)
    except ControlError as exc:
        print(f"plaudit ctl: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def render_watch_item(item: dict[str, Any]) -> str:
    subject = _subject(item)
    when = _time(item.get("at") or item.get("since"))
    if item.get("type") == "current":
        return f"{when}  {subject}  {_cell(item.get('state'))}  ({_cell(item.get('cause'))})"
    return (
        f"{when}  {subject}  {_cell(item.get('old'))} -> {_cell(item.get('state'))}  "
        f"({_cell(item.get('cause'))})"
    )


def _subject(row: dict[str, Any]) -> str:
    profile = row.get("profile")
    return f"{_cell(row.get('platform'))} {profile}" if profile else _cell(row.get("platform"))


def render_health(result: dict[str, Any]) -> str:
    rows = []
    for row in map(_dict, _list(result.get("subjects"))):
        uptime = _dict(row.get("uptime"))
        latency = _dict(row.get("latency_seconds"))
        rows.append(
            [
                _subject(row),
                _cell(row.get("state")),
                _cell(row.get("breaker")),
                _time(row.get("since")),
                _time(row.get("last_success_at")),
                _percent(row.get("error_rate")),
                _seconds(latency.get("p95")),
                *(_percent(uptime.get(window)) for window in ("1h", "24h", "30d")),
                _percent(row.get("quota_used")),
                _cell(row.get("cause")),
            ]
        )
    headers = ["SUBJECT", "STATE", "BREAKER", "SINCE", "LAST SUCCESS", "ERRORS", "P95 S"]
    headers += ["UP 1H", "UP 24H", "UP 30D", "QUOTA USED", "CAUSE"]
    text = format_table(headers, rows) if rows else "no platforms\n"
    breakers = [
        [
            _cell(breaker.get("name")),
            _cell(breaker.get("state")),
            _cell(breaker.get("consecutive_failures")),
            _cell(round(float(breaker.get("open_remaining") or 0), 1)),
            _cell(breaker.get("times_opened")),
        ]
        for breaker in map(_dict, _list(result.get("breakers")))
    ]
    if breakers:
        headers = ["BREAKER", "STATE", "FAILURES IN A ROW", "OPEN FOR S", "TIMES OPENED"]
        text += "\n" + format_table(headers, breakers)
    incidents = [
        [
            _cell(incident.get("id")),
            _subject(incident),
            _cell(incident.get("state")),
            _time(incident.get("opened_at")),
            _time(incident.get("resolved_at")),
            _duration(incident.get("duration_seconds")),
            _cell(incident.get("cause")),
        ]
        for incident in map(_dict, _list(result.get("incidents")))
    ]
    if incidents:
        headers = ["INCIDENT", "SUBJECT", "STATE", "OPENED", "RESOLVED", "DURATION", "CAUSE"]
        text += "\n" + format_table(headers, incidents)
    return text


def _seconds(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    return f"{value:.3f}"


def _percent(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    return f"{value * 100:.2f}%"


def render_verify(result: dict[str, Any]) -> str:
    """Render a profile verification: its state, the vendor found and each problem."""
    vendor = _dict(result.get("vendor"))
    lines = [f"{result.get('platform')} {result.get('profile')}: {result.get('state')}"]
    if vendor:
        lines.append(
            f"  vendor {vendor.get('name')!r}, rating {vendor.get('rating')}, "
            f"{vendor.get('review_count')} reviews"
        )
    lines.extend(f"  problem: {problem}" for problem in _list(result.get("problems")))
    return "\n".join(lines) + "\n"


def render_reload(result: dict[str, Any]) -> str:
    text = f"configuration reloaded from {_cell(result.get('config_path'))}\n"
    pending = result.get("restart_required") or []
    if pending:
        tables = ", ".join(f"[{name}]" for name in pending)
        text += f"changes to {tables} take effect after a restart of the daemon\n"
    return text


def format_table(headers: Sequence[str] | None, rows: Sequence[Sequence[str]]) -> str:
    """Align columns with two spaces between them; no trailing spaces."""
    lines = [list(headers)] if headers else []
    lines += [list(row) for row in rows]
    widths = [max(len(line[column]) for line in lines) for column in range(len(lines[0]))]
    text = ""
    for line in lines:
        padded = [cell.ljust(width) for cell, width in zip(line, widths, strict=True)]
        text += "  ".join(padded).rstrip() + "\n"
    return text


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    text = " ".join(str(value).split())
    if len(text) > MAX_CELL_WIDTH:
        return text[: MAX_CELL_WIDTH - 3] + "..."
    return text


def _yes_no(value: Any) -> str:
    if value is None:
        return "-"
    return "yes" if value else "no"


def _time(value: Any) -> str:
    """Render unix seconds as local ISO 8601 time."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return _cell(value)
    return datetime.fromtimestamp(value).astimezone().isoformat(timespec="seconds")


def _duration(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return _cell(value)
    minutes, seconds = divmod(int(value), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    text = f"{hours}h{minutes:02d}m{seconds:02d}s"
    return f"{days}d{text}" if days else text


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
