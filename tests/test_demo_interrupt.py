"""Ctrl-C in a terminal running ``plaudit demo`` or ``plaudit demo --chaos``.

The demo stops its daemon itself and exits 130 with "plaudit: interrupted".

A terminal sends SIGINT to the whole foreground process group, so the test
starts the demo in a group of its own and signals that group.  Real
processes; each wait states its limit at the call.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import plaudit_env

pytestmark = pytest.mark.slow


def read_daemon_pid(process: subprocess.Popen[bytes], *, seconds: float) -> tuple[int | None, str]:
    """Return the pid from the demo's "daemon[ started]: pid N" line, or None, and the text read.

    Reads the pipe's file descriptor directly, so no buffered line escapes ``select``.
    """
    assert process.stderr is not None
    descriptor = process.stderr.fileno()
    text = ""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([descriptor], [], [], left)
        if not readable:
            break
        chunk = os.read(descriptor, 65536)
        if not chunk:
            break
        text += chunk.decode("utf-8", errors="replace")
        found = re.search(r"daemon(?: started)?: pid (\d+)", text)
        if found:
            return int(found.group(1)), text
    return None, text


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize(
    "options",
    [["--seconds", "120"], ["--chaos", "--seconds", "60"]],
    ids=["demo", "chaos"],
)
def test_ctrl_c_stops_demo_and_daemon(tmp_path: Path, options: list[str]) -> None:
    """Waits at most 120 s for the daemon to start and 90 s for the demo to end."""
    command = [
        sys.executable, "-m", "plaudit", "demo", *options,
        "--json", "--state-dir", str(tmp_path / "state"),
    ]  # fmt: skip
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=plaudit_env(),
        start_new_session=True,
    ) as demo:
        try:
            daemon_pid, progress = read_daemon_pid(demo, seconds=120.0)
            # Let the daemon get past its start-up, as an operator's Ctrl-C would.
            time.sleep(3.0)
            os.killpg(demo.pid, signal.SIGINT)
            _, rest = demo.communicate(timeout=90)
            stderr = progress + rest.decode("utf-8", errors="replace")
        finally:
            if demo.poll() is None:
                os.killpg(demo.pid, signal.SIGKILL)

    assert daemon_pid is not None
    assert demo.returncode == 130, stderr[-3000:]
    assert "plaudit: interrupted" in stderr
    assert "Traceback" not in stderr
    assert "exited early" not in stderr
    assert not running(daemon_pid)
    log = (tmp_path / "state" / "daemon.log").read_text(encoding="utf-8")
    # The demo, not the terminal, stopped the daemon, which drained and closed its journal.
    assert "daemon.signal signal=SIGTERM" in log
    assert "signal=SIGINT" not in log
    assert "daemon.stopped" in log
