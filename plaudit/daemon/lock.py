"""The exclusive lock beside the journal: one daemon per journal.

Holding the lock proves that no other process works from the same journal,
which lets the daemon return every lease left ``running`` by a previous
process at start-up instead of waiting for the leases to expire.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType
from typing import final

from plaudit.daemon.preflight import first_non_directory
from plaudit.errors import PlauditError


class StateLockError(PlauditError):
    """Another process has locked the journal, or the state directory is unusable."""


@final
class StateLock:
    """``flock`` on ``lock_path``, held for the daemon's lifetime; the file records the pid."""

    def __init__(self, lock_path: Path, *, state_dir: Path) -> None:
        self.lock_path = lock_path
        self.state_dir = state_dir
        self._fd: int | None = None

    def __repr__(self) -> str:
        return f"<StateLock {self.lock_path} held={self._fd is not None}>"

    def __enter__(self) -> StateLock:
        blocking = first_non_directory(self.state_dir)
        if blocking is not None:
            raise StateLockError(
                f"cannot use state directory {self.state_dir}: {blocking} is a file, not a "
                "directory. Name a directory with --state-dir or [daemon] state_dir, or move "
                "that file away."
            )
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
            self.lock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o640)
        except OSError as error:
            raise StateLockError(
                f"cannot use state directory {self.state_dir}: {error.strerror}. "
                "Create it and make it writable by the daemon's user, or pass --state-dir."
            ) from error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StateLockError(
                f"another plaudit daemon (pid {holder}) is using the journal beside "
                f"{self.lock_path}. Stop it first, or give this one its own --state-dir "
                "or journal.path."
            ) from error
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
