"""Shared helpers for tests that run real ``plaudit run`` processes against the sandbox."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import trio

from plaudit.daemon.children import ChildContext
from plaudit.demo import demo_config
from plaudit.sandbox import SandboxOptions, serve_sandbox

REPOSITORY = Path(__file__).resolve().parents[1]


async def start_sandbox(nursery: trio.Nursery, **options: Any) -> str:
    """Serve the sandbox on an ephemeral loopback port; returns its base URL."""
    base_url: str = await nursery.start(serve_sandbox, SandboxOptions(**options))
    return base_url


class DaemonDirs:
    """A state directory, a short runtime directory and a config file for one daemon."""

    def __init__(self, root: Path) -> None:
        self.state = root / "state"
        self.state.mkdir()
        # AF_UNIX socket paths are limited to 107 bytes; pytest's tmp_path can be longer.
        self.runtime = Path(tempfile.mkdtemp(prefix="plaudit-t-", dir="/tmp"))
        self.config = root / "plaudit.toml"
        self.journal = self.state / "journal.sqlite3"
        self.socket = self.runtime / "control.sock"
        self.log = root / "daemon.log"

    def write_config(self, base_url: str, *, sync_interval: float = 1.0, extra: str = "") -> None:
        # Full Google listings every few seconds, so a reply to an old review
        # (which leaves its updateTime unchanged) is seen within a test.
        config = demo_config(
            base_url, sync_interval=sync_interval, full_sync_interval=3 * sync_interval
        )
        self.config.write_text(config + extra, encoding="utf-8")


def run_command(dirs: DaemonDirs) -> list[str]:
    return [
        sys.executable, "-m", "plaudit", "run",
        "--config", str(dirs.config),
        "--state-dir", str(dirs.state),
        "--runtime-dir", str(dirs.runtime),
    ]  # fmt: skip


def plaudit_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPOSITORY) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


# Daemons started by the running test; tests/conftest.py kills any left
# running when the test ends, so a failed test never leaves one behind.
STARTED_DAEMONS: list[trio.Process] = []


async def open_daemon(dirs: DaemonDirs, **env: str) -> trio.Process:
    log = dirs.log.open("ab")
    process = await trio.lowlevel.open_process(
        run_command(dirs), stdout=log, stderr=log, env=plaudit_env(**env)
    )
    STARTED_DAEMONS.append(process)
    return process


def kill_started_daemons() -> None:
    """Kill every daemon this test started that is still running."""
    while STARTED_DAEMONS:
        process = STARTED_DAEMONS.pop()
        if process.poll() is None:
            process.kill()


async def wait_for(
    predicate: Any, *, timeout: float, interval: float = 0.1, what: str = "condition"
) -> Any:
    """Poll ``predicate`` in real time until it returns a truthy value, for ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await trio.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Startable(Protocol):
    """An actor or monitor that runs until its child context requests a stop."""

    async def start(self, context: ChildContext, /) -> None: ...


async def run_actor_until(
    actor: Startable, done: Callable[[], object], *, name: str, timeout: float
) -> None:
    """Run ``actor`` in real time until ``done()`` is truthy, then request its stop.

    Raises ``trio.TooSlowError`` when ``done()`` stays falsy for ``timeout`` seconds.
    """
    context = ChildContext(name)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(actor.start, context)
        with trio.fail_after(timeout):
            while not done():
                await trio.sleep(0.05)
        context.stop_requested.set()


async def stop_daemon(process: trio.Process, *, timeout: float = 30.0) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    with trio.fail_after(timeout):
        return await process.wait()


def query(journal: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run a read-only query against a journal file another process is writing."""
    if not journal.exists():
        return []
    try:
        connection = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5.0)
    except sqlite3.OperationalError:
        return []
    try:
        return connection.execute(sql, params).fetchall()
    except sqlite3.OperationalError:
        # The daemon has not created the tables yet.
        return []
    finally:
        connection.close()


def ctl(dirs: DaemonDirs, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``plaudit ctl`` as the operator would, in a child process."""
    command = [sys.executable, "-m", "plaudit", "ctl", "--socket", str(dirs.socket), *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=30, env=plaudit_env(), check=False
    )


@contextmanager
def datagram_socket(path: Path) -> Iterator[Any]:
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


async def run_ctl_against(
    journal: Any, sock_path: Path, argv: Sequence[str], *, config: Any
) -> int:
    """Run ``plaudit ctl ARGV`` against the control commands of ``journal`` and ``config``.

    ``journal`` is an open :class:`plaudit.journal.Journal`; a stand-in daemon
    with no actors serves the commands on ``sock_path``.  Returns ctl's exit status.
    """
    from types import SimpleNamespace
    from typing import cast

    from plaudit.daemon.commands import CommandHandler
    from plaudit.daemon.control import serve_control
    from plaudit.daemon.ctl import ctl_main
    from plaudit.journal import AsyncJournal

    facade = AsyncJournal(journal)
    handler = CommandHandler(cast(Any, SimpleNamespace(journal=facade, actors={}, config=config)))
    async with trio.open_nursery() as nursery:
        await nursery.start(facade.run)

        async def serve(task_status: Any) -> None:
            await serve_control(sock_path, handler, task_status=task_status)

        await nursery.start(serve)
        code: int = await trio.to_thread.run_sync(ctl_main, ["--socket", str(sock_path), *argv])
        nursery.cancel_scope.cancel()
    return code
