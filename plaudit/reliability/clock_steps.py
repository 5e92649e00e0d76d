"""Lease sweeps that survive a forward step of the wall clock.

Leases expire by wall time.  The wall clock may step forward by more than a
lease, after a suspended VM resumes or an operator sets the date.  Every
running job then looks expired at the next sweep, although its actor is
alive and renews the lease every third of ``lease_seconds``.  The sweep
would return the job to ready, and it would run a second time.

:class:`ClockStepWatch` compares the wall clock's progress with the
monotonic clock's between two sweeps.  Before a sweep recovers leases, the
leases that a forward step made look expired are moved forward by the step,
so only a job whose actor stopped renewing it is recovered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, final

if TYPE_CHECKING:
    from plaudit.journal import AsyncJournal, Tx

log = logging.getLogger(__name__)

# Wall-clock progress beyond the monotonic clock's, in seconds, that counts
# as a step rather than drift or a slow sweep.
STEP_TOLERANCE: Final = 2.0
# Only leases that the step made expire: one already expired before it
# belongs to an actor that stopped renewing, and is recovered as usual.
_SHIFT: Final = """
UPDATE jobs SET lease_expires_at = lease_expires_at + ?
WHERE state = 'running' AND lease_expires_at < ? AND lease_expires_at >= ?
"""


@final
class ClockStepWatch:
    """Measures forward steps of a wall clock against a monotonic clock, between observations."""

    def __init__(self, *, wall: Callable[[], float], monotonic: Callable[[], float]) -> None:
        self._wall = wall
        self._monotonic = monotonic
        self._last: tuple[float, float] | None = None
        self._steps = 0

    def __repr__(self) -> str:
        return f"<ClockStepWatch steps={self._steps}>"

    def statistics(self) -> dict[str, int]:
        """Return how many forward steps were seen."""
        return {"steps": self._steps}

    def forward_step(self) -> float:
        """Return the seconds the wall clock stepped forward since the last call, or 0.0."""
        now = (self._wall(), self._monotonic())
        last, self._last = self._last, now
        if last is None:
            return 0.0

        step = (now[0] - last[0]) - (now[1] - last[1])
        if step <= STEP_TOLERANCE:
            return 0.0
        self._steps += 1
        return step


def shift_overdue_leases(tx: Tx, *, seconds: float) -> int:
    """Move forward by ``seconds`` the running leases that a step of that size made expire.

    Returns how many leases moved.
    """
    return tx.execute(_SHIFT, (seconds, tx.now, tx.now - seconds)).rowcount


async def sweep_leases(journal: AsyncJournal, watch: ClockStepWatch) -> int:
    """Recover expired leases, after undoing what a forward clock step did to them.

    Returns the number of jobs returned to ready.
    """
    step = watch.forward_step()
    if step:
        shifted = await journal.transaction(lambda tx: shift_overdue_leases(tx, seconds=step))
        log.warning(
            "journal.clock_stepped_forward", extra={"seconds": round(step, 3), "leases": shifted}
        )
    return await journal.recover_expired_leases()
