"""Checks and reads of credential files: those of ``[inbound]`` and Google's secret files.

``plaudit run`` reads the inbound files when it builds the listener, and
``plaudit check-config`` reports the same problems without starting it:
a relative path, a missing file, a directory, an unreadable or non-UTF-8
file, and an empty or whitespace-only file.  An empty secret would let a
provider signature computed with the empty key pass, so it is rejected.  A
secret file that other users can read gets a warning, as Google secret
files do.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterator
from typing import Final, final

import msgspec

from plaudit.config.model import Config, InboundConfig
from plaudit.config.paths import describe_read_error, read_bounded
from plaudit.errors import ConfigError

logger = logging.getLogger(__name__)

# Secrets and public keys are short; a larger file is the wrong file.
MAX_FILE_BYTES: Final = 64 * 1024

KeyPath = tuple[str | int, ...]


@final
class CredentialFile(msgspec.Struct, frozen=True, kw_only=True):
    """One credential file and the configuration key that names it."""

    key: KeyPath
    path: str
    # True for shared secrets, whose file other users must not read.
    secret: bool
    # True where a directory of *.pem files is accepted (SNS certificates).
    directory_allowed: bool = False

    @property
    def key_text(self) -> str:
        return ".".join(str(part) for part in self.key)


def inbound_files(inbound: InboundConfig) -> list[CredentialFile]:
    """List every credential file of the configured providers, with its key path."""
    files: list[CredentialFile] = []
    table = ("inbound",)
    key: KeyPath
    if inbound.sendgrid is not None:
        key = (*table, "sendgrid", "public_key_file")
        files.append(CredentialFile(key=key, path=inbound.sendgrid.public_key_file, secret=False))

    if inbound.mailgun is not None:
        key = (*table, "mailgun", "signing_key_file")
        files.append(CredentialFile(key=key, path=inbound.mailgun.signing_key_file, secret=True))

    if inbound.postmark is not None:
        key = (*table, "postmark", "password_file")
        files.append(CredentialFile(key=key, path=inbound.postmark.password_file, secret=True))

    if inbound.ses is not None:
        for index, path in enumerate(inbound.ses.certificates):
            key = (*table, "ses", "certificates", index)
            files.append(CredentialFile(key=key, path=path, secret=False, directory_allowed=True))

    if inbound.twilio is not None:
        key = (*table, "twilio", "auth_token_file")
        files.append(CredentialFile(key=key, path=inbound.twilio.auth_token_file, secret=True))

    if inbound.resend is not None:
        key = (*table, "resend", "secret_file")
        files.append(CredentialFile(key=key, path=inbound.resend.secret_file, secret=True))

    if inbound.facebook is not None:
        key = (*table, "facebook", "app_secret_file")
        files.append(CredentialFile(key=key, path=inbound.facebook.app_secret_file, secret=True))
        if inbound.facebook.verify_token_file:
            key = (*table, "facebook", "verify_token_file")
            token_file = inbound.facebook.verify_token_file
            files.append(CredentialFile(key=key, path=token_file, secret=True))

    if inbound.google is not None:
        for index, path in enumerate(inbound.google.certificates):
            key = (*table, "google", "certificates", index)
            files.append(CredentialFile(key=key, path=path, secret=False))

    return files


def check_inbound_paths(config: Config) -> Iterator[tuple[KeyPath, str]]:
    """Yield a problem for every relative credential path in ``[inbound]`` (a config rule)."""
    if config.inbound is None:
        return
    for entry in inbound_files(config.inbound):
        if not os.path.isabs(entry.path):
            yield (
                entry.key,
                f"relative path {json.dumps(entry.path)}; use an absolute path, because the "
                "daemon does not run in the directory of the configuration file",
            )


def load_file(entry: CredentialFile) -> tuple[bytes, str | None]:
    """Read ``entry`` once: its bytes, and why it cannot be used (naming the file, the key and
    the fix) or None.  A directory where one is allowed reads as no bytes and no problem.
    """
    if entry.directory_allowed and os.path.isdir(entry.path):
        return b"", None
    try:
        data = read_bounded(entry.path, MAX_FILE_BYTES)
    except OSError as exc:
        return b"", f"{entry.path}: {entry.key_text}: {describe_read_error(exc)}"
    if not entry.secret:
        if not data.strip():
            return (
                data,
                f"{entry.path}: {entry.key_text}: the file is empty; write the PEM key in it",
            )
        return data, None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return (
            data,
            f"{entry.path}: {entry.key_text}: the file is not valid UTF-8; save it as UTF-8",
        )
    if not text.strip():
        return data, (
            f"{entry.path}: {entry.key_text}: the file is empty or only whitespace; "
            "write the secret in it"
        )
    return data, None


def readable_by_others(entry: CredentialFile) -> str | None:
    """Return a warning when other users can read the secret file ``entry``, else None."""
    if not entry.secret:
        return None
    try:
        mode = os.stat(entry.path).st_mode
    except OSError:
        return None
    if not mode & stat.S_IROTH:
        return None
    return (
        f"{entry.path}: {entry.key_text}: other users can read this secret file "
        f"(mode {oct(stat.S_IMODE(mode))}); run chmod 600 {entry.path}"
    )


def check_inbound_files(inbound: InboundConfig) -> tuple[list[str], list[str]]:
    """Return the problems and the warnings of every credential file, without logging."""
    problems: list[str] = []
    warnings: list[str] = []
    for entry in inbound_files(inbound):
        _, problem = load_file(entry)
        if problem is not None:
            problems.append(problem)
            continue
        warning = readable_by_others(entry)
        if warning is not None:
            warnings.append(warning)
    return problems, warnings


def read_credential_file(entry: CredentialFile, *, warn: bool = True) -> bytes:
    """Return the bytes of ``entry``; a secret file is also checked for other readers.

    Raises ConfigError naming the file, the key and the fix when the file
    cannot be used (see ``load_file``).  With ``warn``, logs a warning when
    other users can read a secret file.
    """
    data, problem = load_file(entry)
    if problem is not None:
        raise ConfigError(entry.path, [problem])
    warning = readable_by_others(entry) if warn else None
    if warning is not None:
        logger.warning(
            "config.secret_file_readable_by_others",
            extra={"key": entry.key_text, "file": entry.path, "problem": warning},
        )
    return data


def require_inbound_files(config: Config, config_path: str) -> None:
    """Raise ConfigError listing every unusable ``[inbound]`` credential file.

    The daemon calls this before it opens the journal, so a bad file stops
    it before anything is written.
    """
    if config.inbound is None:
        return
    problems, _ = check_inbound_files(config.inbound)
    if problems:
        raise ConfigError(config_path, problems)
