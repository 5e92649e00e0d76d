"""``plaudit ctl import couples FILE``: the daemon's side of the control-socket command."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import msgspec
import trio

from plaudit.daemon.control_wire import InvalidArgument
from plaudit.errors import ControlError
from plaudit.journal import Tx
from plaudit.messaging.campaigns import schedule_new_couples
from plaudit.messaging.consent import ConsentSource
from plaudit.messaging.couples import CoupleImport, StoreReport, parse_couples_csv, store_couples
from plaudit.personalisation.profiles import read_profiles_file, store_profiles

if TYPE_CHECKING:
    from plaudit.daemon.app import Daemon

Command = Callable[[dict[str, Any]], Awaitable[Any]]
# A CRM export of 10,000 couples is well under this.
MAX_FILE_BYTES: Final = 16 * 1024 * 1024


def with_couples_import(daemon: Daemon, import_other: Command) -> Command:
    """Return an ``import`` command that handles kind ``couples`` and passes on the rest."""

    async def import_file(args: dict[str, Any]) -> dict[str, Any]:
        if args.get("kind") != "couples":
            result: dict[str, Any] = await import_other(args)
            return result
        return await import_couples(daemon, args)

    return import_file


async def import_couples(daemon: Daemon, args: dict[str, Any]) -> dict[str, Any]:
    """Validate the whole file, then store every couple in one transaction or none."""
    path = args.get("path")
    if not isinstance(path, str) or not os.path.isabs(path):
        raise InvalidArgument(
            f"argument 'path' must be an absolute file path, got {path!r}; plaudit ctl sends one"
        )
    journal = daemon.journal
    if journal is None:
        raise ControlError("the journal is not open yet; try again in a moment")

    parsed = await trio.to_thread.run_sync(read_couples_file, Path(path))
    result: dict[str, Any] = {
        "kind": "couples",
        "file": path,
        "rows": parsed.rows,
        "errors": msgspec.to_builtins(parsed.errors),
        "created": 0,
        "updated": 0,
    }
    if parsed.errors:
        return result

    config = daemon.config
    vendor = config.vendor.name if config.vendor is not None else ""
    profiles = await trio.to_thread.run_sync(read_profiles_file, Path(path))
    source = ConsentSource(kind="import", detail=Path(path).name)

    def store(tx: Tx) -> tuple[StoreReport, int]:
        report = store_couples(tx, parsed.couples, vendor=vendor, source=source)
        # Lead source and notes columns, for personalisation.
        store_profiles(tx, profiles)
        return report, schedule_new_couples(tx, config)

    report, scheduled = await journal.transaction(store)
    result.update(created=report.created, updated=report.updated, scheduled=scheduled)
    notifier = daemon.actors.get("notifier")
    if notifier is not None:
        notifier.wake()
    return result


def read_couples_file(path: Path) -> CoupleImport:
    """Read and validate a CSV export; raises ControlError when it cannot be read."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ControlError(
                f"{path} has {size} bytes, more than {MAX_FILE_BYTES}; split it into smaller files"
            )
        raw = path.read_bytes()
    except OSError as error:
        raise ControlError(f"cannot read {path}: {error.strerror}; check the path") from error

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        # Spreadsheet programs on Windows export in their legacy code page.
        text = raw.decode("cp1252", errors="replace")
    return parse_couples_csv(text)
