"""Control socket: first-request timeout, and idle connections closed to make room."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from plaudit.daemon.control import ControlServer, serve_control
from plaudit.daemon.control_client import request
from tests.support import DaemonDirs, ctl, open_daemon, stop_daemon, wait_for

# More than the daemon's 64 control connections.
IDLE_CLIENTS = 100


async def echo(command: str, args: dict[str, Any]) -> Any:
    return command


async def start_server(nursery: trio.Nursery, path: Path, **options: Any) -> ControlServer:
    async def run(task_status: Any) -> None:
        await serve_control(path, echo, task_status=task_status, **options)

    server: ControlServer = await nursery.start(run)
    return server


async def closed_by_server(stream: trio.SocketStream) -> bool:
    return await stream.receive_some(4096) == b""


async def test_silent_connection_closed_after_first_timeout(
    sock_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with trio.open_nursery() as nursery:
        server = await start_server(
            nursery, sock_path, first_request_timeout=2.0, idle_timeout=60.0
        )
        stream = await trio.open_unix_socket(os.fspath(sock_path))
        start = trio.current_time()
        closed = await closed_by_server(stream)
        elapsed = trio.current_time() - start
        await stream.aclose()
        nursery.cancel_scope.cancel()

    assert closed
    assert elapsed == pytest.approx(2.0)
    assert server.statistics().connections_timed_out == 1


async def test_later_requests_get_idle_timeout(
    sock_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with trio.open_nursery() as nursery:
        await start_server(nursery, sock_path, first_request_timeout=2.0, idle_timeout=30.0)
        stream = await trio.open_unix_socket(os.fspath(sock_path))
        await stream.send_all(b'{"command": "status"}\n')
        answer = json.loads(await stream.receive_some(4096))
        start = trio.current_time()
        closed = await closed_by_server(stream)
        elapsed = trio.current_time() - start
        await stream.aclose()
        nursery.cancel_scope.cancel()

    assert answer["result"] == "status"
    assert closed
    assert elapsed == pytest.approx(30.0)


async def test_full_server_closes_oldest_idle(sock_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        server = await start_server(nursery, sock_path, max_connections=2)
        oldest = await trio.open_unix_socket(os.fspath(sock_path))
        await trio.testing.wait_all_tasks_blocked()
        newer = await trio.open_unix_socket(os.fspath(sock_path))
        await trio.testing.wait_all_tasks_blocked()

        with trio.fail_after(10):
            result = await request(sock_path, "status", timeout=10.0)
            oldest_closed = await closed_by_server(oldest)
        await trio.testing.wait_all_tasks_blocked()
        statistics = server.statistics()
        await newer.send_all(b'{"command": "still-open"}\n')
        newer_answer = json.loads(await newer.receive_some(4096))
        await oldest.aclose()
        await newer.aclose()
        nursery.cancel_scope.cancel()

    assert result == "status"
    assert oldest_closed
    assert newer_answer["result"] == "still-open"
    assert statistics.connections_evicted == 1


async def test_busy_connection_not_evicted(sock_path: Path) -> None:
    release = trio.Event()
    inside = trio.Event()

    async def blocking(command: str, args: dict[str, Any]) -> Any:
        if command == "slow":
            inside.set()
            await release.wait()
        return command

    results: list[Any] = []

    async def call(command: str) -> None:
        results.append(await request(sock_path, command, timeout=10.0))

    async with trio.open_nursery() as nursery:

        async def run(task_status: Any) -> None:
            await serve_control(sock_path, blocking, max_connections=1, task_status=task_status)

        server: ControlServer = await nursery.start(run)
        async with trio.open_nursery() as clients:
            clients.start_soon(call, "slow")
            await inside.wait()
            clients.start_soon(call, "quick")
            await trio.testing.wait_all_tasks_blocked()
            waiting = list(results)
            release.set()
        nursery.cancel_scope.cancel()

    assert waiting == []
    assert results == ["slow", "quick"]
    assert server.statistics().connections_evicted == 0


async def test_many_idle_connections_leave_room(sock_path: Path) -> None:
    streams: list[trio.SocketStream] = []
    async with trio.open_nursery() as nursery:
        server = await start_server(nursery, sock_path, max_connections=8)
        with trio.fail_after(30):
            for _ in range(40):
                streams.append(await trio.open_unix_socket(os.fspath(sock_path)))
            result = await request(sock_path, "status", timeout=10.0)
        statistics = server.statistics()
        for stream in streams:
            await stream.aclose()
        nursery.cancel_scope.cancel()

    assert result == "status"
    assert statistics.connections_evicted >= 40 - 8 + 1
    assert statistics.connections_open <= 8


@pytest.mark.slow
async def test_daemon_status_despite_idle_clients(tmp_path: Path) -> None:
    """A real daemon serves ``ctl status`` while more idle clients are connected than it allows."""
    dirs = DaemonDirs(tmp_path)
    dirs.config.write_text("[daemon]\nshutdown_timeout = 5.0\n\n[metrics]\nenabled = false\n")
    process = await open_daemon(dirs)
    streams: list[trio.SocketStream] = []
    try:
        await wait_for(lambda: "daemon.ready" in dirs.log.read_text(), timeout=60, what="readiness")
        with trio.fail_after(60):
            for _ in range(IDLE_CLIENTS):
                streams.append(await trio.open_unix_socket(os.fspath(dirs.socket)))
        result = await trio.to_thread.run_sync(ctl, dirs, "status")
    finally:
        for stream in streams:
            await stream.aclose()
        assert await stop_daemon(process) == 0

    assert result.returncode == 0, result.stderr
    assert "control.connection_evicted" in dirs.log.read_text()
