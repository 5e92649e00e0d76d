"""Operator mistakes at start-up: one clear paragraph, no traceback, nothing lost."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from tests.support import DaemonDirs, open_daemon, plaudit_env, run_command, stop_daemon, wait_for

pytestmark = pytest.mark.slow

MINIMAL = """\
[daemon]
shutdown_timeout = 5.0

[metrics]
port = {port}
"""


def write_minimal(dirs: DaemonDirs, *, port: int = 0) -> None:
    dirs.config.write_text(MINIMAL.format(port=port), encoding="utf-8")


def run_to_exit(dirs: DaemonDirs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        run_command(dirs),
        capture_output=True,
        text=True,
        timeout=60,
        env=plaudit_env(),
        check=False,
    )


def test_corrupt_journal_is_reported_and_kept(tmp_path: Path) -> None:
    dirs = DaemonDirs(tmp_path)
    write_minimal(dirs)
    garbage = b"this is not a database\x00" * 200
    dirs.journal.write_bytes(garbage)
    result = run_to_exit(dirs)
    assert result.returncode == 1
    assert str(dirs.journal) in result.stderr
    assert "Traceback" not in result.stderr
    assert dirs.journal.read_bytes() == garbage


def test_invalid_config_names_key(tmp_path: Path) -> None:
    dirs = DaemonDirs(tmp_path)
    dirs.config.write_text("[daemon]\nshutdown_timout = 5\n", encoding="utf-8")
    result = run_to_exit(dirs)
    assert result.returncode == 1
    assert "shutdown_timout" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_platform_secret_file_stops_start(tmp_path: Path) -> None:
    dirs = DaemonDirs(tmp_path)
    missing = tmp_path / "google-secret.txt"
    dirs.config.write_text(
        MINIMAL.format(port=0)
        + f"""
[platforms.google]
api_base = "http://127.0.0.1:9/google/v4"
token_url = "http://127.0.0.1:9/google/oauth2/token"
client_id = "plaudit-test"
client_secret_file = "{missing}"
refresh_token = "test-refresh-token"

[[platforms.google.locations]]
account = "accounts/1"
location = "locations/2"
""",
        encoding="utf-8",
    )
    result = run_to_exit(dirs)
    assert result.returncode == 1
    assert str(missing) in result.stderr
    # Located at the key's line, as check-config does.
    key_line = (
        dirs.config.read_text(encoding="utf-8")
        .splitlines()
        .index(f'client_secret_file = "{missing}"')
    )
    assert f"{dirs.config}:{key_line + 1}:1: " in result.stderr
    assert "Traceback" not in result.stderr
    # It stopped before the journal was created.
    assert not dirs.journal.exists()


def test_metrics_port_taken_is_reported(tmp_path: Path) -> None:
    dirs = DaemonDirs(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        write_minimal(dirs, port=port)
        result = run_to_exit(dirs)
    assert result.returncode == 1
    assert f"metrics address 127.0.0.1:{port} is already in use" in result.stderr
    assert "[metrics] port" in result.stderr
    assert "Traceback" not in result.stderr


def test_inbound_port_taken_stops_start(tmp_path: Path) -> None:
    dirs = DaemonDirs(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = MINIMAL.format(port=0) + f'\n[inbound]\nhost = "127.0.0.1"\nport = {port}\n'
        dirs.config.write_text(config, encoding="utf-8")
        result = run_to_exit(dirs)
    assert result.returncode == 1
    assert f"inbound address 127.0.0.1:{port} is already in use" in result.stderr
    assert "[inbound] port" in result.stderr
    assert "metrics" not in result.stderr
    assert "Traceback" not in result.stderr
    # It stopped before the journal was created.
    assert not dirs.journal.exists()


async def test_second_daemon_on_same_state_dir_refused(tmp_path: Path) -> None:
    dirs = DaemonDirs(tmp_path)
    write_minimal(dirs)
    first = await open_daemon(dirs)
    await wait_for(dirs.socket.exists, timeout=30, what="the first daemon's control socket")
    second = await trio.to_thread.run_sync(run_to_exit, dirs)
    assert second.returncode == 1
    assert "another plaudit daemon" in second.stderr
    assert await stop_daemon(first) == 0


async def test_control_socket_in_use_is_reported(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    first_dirs = DaemonDirs(tmp_path / "a")
    write_minimal(first_dirs)
    first = await open_daemon(first_dirs)
    await wait_for(first_dirs.socket.exists, timeout=30, what="the first daemon's control socket")

    (tmp_path / "b").mkdir()
    second_dirs = DaemonDirs(tmp_path / "b")
    second_dirs.runtime = first_dirs.runtime
    second_dirs.socket = first_dirs.socket
    write_minimal(second_dirs)
    second = await trio.to_thread.run_sync(run_to_exit, second_dirs)
    assert second.returncode == 1
    assert str(first_dirs.socket) in second.stderr
    assert "Traceback" not in second.stderr
    assert await stop_daemon(first) == 0


def test_check_config_accepts_example() -> None:
    example = Path(__file__).resolve().parents[1] / "config" / "plaudit.example.toml"
    command = [sys.executable, "-m", "plaudit", "check-config", str(example)]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=60, env=plaudit_env(), check=False
    )
    assert result.returncode == 0, result.stderr


async def test_example_config_starts_daemon(tmp_path: Path) -> None:
    """The documented example runs as written, apart from its fixed ports."""
    example = Path(__file__).resolve().parents[1] / "config" / "plaudit.example.toml"
    dirs = DaemonDirs(tmp_path)
    # Port 0 keeps the test clear of whatever else listens on the documented ports.
    text = example.read_text(encoding="utf-8")
    # [smtp] keeps 587, because 0 is no port to connect to and no couple is
    # imported, so nothing connects to it.
    dirs.config.write_text(re.sub(r"(?m)^port = (?!587$)\d+$", "port = 0", text), encoding="utf-8")
    process = await open_daemon(dirs)
    await wait_for(dirs.socket.exists, timeout=30, what="the control socket")
    await wait_for(lambda: "daemon.ready" in dirs.log.read_text(), timeout=30, what="readiness")
    assert await stop_daemon(process) == 0
    assert "ERROR" not in dirs.log.read_text()
