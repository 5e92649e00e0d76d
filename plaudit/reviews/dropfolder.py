"""Importing review files that an operator drops into a watched folder.

Each pass imports the settled files of the folder, then moves each one to
``imported/`` or, when the file as a whole is unreadable, to ``rejected/``
with a ``.error`` file beside it that contains the reason.  A file is moved only after
its import committed, so a crash mid-pass imports it again on the next pass,
which changes nothing because imports are idempotent.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final, final

import msgspec

from plaudit.reviews.importer import ImportFileError, ImportReport, import_reviews

if TYPE_CHECKING:
    from plaudit.journal.store import Journal

SUFFIXES: Final = frozenset({".csv", ".tsv", ".txt", ".json"})
# Seconds a file must stay unmodified before it is read, so a file still
# being copied in is left for the next pass.
SETTLE_SECONDS: Final = 5.0
MAX_FILES_PER_PASS: Final = 100


@final
class DroppedFile(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome for one file of a pass: its report, or why it was rejected."""

    name: str
    # The file's new path, under imported/ or rejected/.
    moved_to: str
    report: ImportReport | None = None
    error: str | None = None


def import_dropped_files(
    journal: Journal,
    folder: str | Path,
    *,
    platform: str,
    profile: str | None = None,
    now: float | None = None,
) -> list[DroppedFile]:
    """Import every settled review file in ``folder``, oldest first, and move it.

    ``now`` is Unix seconds, compared with the files' modification times.
    Files whose names start with "." are skipped, because copy tools write
    partial files under such names.
    """
    moment = time.time() if now is None else now
    base = Path(folder)
    done = base / "imported"
    rejected = base / "rejected"
    done.mkdir(exist_ok=True)
    rejected.mkdir(exist_ok=True)

    outcomes = []
    for path in _settled_files(base, moment):
        try:
            report = import_reviews(journal, path, platform=platform, profile=profile, now=moment)
        except ImportFileError as error:
            target = _move(path, rejected)
            target.with_name(target.name + ".error").write_text(f"{error}\n", encoding="utf-8")
            outcomes.append(DroppedFile(name=path.name, moved_to=str(target), error=str(error)))
            continue

        target = _move(path, done)
        outcomes.append(DroppedFile(name=path.name, moved_to=str(target), report=report))
    return outcomes


def _settled_files(folder: Path, now: float) -> list[Path]:
    candidates = []
    for entry in os.scandir(folder):
        if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
            continue
        if Path(entry.name).suffix.lower() not in SUFFIXES:
            continue
        modified = entry.stat(follow_symlinks=False).st_mtime
        if now - modified >= SETTLE_SECONDS:
            candidates.append((modified, entry.name))

    candidates.sort()
    return [folder / name for _, name in candidates[:MAX_FILES_PER_PASS]]


def _move(path: Path, folder: Path) -> Path:
    # A file of the same name imported earlier is kept: the new one gets a suffix.
    target = folder / path.name
    counter = 1
    while target.exists():
        target = folder / f"{path.stem}.{counter}{path.suffix}"
        counter += 1
    path.rename(target)
    return target
