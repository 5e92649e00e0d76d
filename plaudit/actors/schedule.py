"""Sync schedule slots, and how a schedule recovers when the wall clock steps back.

Each profile has one sync job per slot of ``sync_interval`` seconds of wall
time, keyed by the slot number, and each finished sync queues the next slot.
The wall clock can step back, after a large NTP correction or a restored VM
snapshot.  The queued job then keeps the due time of the old clock, hours
ahead, and the slots before it already have finished jobs.  No sync would
run until the clock caught up.  :func:`pull_in_sync_jobs` brings such jobs back
to the next slot boundary of the current clock.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from plaudit.journal import Tx

log = logging.getLogger(__name__)

# First attempts only: a job waiting out a retry backoff keeps its time.
_PULL_IN: Final = """
UPDATE jobs SET next_run_at = ?
WHERE owner = ? AND kind = ? AND state = 'ready' AND attempts = 0 AND next_run_at > ?
"""


def current_slot(now: float, interval: float) -> int:
    """Return the number of the slot of ``interval`` seconds that contains Unix time ``now``."""
    return math.floor(now / interval)


def pull_in_sync_jobs(tx: Tx, *, owner: str, kind: str, now: float, interval: float) -> int:
    """Make sync jobs due later than the next slot boundary due at that boundary.

    Under a steady clock no first attempt is due later than that, and this
    changes nothing.  Returns the number of jobs pulled in.
    """
    boundary = (current_slot(now, interval) + 1) * interval
    moved = tx.execute(_PULL_IN, (boundary, owner, kind, boundary)).rowcount
    if moved:
        log.warning(
            "schedule.clock_stepped_back",
            extra={"owner": owner, "kind": kind, "jobs": moved, "due_at": boundary},
        )
    return moved
