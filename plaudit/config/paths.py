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


def resolve_state_folders(config: Config, state_dir: Path) -> Config:
    """Return ``config`` with each marketplace profile's relative folders made absolute.

    ``maildir`` and ``import_folder`` are taken from ``state_dir`` unless
    absolute, as ``journal.path`` is, so ``plaudit run --state-dir`` moves
    them too.
    """
    marketplace = config.platforms.marketplace
    if marketplace is None:
        return config

    profiles = [
        msgspec.structs.replace(
            profile,
            maildir=_under(state_dir, profile.maildir),
            import_folder=_under(state_dir, profile.import_folder),
        )
        for profile in marketplace.profiles
    ]
    platforms = msgspec.structs.replace(
        config.platforms, marketplace=msgspec.structs.replace(marketplace, profiles=profiles)
    )
    return msgspec.structs.replace(config, platforms=platforms)


def _under(state_dir: Path, folder: str) -> str:
    return str(state_dir / folder) if folder else ""


def create_state_folders(config: Config, state_dir: Path) -> list[Path]:
    """Create the marketplace Maildirs and import folders that lie in ``state_dir``.

    ``config`` has its folders resolved by :func:`resolve_state_folders`.
    Folders elsewhere are the operator's to create, because a missing one
    there more likely means a wrong path or an unmounted disk.  Returns the
    folders created.  Raises ConfigError naming the key and the folder when
    one cannot be created.
    """
    marketplace = config.platforms.marketplace
    if marketplace is None or not marketplace.enabled:
        return []

    created: list[Path] = []
    for index, profile in enumerate(marketplace.profiles):
        key = f"platforms.marketplace.profiles[{index}]"
        folders: list[tuple[str, Path]] = []
        if profile.maildir and "mailbox" in profile.modes:
            maildir = Path(profile.maildir)
            folders += [(f"{key}.maildir", maildir / part) for part in ("new", "cur", "tmp")]
        if profile.import_folder and "import" in profile.modes:
            folders.append((f"{key}.import_folder", Path(profile.import_folder)))
        for folder_key, folder in folders:
            if folder.is_relative_to(state_dir) and _make_folder(folder, key=folder_key):
                created.append(folder)
    return created


def _make_folder(folder: Path, *, key: str) -> bool:
    if folder.is_dir():
        return False
    try:
        folder.mkdir(parents=True, mode=0o750)
    except FileExistsError as exc:
        raise ConfigError(
            key, [f"{key}: {folder} exists and is not a directory; remove it or change {key}"]
        ) from exc
    except OSError as exc:
        raise ConfigError(
            key, [f"{key}: failed to create {folder} ({exc.strerror}); create it or fix {key}"]
        ) from exc
    logger.info("config.folder_created", extra={"key": key, "folder": str(folder)})
    return True


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
