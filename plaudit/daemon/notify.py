"""systemd service notification (sd_notify) without libsystemd.

A notification is one datagram of ``KEY=value`` lines sent to the socket named
by ``$NOTIFY_SOCKET``: a filesystem path, or an abstract socket written with a
leading ``@``.  Without that variable (not started by systemd, or
``Type=simple``) the notifier is disabled and every call does nothing.

See sd_notify(3) for the fields; the ones used here are READY, STATUS,
WATCHDOG, STOPPING, RELOADING and MONOTONIC_USEC.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import final

import trio

logger = logging.getLogger(__name__)

_FIELD_NAME = re.compile(r"[A-Z][A-Z0-9_]*")


@dataclass(frozen=True, slots=True)
class NotifierStatistics:
    """Counters of an `SdNotifier`."""

    address: str | None
    enabled: bool
    messages_sent: int
    send_errors: int


@final
class SdNotifier:
    """Sends sd_notify datagrams to one address, or does nothing when it has none.

    ``address`` is the value of ``$NOTIFY_SOCKET``.  Send errors (OSError) are
    logged, the first as a warning and later ones at debug level, and not raised.
    """

    def __init__(self, address: str | None) -> None:
        self._address = address or None
        self._target = _socket_address(self._address)
        self._socket: socket.socket | None = None
        self._messages_sent = 0
        self._send_errors = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SdNotifier:
        """Build a notifier for ``$NOTIFY_SOCKET``; disabled when it is unset or unusable."""
        environ = os.environ if environ is None else environ
        return cls(environ.get("NOTIFY_SOCKET"))

    def __repr__(self) -> str:
        return f"<SdNotifier address={self._address!r} sent={self._messages_sent}>"

    @property
    def enabled(self) -> bool:
        return self._target is not None

    def statistics(self) -> NotifierStatistics:
        return NotifierStatistics(
            address=self._address,
            enabled=self.enabled,
            messages_sent=self._messages_sent,
            send_errors=self._send_errors,
        )

    def notify(self, **fields: str | int) -> bool:
        """Send the fields as one datagram, in the order given; return whether it was sent.

        Field names are sd_notify's upper-case names (READY, STATUS, ...).
        Raises ValueError for a lower-case name or a value with a newline.
        """
        message = format_message(fields)
        if self._target is None:
            return False

        try:
            self._send(message)
        except OSError as exc:
            self._log_send_error(exc)
            return False

        self._messages_sent += 1
        return True

    def ready(self) -> bool:
        return self.notify(READY=1)

    def status(self, text: str) -> bool:
        """Send a one-line STATUS shown by ``systemctl status``; newlines become spaces."""
        return self.notify(STATUS=" ".join(text.split()))

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG=1)

    def stopping(self) -> bool:
        return self.notify(STOPPING=1)

    def reloading(self) -> bool:
        """Send RELOADING=1 with the monotonic time; send `ready` once the reload is done.

        systemd (Type=notify-reload, version 253 and later) uses MONOTONIC_USEC
        to tell this reload from earlier ones.
        """
        now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify(RELOADING=1, MONOTONIC_USEC=now_usec)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _send(self, message: bytes) -> None:
        if self._target is None:
            return
        if self._socket is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            # A full receive queue then raises BlockingIOError, a send error,
            # instead of blocking the event loop.
            sock.setblocking(False)
            self._socket = sock
        self._socket.sendto(message, self._target)

    def _log_send_error(self, exc: OSError) -> None:
        self._send_errors += 1
        level = logging.WARNING if self._send_errors == 1 else logging.DEBUG
        logger.log(
            level,
            "notify.send_failed",
            extra={"address": self._address, "error": repr(exc), "errors": self._send_errors},
        )


def format_message(fields: Mapping[str, str | int]) -> bytes:
    """Encode fields as sd_notify's newline-separated ``KEY=value`` lines."""
    lines = []
    for name, value in fields.items():
        if not _FIELD_NAME.fullmatch(name):
            message = f"sd_notify field name {name!r} is invalid; use upper case like STATUS"
            raise ValueError(message)
        text = str(value)
        if "\n" in text:
            raise ValueError(f"sd_notify field {name} contains a newline; send one line")
        lines.append(f"{name}={text}")
    return "\n".join(lines).encode()


def _socket_address(address: str | None) -> str | None:
    """Translate ``$NOTIFY_SOCKET`` into a sendto() address, or None when unusable."""
    if address is None:
        return None
    if address.startswith("@"):
        # Linux abstract namespace: a leading NUL instead of a path.
        return "\0" + address[1:]
    if address.startswith("/"):
        return address

    # systemd 254 also accepts "vsock:CID:PORT", which only VMs use.
    logger.warning("notify.unsupported_address", extra={"address": address})
    return None


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Return the watchdog timeout in seconds from ``$WATCHDOG_USEC``, or None.

    None also when ``$WATCHDOG_PID`` names another process, because the
    watchdog then belongs to that process.
    """
    environ = os.environ if environ is None else environ
    usec_text = environ.get("WATCHDOG_USEC")
    if not usec_text:
        return None

    pid_text = environ.get("WATCHDOG_PID")
    if pid_text and pid_text != str(os.getpid()):
        return None

    try:
        usec = int(usec_text)
    except ValueError:
        usec = 0
    if usec <= 0:
        logger.warning("notify.invalid_watchdog_usec", extra={"value": usec_text})
        return None
    return usec / 1_000_000


async def watchdog_loop(
    notifier: SdNotifier, *, interval: float, healthy: Callable[[], bool]
) -> None:
    """Send WATCHDOG=1 every ``interval / 2`` seconds while ``healthy()`` returns True.

    While it returns False the pings stop, so systemd restarts the service once
    ``interval`` seconds pass without one.  Runs until cancelled.
    """
    if interval <= 0:
        raise ValueError(f"watchdog interval must be positive seconds, got {interval}")

    was_healthy = True
    while True:
        is_healthy = healthy()
        if is_healthy:
            notifier.watchdog()
        if is_healthy != was_healthy:
            if is_healthy:
                logger.info("notify.watchdog_resumed")
            else:
                logger.warning("notify.watchdog_withheld", extra={"interval_seconds": interval})
            was_healthy = is_healthy
        await trio.sleep(interval / 2)
