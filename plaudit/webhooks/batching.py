"""Group commit of successful delivery attempts: many outcomes in one journal operation.

Each successful attempt would otherwise be its own journal operation, with a
savepoint and three statements.  :class:`DeliveredBatcher` gathers the
successes that finish while the journal writer is busy and writes them with
:func:`~plaudit.webhooks.records.record_delivered`, one statement per table.
A caller still returns only after the commit that contains its outcome.

The first caller of an empty batch (the leader) submits the write.  The
batch stays open, and later callers join it, until the writer thread runs
the write and closes it.  A lock guards the hand-over, because the writer
closes the batch on its worker thread while Trio tasks keep joining.
"""

from __future__ import annotations

import threading
from typing import final

import msgspec
import trio

from plaudit.errors import JournalError
from plaudit.journal import AsyncJournal, Tx
from plaudit.webhooks import records
from plaudit.webhooks.records import Delivered


class BatcherStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of a :class:`DeliveredBatcher` since it was created."""

    batches: int
    recorded: int
    lease_lost: int
    max_batch_size: int


@final
class _Batch:
    __slots__ = ("closed", "done", "error", "items", "recorded")

    def __init__(self) -> None:
        self.items: list[Delivered] = []
        self.closed = False
        self.done = trio.Event()
        self.recorded: set[int] = set()
        self.error: BaseException | None = None


@final
class DeliveredBatcher:
    """Writes successful attempts of concurrent deliveries together."""

    def __init__(self, journal: AsyncJournal) -> None:
        self._journal = journal
        self._lock = threading.Lock()
        self._open: _Batch | None = None
        self._batches = 0
        self._recorded = 0
        self._lease_lost = 0
        self._max_batch_size = 0

    def __repr__(self) -> str:
        return f"<DeliveredBatcher batches={self._batches} recorded={self._recorded}>"

    def statistics(self) -> BatcherStatistics:
        return BatcherStatistics(
            batches=self._batches,
            recorded=self._recorded,
            lease_lost=self._lease_lost,
            max_batch_size=self._max_batch_size,
        )

    async def record(self, item: Delivered) -> bool:
        """Write ``item`` durably with others; return False when its job's lease was lost.

        Raises JournalError when the journal cannot commit the batch.
        """
        with self._lock:
            batch = self._open
            leader = batch is None or batch.closed
            if batch is None or batch.closed:
                batch = _Batch()
                self._open = batch
            batch.items.append(item)

        if leader:
            await self._submit(batch)
        else:
            # The leader is shielded, so the batch always settles.
            await batch.done.wait()

        if batch.error is not None:
            raise JournalError(
                f"recording delivered webhook job {item.job.id} failed: {batch.error}"
            ) from batch.error
        recorded = item.job.id in batch.recorded
        if not recorded:
            self._lease_lost += 1
        return recorded

    async def _submit(self, batch: _Batch) -> None:
        # Shielded: followers wait on this batch, and a leader cancelled while
        # queued would withdraw the write they depend on.  The journal
        # commits or fails within its own bounded time.
        with trio.CancelScope(shield=True):
            try:
                batch.recorded = await self._journal.transaction(lambda tx: self._write(tx, batch))
            except Exception as error:
                # Every caller of the batch raises it, each as its own JournalError.
                batch.error = error
            finally:
                # The write may never have run (the writer stopped), so close
                # the batch here too, because no caller may join a settled batch.
                with self._lock:
                    batch.closed = True
                batch.done.set()

    def _write(self, tx: Tx, batch: _Batch) -> set[int]:
        """Close ``batch`` to newcomers and write it (runs on the journal's worker thread)."""
        with self._lock:
            batch.closed = True
            items = list(batch.items)
        recorded = records.record_delivered(tx, items)
        self._batches += 1
        self._recorded += len(recorded)
        self._max_batch_size = max(self._max_batch_size, len(items))
        return recorded
