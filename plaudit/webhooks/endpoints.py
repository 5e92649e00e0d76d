"""Webhook endpoints as the delivery code uses them, built from the configuration.

:func:`check_endpoints` lists every problem of the ``[webhooks]`` table for
the config loader; :func:`build_endpoints` turns a valid table into
:class:`Endpoint` objects with decoded secrets.
"""

from __future__ import annotations

import json
import re
import ssl
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final, final

from plaudit.config.model import WebhookEndpoint, WebhooksConfig
from plaudit.webhooks.catalogue import unknown_pattern_error
from plaudit.webhooks.signing import InvalidSecretError, Secret

# Endpoint names go into idempotency keys, webhook ids and metric labels.
_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
_EVENT_PATTERN: Final = re.compile(r"\*|[a-z0-9_]+(\.[a-z0-9_]+)*(\.\*)?")
_TABLE: Final = "webhooks.endpoints"


@final
@dataclass(frozen=True, slots=True)
class Endpoint:
    """One configured receiver with its decoded secrets and retry schedule."""

    name: str
    url: str
    secrets: tuple[Secret, ...]
    events: tuple[str, ...]
    enabled: bool
    # Seconds before attempt 2, 3, ...; attempt 1 is at once.
    retry_schedule: tuple[float, ...]
    timeout: float
    disable_after: float
    allow_private: bool
    max_in_flight: int = 1
    # PEM file of trusted CAs for an https receiver, or "" for the system bundle.
    ca_file: str = ""
    # Attempts started per second at most; 0 sets no limit.
    max_per_second: float = 0.0

    @property
    def max_attempts(self) -> int:
        return len(self.retry_schedule) + 1

    def wants(self, event_type: str) -> bool:
        """Tell whether this endpoint subscribes to events of ``event_type``."""
        return any(matches(pattern, event_type) for pattern in self.events)


def matches(pattern: str, event_type: str) -> bool:
    """Match ``*`` (every type), ``prefix.*`` (types under the prefix) or an exact type."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def build_endpoints(config: WebhooksConfig) -> tuple[Endpoint, ...]:
    """Return the configured endpoints; raise ValueError on an invalid one."""
    problems = list(check_endpoints(config))
    if problems:
        raise ValueError("; ".join(f"{path}: {message}" for path, message in problems))
    return tuple(_build(entry) for entry in config.endpoints)


def _build(entry: WebhookEndpoint) -> Endpoint:
    return Endpoint(
        name=entry.name,
        url=entry.url,
        secrets=tuple(Secret.parse(text) for text in entry.secrets),
        events=tuple(entry.events),
        enabled=entry.enabled,
        retry_schedule=tuple(float(delay) for delay in entry.retry_schedule),
        timeout=float(entry.timeout),
        disable_after=float(entry.disable_after),
        allow_private=entry.allow_private,
        max_in_flight=entry.max_in_flight,
        ca_file=entry.ca_file,
        max_per_second=entry.max_per_second,
    )


def check_endpoints(config: WebhooksConfig) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Yield (key path under ``webhooks``, message) for every invalid endpoint setting."""
    seen: dict[str, int] = {}
    for index, entry in enumerate(config.endpoints):
        path: tuple[str | int, ...] = ("endpoints", index)
        if not _NAME.fullmatch(entry.name):
            yield (
                (*path, "name"),
                (
                    f"invalid name {json.dumps(entry.name)}; use 1 to 63 lower-case letters, "
                    'digits, "_", "." or "-", starting with a letter or digit'
                ),
            )
        elif entry.name in seen:
            yield (
                (*path, "name"),
                (
                    f"duplicate of {_TABLE}[{seen[entry.name]}] ({entry.name}); "
                    "give each endpoint its own name"
                ),
            )
        else:
            seen[entry.name] = index
        url_problem = url_error(entry.url)
        if url_problem:
            yield (*path, "url"), url_problem
        ca_problem = ca_file_error(entry.ca_file, entry.url)
        if ca_problem:
            yield (*path, "ca_file"), ca_problem
        yield from _check_secrets((*path, "secrets"), entry.secrets)
        yield from _check_events((*path, "events"), entry.events)


def url_error(url: str) -> str:
    """Return why ``url`` cannot be a webhook target, or an empty string when it can."""
    quoted = json.dumps(url)
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - reading the port validates it
    except ValueError as error:
        return f"invalid URL {quoted} ({error})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{quoted} is not an http:// or https:// URL with a host"
    if parts.username or parts.password:
        return f"{quoted} contains credentials; authenticate receivers by the signature instead"
    if parts.fragment:
        return f"{quoted} has a fragment, which is never sent; remove it"
    return ""


def ca_file_error(ca_file: str, url: str) -> str:
    """Return why ``ca_file`` cannot verify ``url``'s receiver, or "" when it can."""
    if not ca_file:
        return ""
    quoted = json.dumps(ca_file)
    if not url.lower().startswith("https://"):
        return f"{quoted} is set for a plain http:// URL; use an https:// URL or remove ca_file"
    try:
        ssl.create_default_context(cafile=ca_file)
    except FileNotFoundError:
        return f"CA file {quoted} not found; give the path of a PEM file of CA certificates"
    except (OSError, ssl.SSLError) as error:
        return (
            f"cannot load CA file {quoted} ({error}); "
            "it must be a readable PEM file of CA certificates"
        )
    return ""


def _check_secrets(
    path: tuple[str | int, ...], secrets: Sequence[str]
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    if not secrets:
        yield (
            path,
            (
                "no secrets; add at least one whsec_ secret (generate one with "
                "`python -m plaudit.webhooks.signing`)"
            ),
        )
    for number, text in enumerate(secrets):
        try:
            Secret.parse(text)
        except InvalidSecretError as error:
            # The message never repeats the secret itself.
            yield (*path, number), str(error)


def _check_events(
    path: tuple[str | int, ...], events: Sequence[str]
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    if not events:
        yield path, 'empty; list event types such as "review.created", or "*" for every event'
    for number, pattern in enumerate(events):
        if not _EVENT_PATTERN.fullmatch(pattern):
            yield (
                (*path, number),
                (
                    f"invalid event pattern {json.dumps(pattern)}; write an event type such as "
                    '"review.created", a prefix such as "review.*", or "*"'
                ),
            )
            continue
        unknown = unknown_pattern_error(pattern)
        if unknown:
            yield (*path, number), unknown
