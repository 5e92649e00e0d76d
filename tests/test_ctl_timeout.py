"""``plaudit ctl``: --timeout position, per-command defaults, the timeout message, P95 cells."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from plaudit.daemon.control import serve_control
from plaudit.daemon.ctl import (
    DEFAULT_TIMEOUT,
    IMPORT_TIMEOUT,
    build_parser,
    command_timeout,
    ctl_main,
    render_health,
)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["status"], DEFAULT_TIMEOUT),
        (["import", "reviews", "f.csv", "--platform", "hitched"], IMPORT_TIMEOUT),
        (["--timeout", "60", "import", "couples", "f.csv"], 60.0),
        (["import", "couples", "f.csv", "--timeout", "60"], 60.0),
        (["status", "--timeout", "2.5"], 2.5),
        (["--timeout", "3", "request", "list", "--timeout", "4"], 4.0),
    ],
)
def test_timeout_position_and_default(argv: list[str], expected: float) -> None:
    options = build_parser().parse_args(argv)

    assert command_timeout(options) == expected


def test_timeout_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    assert ctl_main(["status", "--timeout", "0"]) == 2
    assert "must be positive seconds" in capsys.readouterr().err


async def run_against_slow_daemon(sock_path: Path, argv: list[str]) -> int:
    """Run ``plaudit ctl`` against a server that responds only after ctl gave up."""
    finished = trio.Event()

    async def slow_handler(command: str, args: dict[str, Any]) -> Any:
        await finished.wait()
        return {}

    async with trio.open_nursery() as nursery:

        async def serve(task_status: Any) -> None:
            await serve_control(sock_path, slow_handler, task_status=task_status)

        await nursery.start(serve)
        code = await trio.to_thread.run_sync(ctl_main, ["--socket", str(sock_path), *argv])
        finished.set()
        nursery.cancel_scope.cancel()
    return code


async def test_import_timeout_says_rerun_is_safe(
    sock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["import", "couples", "couples.csv", "--timeout", "0.3"]

    code = await run_against_slow_daemon(sock_path, argv)

    assert code == 1
    error = capsys.readouterr().err
    assert "did not respond to 'import' within 0.3 s" in error
    assert "may still complete the command" in error
    assert "stores no row twice" in error


async def test_status_timeout_names_no_import(
    sock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await run_against_slow_daemon(sock_path, ["--timeout", "0.3", "status"])

    assert code == 1
    error = capsys.readouterr().err
    assert "did not respond to 'status' within 0.3 s" in error
    assert "import" not in error


def test_health_p95_rounded_to_milliseconds() -> None:
    row = {
        "platform": "google",
        "profile": "",
        "state": "healthy",
        "latency_seconds": {"p95": 0.05225094800698571},
        "uptime": {},
    }

    text = render_health({"subjects": [row]})

    assert "0.052 " in text
    assert "0.0522509" not in text
