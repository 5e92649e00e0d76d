"""``plaudit ctl import reviews FILE``: the daemon's side of the control-socket command.

The platform must be one Plaudit has a connector for, and every row's profile
one that the running configuration lists for it (:mod:`plaudit.reviews.import_checks`).
The daemon reads the file in a worker thread, so a large file does not stall
the event loop, then writes the accepted reviews in one journal transaction
through :func:`plaudit.reviews.importer.store_review_file`.  Rows that fail a
check are listed in the report and not stored.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from plaudit.daemon.control_wire import InvalidArgument
from plaudit.errors import ControlError
from plaudit.reviews.import_checks import ImportTarget, ImportTargetError, import_target
from plaudit.reviews.importer import ImportReport, read_review_file, store_review_file

if TYPE_CHECKING:
    from plaudit.daemon.app import Daemon

Command = Callable[[dict[str, Any]], Awaitable[Any]]


def import_commands(daemon: Daemon) -> dict[str, Command]:
    """Return the import command, keyed by name, for the control socket."""

    async def import_file(args: dict[str, Any]) -> dict[str, Any]:
        kind, path, platform, profile = _import_args(args)
        journal = daemon.journal
        if journal is None:
            raise ControlError("the journal is not open yet; try again in a moment")
        target, profile = _checked_target(daemon, platform, profile)

        # Wall-clock time dates rows without a date; trio's clock is monotonic.
        now = time.time()
        parsed = await trio.to_thread.run_sync(
            lambda: read_review_file(
                path,
                platform=target.platform,
                profile=profile,
                now=now,
                resolve_profile=target.resolve_profile,
            )
        )
        report: ImportReport = await journal.transaction(
            lambda tx: store_review_file(tx, parsed, platform=target.platform)
        )
        result: dict[str, Any] = msgspec.to_builtins(report)
        return {"kind": kind, **result}

    return {"import": import_file}


def _checked_target(
    daemon: Daemon, platform: str, profile: str | None
) -> tuple[ImportTarget, str | None]:
    # The configuration is read per request, so a reload applies to the next import.
    try:
        target = import_target(daemon.config.platforms, platform)
        if profile is not None:
            profile = target.resolve_profile(profile)
    except (ImportTargetError, ValueError) as error:
        raise InvalidArgument(str(error)) from error
    return target, profile


def _import_args(args: dict[str, Any]) -> tuple[str, str, str, str | None]:
    kind = args.get("kind")
    if kind != "reviews":
        raise InvalidArgument(f"unknown import kind {kind!r}; use 'reviews'")

    path = args.get("path")
    if not isinstance(path, str) or not os.path.isabs(path):
        raise InvalidArgument(
            f"argument 'path' must be an absolute file path, got {path!r}; plaudit ctl sends one"
        )

    platform = args.get("platform")
    if not isinstance(platform, str) or not platform:
        raise InvalidArgument(f"argument 'platform' must be a platform name, got {platform!r}")

    profile = args.get("profile")
    if profile is not None and (not isinstance(profile, str) or not profile):
        raise InvalidArgument(f"argument 'profile' must be a non-empty string, got {profile!r}")
    return kind, path, platform, profile
