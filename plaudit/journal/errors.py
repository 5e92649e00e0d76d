"""Errors raised by the journal beyond those in :mod:`plaudit.errors`."""

from __future__ import annotations

from typing import final

from plaudit.errors import JournalError


@final
class LeaseLostError(JournalError):
    """A job is no longer running under this daemon's lease.

    Its lease expired and was recovered (or the job was released, completed or
    failed already), so another attempt may run or have run it.  The caller
    must drop its result: nothing it tried to record was written.
    """

    def __init__(self, job_id: int, *, state: str, lease_owner: str | None, instance: str) -> None:
        self.job_id = job_id
        self.state = state
        self.lease_owner = lease_owner
        self.instance = instance
        holder = f"leased by {lease_owner!r}" if lease_owner else "not leased"
        super().__init__(
            f"job {job_id} is no longer running under instance {instance!r} "
            f"(it is {state}, {holder}); its outcome was not recorded. "
            "Extend the lease more often than the lease length if the work is slow."
        )
