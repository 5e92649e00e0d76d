"""Semantic rules that a decoded configuration must also satisfy.

The structs check each value on its own (type, bounds, choices).  These rules
check what they cannot express: value formats such as file modes and
addresses, and relations between keys such as "exactly one of the secret and
the secret file".
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from typing import Final

from plaudit.config.locate import KeyPath
from plaudit.config.model import Config, ControlConfig, GoogleConfig, GoogleLocation
from plaudit.config.validate import Problem

Rule = Callable[[Config], Iterator[Problem]]

# Linux limits a Unix socket path to 108 bytes including the terminating NUL.
MAX_SOCKET_PATH_BYTES: Final = 107
_OCTAL_MODE = re.compile(r"[0-7]{3,4}")
# Google resource ids go into request URL paths, so only URL-safe characters
# are allowed.  Real ids are decimal digits.
_ACCOUNT_NAME = re.compile(r"accounts/[A-Za-z0-9_-]+")
_LOCATION_NAME = re.compile(r"locations/[A-Za-z0-9_-]+")
_GOOGLE: Final = ("platforms", "google")


def check_rules(config: Config, *, invalid: Iterable[KeyPath]) -> list[Problem]:
    """Return every rule violation in ``config``.

    ``invalid`` lists the keys whose values were invalid.  In ``config`` a
    default or stand-in replaces them, so a verdict on them would mislead.
    A rule is skipped when a key it reads is invalid, and a problem is
    dropped when its own key is.
    """
    invalid_paths = list(invalid)
    problems: list[Problem] = []
    for reads, rule in _RULES:
        if any(_overlaps(read, bad) for read in reads for bad in invalid_paths):
            continue
        problems.extend(
            problem
            for problem in rule(config)
            if not any(_overlaps(problem.path, bad) for bad in invalid_paths)
        )
    return problems


def _overlaps(first: KeyPath, second: KeyPath) -> bool:
    length = min(len(first), len(second))
    return first[:length] == second[:length]


def _check_directories(config: Config) -> Iterator[Problem]:
    for name, example in (("state_dir", "/var/lib/plaudit"), ("runtime_dir", "/run/plaudit")):
        value: str = getattr(config.daemon, name)
        if not os.path.isabs(value):
            yield Problem(
                ("daemon", name),
                f'relative path {json.dumps(value)}; use an absolute path such as "{example}"',
            )


def _check_journal_path(config: Config) -> Iterator[Problem]:
    if not config.journal.path:
        yield Problem(("journal", "path"), 'empty; set a file name such as "journal.sqlite3"')


def _check_retry_range(config: Config) -> Iterator[Problem]:
    journal = config.journal
    if journal.retry_initial > journal.retry_max:
        yield _range_problem(
            "journal", "retry_initial", "retry_max", journal.retry_initial, journal.retry_max
        )


def _check_backoff_range(config: Config) -> Iterator[Problem]:
    supervisor = config.supervisor
    if supervisor.backoff_initial > supervisor.backoff_max:
        yield _range_problem(
            "supervisor",
            "backoff_initial",
            "backoff_max",
            supervisor.backoff_initial,
            supervisor.backoff_max,
        )


def _range_problem(table: str, low: str, high: str, low_value: float, high_value: float) -> Problem:
    return Problem(
        (table, low),
        f"{low_value:g} s is greater than {table}.{high} ({high_value:g} s); "
        f"lower {low} or raise {high}",
    )


def _check_socket_mode(config: Config) -> Iterator[Problem]:
    mode = config.control.mode
    path = ("control", "mode")
    if not _OCTAL_MODE.fullmatch(mode):
        yield Problem(
            path, f'invalid file mode {json.dumps(mode)}; write it in octal, such as "0660"'
        )
        return

    bits = int(mode, 8)
    if bits > 0o777:
        yield Problem(
            path,
            f"file mode {mode} sets setuid, setgid or sticky bits; use permission bits only, "
            f'such as "0660"',
        )
    elif bits & 0o002:
        yield Problem(
            path,
            f"file mode {mode} lets every local user write to the control socket; "
            f'remove write permission for others, such as "0660"',
        )


def _check_socket_path(config: Config) -> Iterator[Problem]:
    socket = config.control.socket
    if not socket:
        yield Problem(("control", "socket"), 'empty; set a file name such as "control.sock"')
        return

    resolved = os.path.join(config.daemon.runtime_dir, socket)
    size = len(os.fsencode(resolved))
    if size <= MAX_SOCKET_PATH_BYTES:
        return

    # Point at daemon.runtime_dir unless control.socket differs from its default.
    relative_default = not os.path.isabs(socket) and socket == ControlConfig().socket
    path = ("daemon", "runtime_dir") if relative_default else ("control", "socket")
    yield Problem(
        path,
        f"control socket path {resolved} is {size} bytes, longer than the "
        f"{MAX_SOCKET_PATH_BYTES} bytes a Unix socket path may have; "
        "shorten daemon.runtime_dir or control.socket",
    )


def _check_metrics_host(config: Config) -> Iterator[Problem]:
    host = config.metrics.host
    try:
        ipaddress.ip_address(host)
    except ValueError:
        yield Problem(
            ("metrics", "host"),
            f'{json.dumps(host)} is not an IP address; use an address such as "127.0.0.1" '
            'or "::1", because the metrics endpoint does not resolve hostnames',
        )


def _check_google_urls(config: Config) -> Iterator[Problem]:
    google = config.platforms.google
    if google is None:
        return

    for name in ("api_base", "token_url"):
        reason = _url_problem(getattr(google, name))
        if reason:
            yield Problem((*_GOOGLE, name), f"{reason}; use an absolute http:// or https:// URL")


def _url_problem(url: str) -> str:
    """Return why ``url`` is not a usable http(s) endpoint, or "" when it is."""
    quoted_url = json.dumps(url)
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018  Parsing the port raises ValueError when it is invalid.
    except ValueError as exc:
        return f"invalid URL {quoted_url} ({exc})"

    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{quoted_url} is not an http(s) URL with a host"
    if parts.query or parts.fragment:
        return f"{quoted_url} has a query or fragment, which request paths cannot be appended to"
    return ""


def _check_google_client_id(config: Config) -> Iterator[Problem]:
    google = config.platforms.google
    if google is not None and not google.client_id:
        yield Problem(
            (*_GOOGLE, "client_id"),
            "empty; set the OAuth client id of the Google Cloud project",
        )


def _check_google_client_secret(config: Config) -> Iterator[Problem]:
    google = config.platforms.google
    if google is not None:
        yield from _check_secret_pair(
            google.client_secret, google.client_secret_file, "client_secret"
        )


def _check_google_refresh_token(config: Config) -> Iterator[Problem]:
    google = config.platforms.google
    if google is not None:
        yield from _check_secret_pair(
            google.refresh_token, google.refresh_token_file, "refresh_token"
        )


def _check_secret_pair(value: str, file: str, name: str) -> Iterator[Problem]:
    file_key = f"{name}_file"
    if value and file:
        yield Problem(
            (*_GOOGLE, file_key),
            f"both {name} and {file_key} are set; keep only one of them",
        )
    elif not value and not file:
        yield Problem((*_GOOGLE, name), f"missing; set {name} or {file_key}")
    elif file and not os.path.isabs(file):
        yield Problem(
            (*_GOOGLE, file_key),
            f"relative path {json.dumps(file)}; use an absolute path, because the daemon "
            "does not run in the directory of the configuration file",
        )


def _check_google_locations(config: Config) -> Iterator[Problem]:
    google = config.platforms.google
    if google is None:
        return

    if google.enabled and not google.locations:
        yield Problem(
            (*_GOOGLE, "locations"),
            "no locations configured; add a [[platforms.google.locations]] table with "
            "account and location, or set enabled = false",
        )
    for index, location in enumerate(google.locations):
        yield from _check_location_names(location, index)
    yield from _check_duplicate_locations(google)


def _check_location_names(location: GoogleLocation, index: int) -> Iterator[Problem]:
    path = (*_GOOGLE, "locations", index)
    if not _ACCOUNT_NAME.fullmatch(location.account):
        yield Problem(
            (*path, "account"),
            f"invalid resource name {json.dumps(location.account)}; "
            'write it as "accounts/<id>", such as "accounts/1001"',
        )
    if not _LOCATION_NAME.fullmatch(location.location):
        yield Problem(
            (*path, "location"),
            f"invalid resource name {json.dumps(location.location)}; "
            'write it as "locations/<id>", such as "locations/2001", without the account',
        )


def _check_duplicate_locations(google: GoogleConfig) -> Iterator[Problem]:
    first_index: dict[tuple[str, str], int] = {}
    for index, location in enumerate(google.locations):
        pair = (location.account, location.location)
        if pair not in first_index:
            first_index[pair] = index
            continue

        yield Problem(
            (*_GOOGLE, "locations", index),
            f"duplicate of locations[{first_index[pair]}] ({pair[0]}, {pair[1]}); "
            "remove one of the two entries",
        )


def _google_keys(*names: str) -> tuple[KeyPath, ...]:
    return tuple((*_GOOGLE, name) for name in names)


def _check_webhooks(config: Config) -> Iterator[Problem]:
    # Imported here because the webhooks package imports this package's model.
    from plaudit.webhooks.endpoints import check_endpoints

    for path, message in check_endpoints(config.webhooks):
        yield Problem(("webhooks", *path), message)


def _check_marketplace(config: Config) -> Iterator[Problem]:
    from plaudit.config.marketplace import check_marketplace

    for path, message in check_marketplace(config):
        yield Problem(path, message)


def _check_channels(config: Config) -> Iterator[Problem]:
    # Imported here because the messaging package imports this package's model.
    from plaudit.messaging.channel_checks import check_channels

    for path, message in check_channels(config):
        yield Problem(path, message)


def _check_campaigns(config: Config) -> Iterator[Problem]:
    # Imported here because the messaging package imports this package's model.
    from plaudit.messaging.campaigns import check_campaigns

    for path, message in check_campaigns(config):
        yield Problem(path, message)


def _check_personalisation(config: Config) -> Iterator[Problem]:
    from plaudit.personalisation.checks import check_personalisation

    for path, message in check_personalisation(config):
        yield Problem(path, message)


def _check_compliance(config: Config) -> Iterator[Problem]:
    from plaudit.messaging.compliance import check_compliance

    for path, message in check_compliance(config):
        yield Problem(path, message)


def _check_operator(config: Config) -> Iterator[Problem]:
    from plaudit.messaging.operator_alerts import check_operator

    for path, message in check_operator(config):
        yield Problem(path, message)


def _check_inbound_files(config: Config) -> Iterator[Problem]:
    from plaudit.config.credential_files import check_inbound_paths

    for path, message in check_inbound_paths(config):
        yield Problem(path, message)


def _check_ranges(config: Config) -> Iterator[Problem]:
    from plaudit.config.range_rules import check_ranges

    for path, message in check_ranges(config):
        yield Problem(path, message)


def _check_api_platforms(config: Config) -> Iterator[Problem]:
    # Imported here because that module reads _url_problem from this one.
    from plaudit.config.api_platforms import check_api_platforms

    for path, message in check_api_platforms(config):
        yield Problem(path, message)


# Each rule with the key paths it reads.
_RULES: Final[tuple[tuple[tuple[KeyPath, ...], Rule], ...]] = (
    ((("daemon", "state_dir"), ("daemon", "runtime_dir")), _check_directories),
    ((("journal", "path"),), _check_journal_path),
    ((("journal", "retry_initial"), ("journal", "retry_max")), _check_retry_range),
    ((("supervisor", "backoff_initial"), ("supervisor", "backoff_max")), _check_backoff_range),
    ((("control", "mode"),), _check_socket_mode),
    ((("control", "socket"), ("daemon", "runtime_dir")), _check_socket_path),
    ((("metrics", "host"),), _check_metrics_host),
    # Each URL problem names its own key, so an invalid one is dropped alone.
    ((), _check_google_urls),
    (_google_keys("client_id"), _check_google_client_id),
    (_google_keys("client_secret", "client_secret_file"), _check_google_client_secret),
    (_google_keys("refresh_token", "refresh_token_file"), _check_google_refresh_token),
    # Problems of single entries are dropped when the entry is invalid.
    (_google_keys("enabled"), _check_google_locations),
    # Each endpoint problem names its own key, so an invalid entry is dropped alone.
    ((), _check_webhooks),
    # Facebook, Trustpilot and Yelp tables, and Yelp links anywhere.
    ((), _check_api_platforms),
    # Marketplace profiles: sites, hosts, folders and poll intervals.
    ((), _check_marketplace),
    # Vendor, SMTP and campaign templates; each problem names its own key.
    ((), _check_campaigns),
    # Template variants, steps with channel auto and the drafting endpoint.
    ((), _check_personalisation),
    # Operator alert addresses and what sending them needs.
    ((), _check_operator),
    # Incentive wording and Yelp in templates; each problem names its template part.
    ((), _check_compliance),
    # [sms], [push] and the campaign steps that need them.
    ((), _check_channels),
    # Relative credential paths in [inbound]; each problem names its own key.
    ((), _check_inbound_files),
    # backoff_initial above backoff_max, open_initial above open_max, in every table.
    ((), _check_ranges),
)
