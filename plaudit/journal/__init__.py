"""The durable job journal: every unit of work and every fact, in one SQLite file.

Layers, from the bottom:

- ``connection``: opens the file (WAL, synchronous=FULL, both read back) and
  turns sqlite3 errors into :class:`~plaudit.errors.JournalError`.
- ``migrations``: versioned schema changes applied at open.
- ``tx`` and ``operations``: the :class:`Tx` handle on one write transaction
  and the job transitions that run inside one.
- ``store``: :class:`Journal`, synchronous, one connection.
- ``group``: :class:`AsyncJournal`, the Trio facade that commits concurrent
  writes in groups on one worker thread.

Job states and transitions:

- ``ready``: waiting; claimable once ``next_run_at`` is due.
- ``running``: claimed; ``attempts`` was incremented and this daemon
  instance holds a lease until ``lease_expires_at``.  From here a job is
  completed (``succeeded``), failed (``failed`` or ``dead``), released back
  to ``ready`` without counting the attempt, or, when its lease expires,
  recovered to ``ready`` with its attempts kept.  A recovered job that had
  used its last attempt becomes ``dead``.
- ``succeeded``: final.
- ``failed``: the last attempt failed and a retry is due at ``next_run_at``
  (exponential backoff with full jitter); claimable again once due.
- ``dead``: the attempts are used up or the error was permanent.  Only an
  operator's ``retry`` makes it ``ready`` again, with attempts reset to 0.

Delivery is at least once: a job may run again after a crash, so its side
effects carry idempotency keys.  The facts a job produces are written through
the :class:`Tx` passed to its ``effects`` callback, in the same transaction as
its completion (the outbox pattern).

NOTE: finished jobs are kept forever, because their keys make enqueueing
idempotent; a pruning policy is still to be decided.
"""

from plaudit.journal.errors import LeaseLostError
from plaudit.journal.group import AsyncJournal
from plaudit.journal.migrations import MIGRATIONS, Migration
from plaudit.journal.models import (
    Event,
    GroupCommitStatistics,
    Job,
    JobState,
    JournalStatistics,
)
from plaudit.journal.policy import JobPolicy
from plaudit.journal.store import Journal
from plaudit.journal.tx import Tx

__all__ = [
    "MIGRATIONS",
    "AsyncJournal",
    "Event",
    "GroupCommitStatistics",
    "Job",
    "JobPolicy",
    "JobState",
    "Journal",
    "JournalStatistics",
    "LeaseLostError",
    "Migration",
    "Tx",
]
