"""``plaudit ctl`` against a real control socket served by a stub handler."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import trio

from plaudit.daemon.control import serve_control
from plaudit.daemon.control_wire import InvalidArgument
from plaudit.daemon.ctl import ctl_main, default_socket_path, format_table
from plaudit.errors import PlauditError

STARTED_AT = 1_760_000_000.0

STATUS = {
    "daemon": {
        "pid": 4321,
        "version": "0.1.0",
        "state": "running",
        "uptime_seconds": 3723.4,
        "config_path": "/etc/plaudit/plaudit.toml",
        "config_loaded_at": STARTED_AT,
        "instance": "host-a",
        "ready": True,
        "future_field": "ignored",
    },
    "actors": [
        {
            "name": "google",
            "state": "running",
            "restarts": 2,
            "last_error": "PlatformError('timed out')",
            "paused": False,
            "restart_type": "permanent",
        },
        {
            "name": "webhooks",
            "state": "backoff",
            "restarts": 17,
            "last_error": None,
            "paused": True,
            "restart_type": "transient",
        },
    ],
    "journal": {
        "path": "/var/lib/plaudit/journal.sqlite3",
        "schema_version": 1,
        "counts": [
            {"kind": "google.sync", "state": "ready", "count": 3},
            {"kind": "webhook.deliver", "state": "dead", "count": 41},
        ],
        "totals": {"ready": 3, "running": 0, "succeeded": 0, "failed": 0, "dead": 41},
    },
}

JOB = {
    "id": 42,
    "kind": "webhook.deliver",
    "owner": "webhooks",
    "key": "delivery:abc",
    "state": "dead",
    "attempts": 8,
    "max_attempts": 8,
    "next_run_at": STARTED_AT,
    "lease_expires_at": None,
    "last_error": "HTTP 500 from receiver",
    "updated_at": STARTED_AT + 60,
}


class StubDaemon:
    """Returns the documented result shapes and records each request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, command: str, args: dict[str, Any]) -> Any:
        self.requests.append((command, args))
        if command == "status":
            return STATUS
        if command == "jobs":
            return {"jobs": [JOB]}
        if command == "retry":
            if args["job"] != 42:
                raise InvalidArgument(f"job {args['job']} does not exist; list jobs with ctl jobs")
            return {"job": {**JOB, "state": "ready", "attempts": 0}}
        if command in ("pause", "resume"):
            return {"actor": args["actor"], "paused": command == "pause"}
        if command == "drain":
            return {"draining": True}
        if command == "reload":
            raise PlauditError("invalid configuration /etc/plaudit/plaudit.toml: metrics.port")
        raise AssertionError(f"unexpected command {command}")


async def run_ctl(sock_path: Path, *argv: str) -> tuple[int, StubDaemon]:
    """Serve the stub daemon and run ctl_main in a thread, since it blocks."""
    daemon = StubDaemon()

    async def serve(task_status: Any) -> None:
        await serve_control(sock_path, daemon, task_status=task_status)

    async with trio.open_nursery() as nursery:
        await nursery.start(serve)
        code = await trio.to_thread.run_sync(ctl_main, ["--socket", str(sock_path), *argv])
        nursery.cancel_scope.cancel()
    return code, daemon


def local_iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="seconds")


async def test_status_lists_actors(sock_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = await run_ctl(sock_path, "status")
    out = capsys.readouterr().out

    assert code == 0
    assert "google" in out
    assert "webhooks" in out
    assert "PlatformError('timed out')" in out


async def test_status_aligns_actor_columns(
    sock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await run_ctl(sock_path, "status")
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("ACTOR"))
    google = next(line for line in lines if line.startswith("google"))
    webhooks = next(line for line in lines if line.startswith("webhooks"))

    column = header.index("RESTARTS")
    assert google[column:].startswith("2 ")
    assert webhooks[column:].startswith("17 ")


async def test_status_shows_job_counts(sock_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    await run_ctl(sock_path, "status")
    out = capsys.readouterr().out

    assert "dead 41" in out
    count_line = next(line for line in out.splitlines() if line.startswith("webhook.deliver"))
    assert count_line.split() == ["webhook.deliver", "dead", "41"]


async def test_status_renders_times_and_uptime(
    sock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await run_ctl(sock_path, "status")
    out = capsys.readouterr().out

    assert local_iso(STARTED_AT) in out
    assert "1h02m03s" in out
    assert "future_field" not in out


async def test_jobs_sends_filters(sock_path: Path) -> None:
    argv = ["jobs", "--state", "dead", "--owner", "webhooks", "--limit", "5"]
    _, daemon = await run_ctl(sock_path, *argv)

    assert daemon.requests == [("jobs", {"state": "dead", "owner": "webhooks", "limit": 5})]


async def test_jobs_table_shows_job(sock_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = await run_ctl(sock_path, "jobs")
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("42"))

    assert code == 0
    assert "8/8" in row
    assert local_iso(STARTED_AT + 60) in row
    assert "HTTP 500 from receiver" in row


async def test_retry_sends_job_id(sock_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, daemon = await run_ctl(sock_path, "retry", "42")

    assert code == 0
    assert daemon.requests == [("retry", {"job": 42})]
    assert "job 42 (webhook.deliver, owner webhooks) is ready" in capsys.readouterr().out


@pytest.mark.parametrize(("command", "expected"), [("pause", "paused"), ("resume", "resumed")])
async def test_pause_and_resume(
    sock_path: Path, capsys: pytest.CaptureFixture[str], command: str, expected: str
) -> None:
    code, daemon = await run_ctl(sock_path, command, "google")

    assert code == 0
    assert daemon.requests == [(command, {"actor": "google"})]
    assert capsys.readouterr().out == f"actor google {expected}\n"


async def test_drain_reports_draining(sock_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = await run_ctl(sock_path, "drain")

    assert code == 0
    assert capsys.readouterr().out == "daemon is draining\n"


async def test_json_output_parses(sock_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = await run_ctl(sock_path, "--json", "status")

    assert code == 0
    assert json.loads(capsys.readouterr().out) == STATUS


async def test_server_error_exits_1(sock_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = await run_ctl(sock_path, "reload")
    captured = capsys.readouterr()

    assert code == 1
    assert captured.out == ""
    assert "invalid configuration /etc/plaudit/plaudit.toml" in captured.err
    assert "Traceback" not in captured.err


async def test_invalid_argument_exits_1(
    sock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = await run_ctl(sock_path, "retry", "7")

    assert code == 1
    assert "job 7 does not exist" in capsys.readouterr().err


def test_missing_socket_exits_1(sock_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = ctl_main(["--socket", str(sock_path), "status"])
    err = capsys.readouterr().err

    assert code == 1
    assert f"no daemon is listening on {sock_path}" in err
    assert "pass --socket" in err


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["retry"],
        ["retry", "abc"],
        ["jobs", "--state", "sleeping"],
        ["jobs", "--limit", "0"],
    ],
)
def test_usage_error_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code = ctl_main(argv)

    assert code == 2
    assert "usage: plaudit ctl" in capsys.readouterr().err


def test_default_socket_prefers_plaudit_socket() -> None:
    environ = {"PLAUDIT_SOCKET": "/tmp/a.sock", "RUNTIME_DIRECTORY": "/run/x"}
    assert default_socket_path(environ) == Path("/tmp/a.sock")


def test_default_socket_uses_runtime_directory() -> None:
    environ = {"RUNTIME_DIRECTORY": "/run/plaudit-a:/run/plaudit-b"}
    assert default_socket_path(environ) == Path("/run/plaudit-a/control.sock")


def test_default_socket_fallback() -> None:
    assert default_socket_path({}) == Path("/run/plaudit/control.sock")


def test_format_table_aligns_columns() -> None:
    table = format_table(["A", "LONGER"], [["wide-cell", "x"], ["b", "y"]])
    assert table.splitlines() == ["A          LONGER", "wide-cell  x", "b          y"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["health"], False),
        (["--json", "health"], True),
        (["health", "--json"], True),
        (["watch", "--json"], True),
        (["request", "show", "5", "--json"], True),
        (["--json", "request", "show", "5"], True),
    ],
)
def test_json_before_or_after_command(argv: list[str], expected: bool) -> None:
    from plaudit.daemon.ctl import build_parser

    assert build_parser().parse_args(argv).json is expected
