"""``plaudit check-config PATH``: validate a configuration file without starting the daemon."""

from __future__ import annotations

from typing import TextIO

import msgspec

from plaudit.config.loader import load_config
from plaudit.config.model import Config, GoogleConfig
from plaudit.config.paths import read_secret
from plaudit.errors import ConfigError


def check_config(path: str, *, out: TextIO, err: TextIO) -> int:
    """Check the file at ``path`` and its secret files, and return the exit status.

    On success, writes "PATH: OK" and a one-line summary to ``out`` and
    returns 0.  Otherwise writes every problem to ``err``, one per line, and
    returns 1.
    """
    try:
        config = load_config(path)
    except ConfigError as exc:
        _print_problems(exc.problems, err)
        return 1

    problems = _check_secret_files(config)
    if problems:
        _print_problems(problems, err)
        return 1

    print(f"{path}: OK", file=out)
    print(summarize_config(config), file=out)
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


def _check_secret_files(config: Config) -> list[str]:
    google = config.platforms.google
    if google is None:
        return []

    problems: list[str] = []
    for key, value, file in _google_secrets(google):
        if not file:
            continue
        try:
            read_secret(value, file, key=key)
        except ConfigError as exc:
            problems.extend(exc.problems)
    return problems


def _google_secrets(google: GoogleConfig) -> list[tuple[str, str, str]]:
    fields = msgspec.structs.asdict(google)
    return [
        (f"platforms.google.{name}", fields[name], fields[f"{name}_file"])
        for name in ("client_secret", "refresh_token")
    ]


def _print_problems(problems: list[str], stream: TextIO) -> None:
    for problem in problems:
        print(problem, file=stream)
