"""Hostile input against the daemon's guards: control socket, configuration, journal, restarts.

Each test marked ``xfail(strict=True)`` reproduces an open defect.  Once the
defect is fixed the test passes, which strict mode reports as a failure, so
remove the marker together with the fix.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import trio

from plaudit.config import load_config
from plaudit.daemon.commands import CommandHandler
from plaudit.daemon.control import serve_control
from plaudit.daemon.control_wire import InvalidArgument, UnknownCommand, decode_response
from plaudit.daemon.platforms import build_platform_actors
from plaudit.daemon.supervisor import ChildContext
from plaudit.demo import demo_config
from plaudit.errors import ConfigError, ControlError, JournalError
from plaudit.journal import AsyncJournal, Journal
from tests.support import DaemonDirs, open_daemon, query, start_sandbox, stop_daemon, wait_for

# Deeper than the recursion limits of msgspec's and tomllib's decoders, and
# small enough to fit one 64 KiB control request line.
NESTING_DEPTH = 5000


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    # pytest's tmp_path can exceed the 107-byte limit of AF_UNIX paths.
    directory = Path(tempfile.mkdtemp(prefix="hard-", dir="/tmp"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


async def echo_handler(command: str, args: dict[str, Any]) -> Any:
    if command == "echo":
        return args
    raise UnknownCommand(f"unknown command {command!r}")


async def exchange(path: Path, payload: bytes) -> bytes:
    """Send ``payload`` on a new connection and return the first response line."""
    stream = await trio.open_unix_socket(os.fspath(path))
    async with stream:
        await stream.send_all(payload)
        received = b""
        while not received.endswith(b"\n"):
            chunk = await stream.receive_some(65536)
            if not chunk:
                break
            received += chunk
    return received


def nested_request() -> bytes:
    nested = b"[" * NESTING_DEPTH + b"]" * NESTING_DEPTH
    return b'{"command": "echo", "args": {"value": ' + nested + b"}}\n"


# -- control socket -----------------------------------------------------------


async def test_control_garbage_keeps_connection(socket_dir: Path) -> None:
    """Garbage, an over-long line and a wrong type each get an error; the next request works."""
    path = socket_dir / "control.sock"
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_control, path, echo_handler)
        stream = await trio.open_unix_socket(os.fspath(path))
        async with stream:
            payload = (
                bytes(range(256)).replace(b"\n", b"") + b"\n"
                + b"x" * (200 * 1024) + b"\n"
                + b'{"command": 7}\n'
                + b'{"command": "echo", "args": {"ok": true}, "id": 3}\n'
            )  # fmt: skip
            await stream.send_all(payload)
            received = b""
            with trio.fail_after(60):
                while received.count(b"\n") < 4:
                    received += await stream.receive_some(65536)
        nursery.cancel_scope.cancel()

    lines = received.splitlines()
    assert b'"bad_request"' in lines[0]
    assert b"longer than" in lines[1]
    assert b'"bad_request"' in lines[2]
    assert lines[3] == b'{"ok":true,"result":{"ok":true},"id":3}'


async def test_control_answers_after_half_close(socket_dir: Path) -> None:
    """A client that shuts down its sending side after the request still gets the response."""
    path = socket_dir / "control.sock"
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_control, path, echo_handler)
        stream = await trio.open_unix_socket(os.fspath(path))
        async with stream:
            await stream.send_all(b'{"command": "echo", "args": {"a": 1}}\n')
            await stream.send_eof()
            with trio.fail_after(60):
                response = await stream.receive_some(65536)
        nursery.cancel_scope.cancel()

    assert response == b'{"ok":true,"result":{"a":1},"id":null}\n'


async def test_nested_request_keeps_control_server(socket_dir: Path) -> None:
    """A deeply nested JSON request gets bad_request, and the server keeps serving."""
    path = socket_dir / "control.sock"
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_control, path, echo_handler)
            response = await exchange(path, nested_request())
            after = await exchange(path, b'{"command": "echo", "args": {"b": 2}}\n')
            nursery.cancel_scope.cancel()

    assert b'"bad_request"' in response
    assert after == b'{"ok":true,"result":{"b":2},"id":null}\n'


async def test_retry_huge_job_id_is_invalid(tmp_path: Path) -> None:
    """ctl retry with a job id above 2**63 - 1 is an invalid argument, not an internal error."""
    journal = Journal.open(tmp_path / "journal.sqlite3")
    facade = AsyncJournal(journal)
    daemon = SimpleNamespace(journal=facade, actors={})
    handler = CommandHandler(cast(Any, daemon))
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(facade.run)
            try:
                with pytest.raises(InvalidArgument):
                    await handler("retry", {"job": 2**63})
            finally:
                nursery.cancel_scope.cancel()
    finally:
        journal.close()


def test_ctl_nested_response_is_control_error() -> None:
    """A response nested deeper than the decoder's limit is a ControlError for ctl to print."""
    nested = b"[" * NESTING_DEPTH + b"]" * NESTING_DEPTH
    with pytest.raises(ControlError):
        decode_response(b'{"ok": true, "result": ' + nested + b"}", command="status")


# -- configuration ------------------------------------------------------------


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plaudit.toml"
    path.write_text(text, encoding="utf-8")
    return path


def demo_with(old: str, new: str) -> str:
    text = demo_config("http://127.0.0.1:9", sync_interval=5.0)
    if old not in text:
        raise AssertionError(f"{old!r} is not in the demo configuration")
    return text.replace(old, new)


def test_config_deep_nesting_is_config_error(tmp_path: Path) -> None:
    """An array nested deeper than the parser's recursion limit is a ConfigError."""
    nested = "[" * NESTING_DEPTH + "]" * NESTING_DEPTH
    path = write_config(tmp_path, f"value = {nested}\n")

    with pytest.raises(ConfigError):
        load_config(path)


def test_config_rejects_integer_beyond_sqlite(tmp_path: Path) -> None:
    """journal.max_attempts above SQLite's INTEGER range is rejected when loading."""
    text = demo_with("retry_initial = 0.5", f"retry_initial = 0.5\nmax_attempts = {2**63}")
    path = write_config(tmp_path, text)

    with pytest.raises(ConfigError, match="max_attempts"):
        load_config(path)


def test_config_rejects_infinite_lease(tmp_path: Path) -> None:
    """journal.lease_seconds = inf is rejected when loading, as Journal.open rejects it."""
    path = write_config(tmp_path, demo_with("lease_seconds = 15.0", "lease_seconds = inf"))

    with pytest.raises(ConfigError, match="lease_seconds"):
        load_config(path)


# -- journal ------------------------------------------------------------------


def make_foreign_wal(path: Path) -> bytes:
    """Write another database's WAL file next to ``path``; returns the WAL's bytes."""
    other = path.with_name("other.sqlite3")
    connection = sqlite3.connect(other)
    try:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA wal_autocheckpoint = 0")
        connection.execute("CREATE TABLE other (value INTEGER)")
        connection.executemany("INSERT INTO other VALUES (?)", [(n,) for n in range(500)])
        connection.commit()
        # Copied while the connection is open, so the WAL still contains every frame.
        wal = other.with_name("other.sqlite3-wal").read_bytes()
    finally:
        connection.close()
    path.with_name(path.name + "-wal").write_bytes(wal)
    return wal


def test_journal_header_damage_left_unchanged(tmp_path: Path) -> None:
    """A journal whose header is overwritten fails to open and keeps its bytes."""
    path = tmp_path / "journal.sqlite3"
    Journal.open(path).close()
    with path.open("r+b") as file:
        file.write(b"not a database at all")
    before = path.read_bytes()

    with pytest.raises(JournalError, match="SQLITE_NOTADB"):
        Journal.open(path)

    assert path.read_bytes() == before


def test_journal_foreign_wal_left_unchanged(tmp_path: Path) -> None:
    """A stray WAL of another database is not checkpointed into the journal."""
    path = tmp_path / "journal.sqlite3"
    Journal.open(path).close()
    before = path.read_bytes()
    make_foreign_wal(path)

    with pytest.raises(JournalError):
        Journal.open(path)

    assert path.read_bytes() == before


# -- actors -------------------------------------------------------------------


async def run_until_synced(actor: Any, journal: AsyncJournal, *, count: int) -> None:
    """Run ``actor.start`` until the journal has ``count`` succeeded jobs, then stop it."""
    ctx = ChildContext(actor.name)

    def succeeded() -> int:
        # A separate connection reads only committed jobs, and the journal's own
        # connection belongs to its worker thread.
        rows = query(journal.journal.path, "SELECT count(*) FROM jobs WHERE state = 'succeeded'")
        return int(rows[0][0]) if rows else 0

    async with trio.open_nursery() as nursery:
        nursery.start_soon(actor.start, ctx)
        await wait_for(lambda: succeeded() >= count, timeout=60, what=f"{count} synced jobs")
        ctx.stop_requested.set()


async def test_google_actor_syncs_after_restart(tmp_path: Path) -> None:
    """The supervisor restarts an actor by calling start again; the restarted actor syncs."""
    journal = Journal.open(tmp_path / "journal.sqlite3")
    facade = AsyncJournal(journal)
    try:
        async with trio.open_nursery() as nursery:
            base_url = await start_sandbox(nursery, seed=3)
            config = load_config(write_config(tmp_path, demo_config(base_url, sync_interval=0.5)))
            await nursery.start(facade.run)
            actor = build_platform_actors(config, facade)["google"]

            await run_until_synced(actor, facade, count=2)
            await run_until_synced(actor, facade, count=4)
            nursery.cancel_scope.cancel()
    finally:
        journal.close()


# -- processes ----------------------------------------------------------------


@pytest.mark.slow
async def test_second_daemon_on_same_journal_exits(tmp_path: Path) -> None:
    """Two daemons with their own state directories cannot share one absolute journal.path."""
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first = DaemonDirs(tmp_path / "first")
    second = DaemonDirs(tmp_path / "second")
    shared = tmp_path / "shared.sqlite3"
    async with trio.open_nursery() as nursery:
        base_url = await start_sandbox(nursery, seed=5)
        for dirs in (first, second):
            text = demo_config(base_url, sync_interval=1.0)
            dirs.config.write_text(
                text.replace("[journal]\n", f'[journal]\npath = "{shared}"\n'), encoding="utf-8"
            )

        running = await open_daemon(first)
        try:
            await wait_for(first.socket.exists, timeout=30, what="the first daemon's socket")
            rival = await open_daemon(second)
            try:
                await wait_for(
                    lambda: rival.poll() is not None, timeout=10, what="the second daemon to exit"
                )
            finally:
                await stop_daemon(rival)
        finally:
            assert await stop_daemon(running) == 0
        nursery.cancel_scope.cancel()


@pytest.mark.slow
async def test_sigterm_during_blocked_startup_exits(tmp_path: Path) -> None:
    """SIGTERM ends the daemon even while an actor's start is stuck on the journal writer."""
    dirs = DaemonDirs(tmp_path)
    async with trio.open_nursery() as nursery:
        base_url = await start_sandbox(nursery, seed=5)
        # The longest group-commit window keeps the actor's first enqueue queued for a second.
        text = demo_config(base_url, sync_interval=1.0).replace(
            "shutdown_timeout = 10.0", "shutdown_timeout = 1.0"
        )
        text = text.replace("[journal]\n", "[journal]\ngroup_commit_window = 1.0\n")
        dirs.config.write_text(text, encoding="utf-8")

        process = await open_daemon(dirs)
        try:
            await wait_for(dirs.socket.exists, timeout=30, what="the control socket")
            process.send_signal(signal.SIGTERM)
            await wait_for(
                lambda: process.poll() is not None, timeout=10, what="the daemon to exit"
            )
        finally:
            if process.poll() is None:
                process.kill()
            await process.wait()
        nursery.cancel_scope.cancel()

    assert process.returncode == 0


def test_socket_probe_sees_live_listener(socket_dir: Path) -> None:
    """A second server rejects a path on which a live listener accepts connections."""
    path = socket_dir / "control.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(os.fspath(path))
        listener.listen()

        async def serve_second() -> None:
            await serve_control(path, echo_handler)

        with pytest.raises(ControlError, match="in use"):
            trio.run(serve_second)
    finally:
        listener.close()
