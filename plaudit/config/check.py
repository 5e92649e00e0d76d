"""``plaudit check-config PATH``: validate a configuration file without starting the daemon."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

import msgspec

from plaudit.config.credential_files import (
    CredentialFile,
    check_inbound_files,
    load_file,
    readable_by_others,
)
from plaudit.config.loader import load_config
from plaudit.config.locate import format_key_path, index_keys
from plaudit.config.model import Config, GoogleConfig, InboundConfig
from plaudit.config.paths import read_secret
from plaudit.errors import ConfigError


def check_config(path: str, *, out: TextIO, err: TextIO) -> int:
    """Check the file at ``path`` and its secret files, and return the exit status.

    On success, writes "PATH: OK" and a one-line summary to ``out``, each
    warning to ``err``, and returns 0.  Otherwise writes every problem to ``err``, one per line, and
    returns 1.
    """
    try:
        config = load_config(path)
    except ConfigError as exc:
        _print_problems(exc.problems, err)
        return 1

    problems, file_warnings = _check_secret_files(config)
    if problems:
        _print_problems(locate_problems(path, problems), err)
        return 1

    print(f"{path}: OK", file=out)
    print(summarize_config(config), file=out)
    for warning in file_warnings:
        print(f"{path}: warning: {warning}", file=err)
    # Imported here because the messaging package imports this package's model.
    from plaudit.messaging.unsubscribe_checks import config_warnings

    for warning in config_warnings(config):
        print(f"{path}: warning: {warning}", file=err)
    return 0


# The field, singular and plural of each platform's profiles, where not "locations".
_PROFILES = {
    "facebook": ("pages", "Page", "Pages"),
    "trustpilot": ("business_units", "business unit", "business units"),
    "yelp": ("businesses", "business", "businesses"),
    "marketplace": ("profiles", "profile", "profiles"),
}


def summarize_config(config: Config) -> str:
    """Describe in one line which platforms are enabled and how many locations each syncs."""
    enabled: list[str] = []
    disabled: list[str] = []
    for name in config.platforms.__struct_fields__:
        platform = getattr(config.platforms, name)
        if platform is None:
            continue
        if not platform.enabled:
            disabled.append(name)
            continue

        field, singular, plural = _PROFILES.get(name, ("locations", "location", "locations"))
        count = len(getattr(platform, field, ()))
        enabled.append(f"{name} ({count} {singular if count == 1 else plural})")

    summary = f"{len(enabled)} platform{'' if len(enabled) == 1 else 's'} enabled"
    if enabled:
        summary += ": " + ", ".join(enabled)
    if disabled:
        summary += f"; disabled: {', '.join(disabled)}"
    return summary


def _check_secret_files(config: Config) -> tuple[list[str], list[str]]:
    """Return the problems and warnings of the Google and ``[inbound]`` credential files."""
    problems: list[str] = []
    warnings: list[str] = []
    if config.inbound is not None:
        problems, warnings = check_inbound_files(config.inbound)
        if not problems:
            problems = _check_inbound_keys(config.inbound)
    google = config.platforms.google
    if google is None:
        return problems, warnings

    for key, value, file in _google_secrets(google):
        if not file:
            continue
        if value:
            try:
                read_secret(value, file, key=key)
            except ConfigError as exc:
                problems.extend(exc.problems)
            continue
        # Read here rather than by read_secret, which logs its warning without the path.
        entry = CredentialFile(key=tuple(f"{key}_file".split(".")), path=file, secret=True)
        _, problem = load_file(entry)
        if problem is not None:
            problems.append(problem)
            continue
        warning = readable_by_others(entry)
        if warning is not None:
            warnings.append(warning)
    return problems, warnings


def _check_inbound_keys(inbound: InboundConfig) -> list[str]:
    """Parse the inbound keys and certificates as ``plaudit run`` does; return the problem."""
    # Imported here because the inbound package imports this package's model.
    from plaudit.inbound.providers import CredentialError, Verifiers
    from plaudit.inbound.sns import TrustStoreError

    try:
        Verifiers(inbound, warn=False)
    except (CredentialError, TrustStoreError) as exc:
        return [str(exc)]
    return []


def _google_secrets(google: GoogleConfig) -> list[tuple[str, str, str]]:
    fields = msgspec.structs.asdict(google)
    return [
        (f"platforms.google.{name}", fields[name], fields[f"{name}_file"])
        for name in ("client_secret", "refresh_token")
    ]


def locate_problems(path: str, problems: list[str]) -> list[str]:
    """Prefix each credential-file problem with the config file and the line of its key.

    A problem names its key as ``: key.path:`` (see load_file); one that names
    no key of the file gets the file's name alone.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return problems
    keys = {format_key_path(key): position for key, position in index_keys(text).items()}
    located: list[str] = []
    for problem in problems:
        named = [key for key in keys if f" {key}:" in problem]
        if named:
            line, column = keys[max(named, key=len)]
            located.append(f"{path}:{line}:{column}: {problem}")
        else:
            located.append(f"{path}: {problem}")
    return located


def _print_problems(problems: list[str], stream: TextIO) -> None:
    for problem in problems:
        print(problem, file=stream)
