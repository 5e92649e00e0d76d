"""sd_notify messages received on a real datagram socket."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from plaudit.daemon.notify import SdNotifier, format_message, watchdog_interval, watchdog_loop


@pytest.fixture
def receiver() -> Iterator[tuple[str, socket.socket]]:
    """A bound datagram socket standing in for systemd's notification socket."""
    # pytest's tmp_path can exceed the 107-byte limit of AF_UNIX paths.
    directory = Path(tempfile.mkdtemp(prefix="notify-", dir="/tmp"))
    path = str(directory / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    yield path, sock
    sock.close()
    shutil.rmtree(directory, ignore_errors=True)


def received(sock: socket.socket) -> list[bytes]:
    """Drain every datagram already queued on the socket."""
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096))
        except BlockingIOError:
            return messages


def test_ready_message(receiver: tuple[str, socket.socket]) -> None:
    path, sock = receiver
    notifier = SdNotifier(path)

    assert notifier.ready()
    assert received(sock) == [b"READY=1"]


@pytest.mark.parametrize(
    ("send", "expected"),
    [
        (lambda notifier: notifier.watchdog(), b"WATCHDOG=1"),
        (lambda notifier: notifier.stopping(), b"STOPPING=1"),
        (lambda notifier: notifier.status("running: 3 actors"), b"STATUS=running: 3 actors"),
        (lambda notifier: notifier.notify(READY=1, STATUS="up"), b"READY=1\nSTATUS=up"),
    ],
)
def test_helper_messages(
    receiver: tuple[str, socket.socket], send: Callable[[SdNotifier], bool], expected: bytes
) -> None:
    path, sock = receiver
    send(SdNotifier(path))

    assert received(sock) == [expected]


def test_status_collapses_newlines(receiver: tuple[str, socket.socket]) -> None:
    path, sock = receiver
    SdNotifier(path).status("draining\n  2 jobs left")

    assert received(sock) == [b"STATUS=draining 2 jobs left"]


def test_reloading_sends_monotonic_time(receiver: tuple[str, socket.socket]) -> None:
    path, sock = receiver
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    SdNotifier(path).reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000

    [message] = received(sock)
    reloading, monotonic = message.decode().split("\n")
    assert reloading == "RELOADING=1"
    assert monotonic.startswith("MONOTONIC_USEC=")
    assert before <= int(monotonic.removeprefix("MONOTONIC_USEC=")) <= after


def test_abstract_namespace_address() -> None:
    name = f"plaudit-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.setblocking(False)
        notifier = SdNotifier.from_env({"NOTIFY_SOCKET": "@" + name})
        notifier.ready()

        assert received(sock) == [b"READY=1"]


def test_from_env_reads_notify_socket(receiver: tuple[str, socket.socket]) -> None:
    path, sock = receiver
    notifier = SdNotifier.from_env({"NOTIFY_SOCKET": path})
    notifier.stopping()

    assert notifier.enabled
    assert received(sock) == [b"STOPPING=1"]


def test_without_socket_is_noop() -> None:
    notifier = SdNotifier.from_env({})

    assert not notifier.enabled
    assert not notifier.ready()
    assert notifier.statistics().messages_sent == 0


def test_unsupported_address_disables() -> None:
    notifier = SdNotifier.from_env({"NOTIFY_SOCKET": "vsock:2:1234"})

    assert not notifier.enabled


def test_send_error_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="plaudit.daemon.notify")
    notifier = SdNotifier("/tmp/plaudit-no-such-dir/notify.sock")

    assert not notifier.ready()
    assert not notifier.ready()
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert [record.getMessage() for record in warnings] == ["notify.send_failed"]
    assert notifier.statistics().send_errors == 2


def test_invalid_field_name_rejected() -> None:
    with pytest.raises(ValueError, match="field name 'ready' is invalid"):
        format_message({"ready": 1})


def test_newline_in_value_rejected() -> None:
    with pytest.raises(ValueError, match="STATUS contains a newline"):
        format_message({"STATUS": "a\nb"})


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_from_env(environ: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(environ) == expected


async def test_watchdog_pings_at_half_interval(
    receiver: tuple[str, socket.socket], autojump_clock: trio.testing.MockClock
) -> None:
    path, sock = receiver
    notifier = SdNotifier(path)
    with trio.move_on_after(26):
        await watchdog_loop(notifier, interval=10, healthy=lambda: True)

    # Pings at 0, 5, 10, 15, 20 and 25 seconds.
    assert received(sock) == [b"WATCHDOG=1"] * 6


async def test_watchdog_withheld_while_unhealthy(
    receiver: tuple[str, socket.socket], autojump_clock: trio.testing.MockClock
) -> None:
    path, sock = receiver
    notifier = SdNotifier(path)
    start = trio.current_time()

    def healthy() -> bool:
        # Unhealthy from 10 s to 20 s: the pings at 10 and 15 s are withheld.
        return not 10 <= trio.current_time() - start < 20

    with trio.move_on_after(26):
        await watchdog_loop(notifier, interval=10, healthy=healthy)

    assert received(sock) == [b"WATCHDOG=1"] * 4


async def test_watchdog_rejects_zero_interval() -> None:
    with pytest.raises(ValueError, match="positive seconds"):
        await watchdog_loop(SdNotifier(None), interval=0, healthy=lambda: True)
