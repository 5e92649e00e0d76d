"""The state and runtime directories of ``plaudit demo`` and ``plaudit demo --chaos``.

A demo writes its journal, configuration and daemon log into a state
directory, and the daemon's control socket into a runtime directory.  Both
are temporary unless the operator names the state directory or passes
``--keep``, and a temporary one is removed when the demo ends, so repeated
demos leave nothing behind in the temporary folder.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, final

log = logging.getLogger(__name__)

# Summary fields that name files in the state directory.
STATE_FILE_FIELDS: Final = ("journal", "daemon_log")


@final
@dataclass(frozen=True, slots=True)
class DemoDirs:
    """The directories of one demo run, and whether its state directory outlives it."""

    state: Path
    runtime: Path
    # True when the state directory stays after the demo: named with
    # --state-dir, or temporary and kept with --keep.
    kept: bool


@contextlib.contextmanager
def demo_dirs(state_dir: str | None, *, prefix: str, keep: bool) -> Iterator[DemoDirs]:
    """Create the demo's directories; remove the temporary ones when the block exits.

    The runtime directory is always temporary.  The state directory is
    ``state_dir`` when given (created if missing, never removed), else a new
    temporary directory named with ``prefix``, removed unless ``keep`` or
    unless the block raises an Exception: a crashed demo's log helps.
    """
    if state_dir:
        state = Path(state_dir)
        state.mkdir(parents=True, exist_ok=True)
    else:
        state = Path(tempfile.mkdtemp(prefix=prefix))
    kept = bool(state_dir) or keep
    # AF_UNIX paths are limited to 107 bytes, so the socket lives in a short /tmp path.
    runtime = Path(tempfile.mkdtemp(prefix="plaudit-run-", dir="/tmp"))
    try:
        yield DemoDirs(state=state.resolve(), runtime=runtime, kept=kept)
    except Exception:
        # A demo that crashed keeps its journal and daemon log for a look.
        _remove(runtime)
        if not kept:
            print(f"plaudit demo: its files are kept in {state}", file=sys.stderr)
        raise
    except BaseException:
        _remove(runtime)
        if not kept:
            _remove(state)
        raise
    _remove(runtime)
    if not kept:
        _remove(state)


def without_removed_files(summary: dict[str, Any], dirs: DemoDirs) -> dict[str, Any]:
    """Return ``summary`` without the paths of files that the demo removes at its end."""
    if dirs.kept:
        return summary
    return {key: value for key, value in summary.items() if key not in STATE_FILE_FIELDS}


def _remove(folder: Path) -> None:
    try:
        shutil.rmtree(folder)
    except FileNotFoundError:
        return
    except OSError as error:
        # The demo's result is valid without the clean-up, so log the failure and go on.
        log.warning("demo.cleanup_failed", extra={"folder": str(folder), "error": str(error)})
