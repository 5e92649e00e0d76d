"""Files the daemon uses: resolved directories and sockets, and secret files.

Also the bounded file read and the ``OSError`` wording that the config loader
shares with ``read_secret``.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path
from typing import Final, final

import msgspec

from plaudit.config.model import Config
from plaudit.errors import ConfigError

logger = logging.getLogger(__name__)

# A secret file contains one token or key, so a larger file is the wrong file.
MAX_SECRET_BYTES: Final = 64 * 1024
# Suffix of the lock file that sits beside the journal.
LOCK_SUFFIX: Final = ".lock"


@final
class Paths(msgspec.Struct, frozen=True, kw_only=True):
    """Absolute locations of the daemon's files after overrides are applied."""

    state_dir: Path
    runtime_dir: Path
    # In state_dir unless journal.path is absolute.
    journal_path: Path
    # In runtime_dir unless control.socket is absolute.
    control_socket: Path
    # Held with an exclusive lock while a daemon uses the journal.  It sits
    # beside the journal, so two daemons cannot share one journal even when
    # journal.path is absolute and their state directories differ.
    lock_path: Path


def resolve_paths(
    config: Config, *, state_dir: str | None = None, runtime_dir: str | None = None
) -> Paths:
    """Resolve the daemon's file locations from ``config``.

    ``state_dir`` and ``runtime_dir``, when given, override the config.
    Relative directories, which only an override can supply because the
    config rules reject them, are taken relative to the working directory.
    """
    state = Path(state_dir if state_dir is not None else config.daemon.state_dir).absolute()
    runtime = Path(runtime_dir if runtime_dir is not None else config.daemon.runtime_dir).absolute()
    journal = state / config.journal.path
    return Paths(
        state_dir=state,
        runtime_dir=runtime,
        journal_path=journal,
        control_socket=runtime / config.control.socket,
        lock_path=journal.with_name(journal.name + LOCK_SUFFIX),
    )


def read_secret(value: str, file: str, *, key: str) -> str:
    """Return ``value``, or the content of ``file`` without surrounding whitespace.

    ``key`` is the key path of the value, such as
    ``platforms.google.client_secret``.  The file's key is the same with
    ``_file`` appended.  Raises ConfigError, naming the key and the file,
    unless exactly one of the two is set and the file can be read.
    """
    file_key = f"{key}_file"
    if value and file:
        raise ConfigError(key, [f"{key}: both {key} and {file_key} are set; keep only one"])
    if value:
        return value
    if not file:
        raise ConfigError(key, [f"{key}: missing; set {key} or {file_key}"])

    secret = _read_secret_file(file, file_key)
    if not secret:
        raise ConfigError(file, [f"{file}: {file_key}: the file is empty; write the secret in it"])
    return secret


def _read_secret_file(file: str, file_key: str) -> str:
    try:
        data = read_bounded(file, MAX_SECRET_BYTES)
        text = data.decode("utf-8")
    except OSError as exc:
        raise ConfigError(file, [f"{file}: {file_key}: {describe_read_error(exc)}"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            file, [f"{file}: {file_key}: the file is not valid UTF-8; save the secret as UTF-8"]
        ) from exc

    _warn_if_readable_by_others(file, file_key)
    return text.strip()


def _warn_if_readable_by_others(file: str, file_key: str) -> None:
    try:
        mode = os.stat(file).st_mode
    except OSError:
        # The file was read a moment ago, so a failing stat only loses the warning.
        return
    if mode & stat.S_IROTH:
        logger.warning(
            "config.secret_file_readable_by_others",
            extra={"key": file_key, "file": file, "mode": oct(stat.S_IMODE(mode))},
        )


@final
class FileTooLargeError(OSError):
    """A file is larger than its reader allows."""

    def __init__(self, path: str, max_bytes: int) -> None:
        super().__init__(errno.EFBIG, f"larger than {max_bytes} bytes", path)
        self.max_bytes = max_bytes


@final
class NotRegularFileError(OSError):
    """A path names a device, pipe or socket rather than a regular file."""

    def __init__(self, path: str) -> None:
        super().__init__(errno.EINVAL, "not a regular file", path)


def read_bounded(path: str, max_bytes: int) -> bytes:
    """Read the regular file ``path``, which must have at most ``max_bytes`` bytes.

    Raises OSError: IsADirectoryError, NotRegularFileError, FileTooLargeError or
    whatever opening and reading raise.
    """
    # O_NONBLOCK keeps open() from waiting for a writer when the path is a FIFO.
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with open(descriptor, "rb") as stream:
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(path)

        data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileTooLargeError(path, max_bytes)
    return data


def describe_read_error(exc: OSError) -> str:
    """Word a failed file read as "what is wrong; what to do"."""
    if isinstance(exc, FileTooLargeError):
        return (
            f"the file is larger than {exc.max_bytes} bytes; "
            "check that the path names the right file"
        )
    if isinstance(exc, NotRegularFileError):
        return "not a regular file; give the path of a file"
    if isinstance(exc, FileNotFoundError):
        return "file not found; check the path"
    if isinstance(exc, IsADirectoryError):
        return "is a directory; give the path of a file"
    if isinstance(exc, PermissionError):
        return "permission denied; make the file readable by the user that runs plaudit"
    return f"cannot read the file ({exc.strerror or exc}); check the file and its disk"
