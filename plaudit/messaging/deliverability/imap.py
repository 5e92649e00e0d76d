"""An IMAP mailbox read with the standard library's imaplib: bounces and review notifications.

Every method blocks, so the actor calls them in a worker thread.  One pass
connects, lists the unseen messages, fetches each with ``BODY.PEEK[]`` (which
leaves it unseen) and flags it ``\\Seen`` only after its events are committed.
A message that cannot be classified is flagged ``\\Seen`` and
``$PlauditRejected``, so it stays in the mailbox for a person to read.  The
reason goes to the log.
"""

from __future__ import annotations

import imaplib
import ipaddress
import logging
import ssl
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final, Protocol, TypeVar, final

from plaudit.errors import PlauditError

log = logging.getLogger(__name__)

REJECTED_FLAG: Final = "$PlauditRejected"
# Seconds one network operation may take.
IMAP_TIMEOUT: Final = 30.0
T = TypeVar("T")


class ImapMailboxError(PlauditError, OSError):
    """The IMAP mailbox cannot be reached, logged into or read."""


class ImapSettings(Protocol):
    """The ``imap_*`` keys of [deliverability.mailbox] and of a marketplace profile."""

    @property
    def imap_host(self) -> str: ...
    @property
    def imap_port(self) -> int: ...
    @property
    def imap_user(self) -> str: ...
    @property
    def imap_password_file(self) -> str: ...
    @property
    def imap_folder(self) -> str: ...
    @property
    def imap_security(self) -> str: ...


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@final
class ImapSource:
    """The unseen messages of one IMAP folder."""

    def __init__(self, config: ImapSettings, *, state_dir: Path) -> None:
        """Keep the settings; a relative ``imap_password_file`` is taken from ``state_dir``."""
        if config.imap_security == "none" and not is_loopback(config.imap_host):
            raise ImapMailboxError(
                f"imap_security = 'none' with imap_host {config.imap_host!r} would send the "
                "password in clear text: use 'tls' or 'starttls', or a loopback host"
            )
        self.config = config
        self.state_dir = state_dir
        self.label = (
            f"imap://{config.imap_user}@{config.imap_host}:{config.imap_port}/{config.imap_folder}"
        )
        self._client: imaplib.IMAP4 | None = None
        self._validity = "0"

    def __repr__(self) -> str:
        return f"<ImapSource {self.label} connected={self._client is not None}>"

    def _list_new(self, limit: int) -> list[str]:
        client = self._connect()
        status, data = client.select(_quoted(self.config.imap_folder))
        if status != "OK":
            raise ImapMailboxError(
                f"cannot select folder {self.config.imap_folder!r} on {self.label}: "
                f"{_text(data)}; check imap_folder"
            )
        # The [UIDVALIDITY n] response code of SELECT; imaplib keeps it by name.
        _code, codes = client.response("UIDVALIDITY")
        validity = codes[0] if codes and isinstance(codes[0], bytes) else b"0"
        self._validity = validity.decode("ascii", "replace")
        status, data = client.uid("SEARCH", "UNSEEN")
        self._check(status, data, "search")
        found = (data[0] or b"").split() if data else []
        uids = [uid.decode() for uid in found if uid.isdigit()]
        return sorted(uids, key=int)[:limit]

    def _read(self, key: str, max_bytes: int) -> bytes:
        # NOTE: imaplib reads the whole literal into memory before the cut;
        # the server is the operator's own mailbox.
        status, data = self._require().uid("FETCH", key, "(BODY.PEEK[])")
        self._check(status, data, f"fetch of UID {key}")
        for item in data:
            if isinstance(item, tuple) and len(item) == 2:
                return bytes(item[1])[:max_bytes]
        return b""

    def list_new(self, limit: int) -> list[str]:
        """Connect, select the folder and return up to ``limit`` unseen UIDs, oldest first."""
        return self._guarded("listing", lambda: self._list_new(limit))

    def read(self, key: str, max_bytes: int) -> bytes:
        """Fetch a message without marking it seen; at most ``max_bytes`` are kept."""
        return self._guarded(f"fetch of UID {key}", lambda: self._read(key, max_bytes))

    def done(self, key: str) -> None:
        self._guarded(f"flagging UID {key} as seen", lambda: self._done(key))

    def reject(self, key: str, reason: str) -> None:
        self._guarded(f"flagging UID {key} as rejected", lambda: self._reject(key, reason))

    def _guarded(self, operation: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except imaplib.IMAP4.error as error:
            # Includes IMAP4.abort, raised when the server drops the connection.
            raise ImapMailboxError(f"IMAP {operation} on {self.label} failed: {error}") from error

    def event_id(self, key: str) -> str:
        # UIDs are unique only together with the folder's UIDVALIDITY (RFC 3501 section 2.3.1.1).
        return f"imap:{self.config.imap_folder}:{self._validity}:{key}"

    def _done(self, key: str) -> None:
        status, data = self._require().uid("STORE", key, "+FLAGS", "(\\Seen)")
        self._check(status, data, f"flagging UID {key} as seen")

    def _reject(self, key: str, reason: str) -> None:
        status, data = self._require().uid("STORE", key, "+FLAGS", f"(\\Seen {REJECTED_FLAG})")
        self._check(status, data, f"flagging UID {key} as rejected")
        log.warning(
            "imap.message_rejected", extra={"mailbox": self.label, "uid": key, "reason": reason}
        )

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.logout()
        except (imaplib.IMAP4.error, OSError):
            # The pass is over either way; the next one connects again.
            log.debug("bounces.imap_logout_failed", exc_info=True)

    def _connect(self) -> imaplib.IMAP4:
        self.close()
        config = self.config
        try:
            password = self._password()
            if config.imap_security == "tls":
                client: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    config.imap_host,
                    config.imap_port,
                    ssl_context=ssl.create_default_context(),
                    timeout=IMAP_TIMEOUT,
                )
            else:
                client = imaplib.IMAP4(config.imap_host, config.imap_port, timeout=IMAP_TIMEOUT)
                if config.imap_security == "starttls":
                    client.starttls(ssl.create_default_context())
            client.login(config.imap_user, password)
        except (imaplib.IMAP4.error, OSError, ssl.SSLError) as error:
            raise ImapMailboxError(
                f"cannot log in to {self.label}: {error}; check the host, port, "
                "imap_security, imap_user and imap_password_file"
            ) from error
        self._client = client
        return client

    def _password(self) -> str:
        path = self.state_dir / self.config.imap_password_file
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ImapMailboxError(
                f"cannot read imap_password_file {path}: {error.strerror}; "
                "create it with the mailbox password"
            ) from error

    def _require(self) -> imaplib.IMAP4:
        if self._client is None:
            raise ImapMailboxError(f"not connected to {self.label}; call list_new first")
        return self._client

    def _check(self, status: str, data: Sequence[object], operation: str) -> None:
        if status != "OK":
            raise ImapMailboxError(f"IMAP {operation} on {self.label} failed: {_text(data)}")


def _quoted(folder: str) -> str:
    escaped = folder.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _text(data: Sequence[object]) -> str:
    return " ".join(
        item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item) for item in data
    )
