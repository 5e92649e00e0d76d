"""The synchronous journal: one SQLite connection and explicit transactions."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import secrets
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Self, TypeVar, final

import outcome

from plaudit import metrics
from plaudit.errors import JournalError
from plaudit.journal import operations
from plaudit.journal.connection import (
    BUSY_TIMEOUT_SECONDS,
    configure,
    connect,
    journal_error,
    translated,
)
from plaudit.journal.migrations import migrate, require_journal
from plaudit.journal.models import Event, Job, JobState, JournalStatistics
from plaudit.journal.operations import EVENT_COLUMNS, JOB_COLUMNS, Effects
from plaudit.journal.policy import JobPolicy
from plaudit.journal.tx import EmitHook, Tx

log = logging.getLogger(__name__)

T = TypeVar("T")


def default_instance() -> str:
    """Return an instance id unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@final
class Journal:
    """The durable job journal on one SQLite connection.

    Not thread-safe by itself: use it from one thread at a time.  Inside a
    Trio program, wrap it in :class:`~plaudit.journal.AsyncJournal` and use
    only that wrapper.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        path: Path,
        policy: JobPolicy,
        clock: Callable[[], float],
        schema_version: int,
    ) -> None:
        """Wrap an open, migrated connection; call :meth:`open` instead."""
        self._conn: sqlite3.Connection | None = conn
        self._clock = clock
        self.path = path
        self.policy = policy
        self.schema_version = schema_version
        self.recovered_at_open = 0
        self.last_commit_seconds = 0.0
        self._commits = 0
        self._operations = 0
        self._rollbacks = 0
        # Set with set_emit_hooks; read when each transaction begins.
        self._emit_hooks: tuple[EmitHook, ...] = ()

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.time,
        instance: str = "",
        lease_seconds: float = 60.0,
        max_attempts: int = 8,
        retry_initial: float = 5.0,
        retry_max: float = 3600.0,
        rng: random.Random | None = None,
        recover_all_leases: bool = False,
    ) -> Self:
        """Open (creating if needed) and migrate the journal, then recover leases.

        ``instance`` names this daemon in the leases it takes; empty means a
        generated id unique to the process.  Durations are seconds.  Without
        ``recover_all_leases`` only expired leases are recovered.  With it,
        every running job returns to ready, which is right only while the
        caller holds the state directory's exclusive lock.  Raises
        JournalError naming the file when it cannot be opened as a journal.
        """
        policy = JobPolicy(
            instance=instance or default_instance(),
            lease_seconds=lease_seconds,
            max_attempts=max_attempts,
            retry_initial=retry_initial,
            retry_max=retry_max,
            rng=rng if rng is not None else random.Random(),
        )
        absolute = Path(os.path.abspath(path))
        conn = connect(absolute)

        try:
            # Check before the first write, which is switching the file to WAL.
            require_journal(conn, absolute)
            configure(conn, absolute, busy_timeout=BUSY_TIMEOUT_SECONDS)
            version = migrate(conn, absolute, now=clock())
            journal = cls(conn, path=absolute, policy=policy, clock=clock, schema_version=version)
            journal.recovered_at_open = journal._write(
                lambda tx: operations.recover_leases(tx, expired_only=not recover_all_leases)
            )
        except BaseException:
            conn.close()
            raise

        return journal

    @property
    def instance(self) -> str:
        """The daemon instance id written into the leases this journal takes."""
        return self.policy.instance

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else "open"
        return (
            f"<Journal {state} path={str(self.path)!r} schema={self.schema_version} "
            f"instance={self.instance!r} commits={self._commits}>"
        )

    def statistics(self) -> JournalStatistics:
        """Return the commit counters and identity of this journal."""
        return JournalStatistics(
            path=str(self.path),
            schema_version=self.schema_version,
            instance=self.instance,
            commits=self._commits,
            operations=self._operations,
            rollbacks=self._rollbacks,
            recovered_at_open=self.recovered_at_open,
            closed=self._conn is None,
        )

    def close(self) -> None:
        """Close the connection; calling it again does nothing."""
        if self._conn is None:
            return

        with translated(self.path, "close"):
            self._conn.close()
        self._conn = None

    def set_emit_hooks(self, hooks: Sequence[EmitHook]) -> None:
        """Run ``hooks`` on every event emitted from the next transaction on.

        Replacing the tuple is atomic, so the daemon may call this from the
        Trio thread while the worker thread writes.
        """
        self._emit_hooks = tuple(hooks)

    # Transactions

    def transaction(self) -> contextlib.AbstractContextManager[Tx]:
        """Open a BEGIN IMMEDIATE transaction that commits when the block ends.

        An exception inside the block rolls everything back and propagates.
        """
        return self._transaction(operations=1)

    @contextlib.contextmanager
    def _transaction(self, *, operations: int) -> Iterator[Tx]:
        conn = self._connection()
        if conn.in_transaction:
            raise JournalError(
                f"a transaction on the journal {self.path} is already open; "
                "use the Tx handle you were given instead of starting another"
            )

        began = time.perf_counter()
        with translated(self.path, "begin a transaction on"):
            conn.execute("BEGIN IMMEDIATE")

        tx = Tx(
            conn,
            path=self.path,
            now=self._clock(),
            policy=self.policy,
            emit_hooks=self._emit_hooks,
        )
        try:
            yield tx
        except BaseException:
            self._rollback(conn)
            raise
        finally:
            tx.close()

        self._commit(conn, began, operations=operations)

    def _commit(self, conn: sqlite3.Connection, began: float, *, operations: int) -> None:
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as error:
            self._rollback(conn)
            raise journal_error(self.path, "commit to", error) from error

        seconds = time.perf_counter() - began
        self.last_commit_seconds = seconds
        self._commits += 1
        self._operations += operations
        metrics.JOURNAL_COMMIT.observe(seconds)
        metrics.JOURNAL_GROUP_SIZE.observe(operations)

    def _rollback(self, conn: sqlite3.Connection) -> None:
        self._rollbacks += 1
        # Some errors (SQLITE_FULL, SQLITE_IOERR) roll the transaction back themselves.
        if not conn.in_transaction:
            return

        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error as error:
            # Logged rather than raised, so the error that caused the rollback propagates.
            log.error(  # noqa: TRY400 - the traceback of a failed ROLLBACK adds nothing
                "journal.rollback_failed", extra={"path": str(self.path), "error": str(error)}
            )

    def run_group(self, work: Sequence[Callable[[Tx], Any]]) -> list[outcome.Outcome[Any]]:
        """Run each callable in its own savepoint inside one transaction, then commit once.

        A callable that raises is rolled back alone and its exception becomes
        its outcome; the others commit.  Raises JournalError, with nothing
        committed, when the transaction itself fails.
        """
        with self._transaction(operations=len(work)) as tx:
            return [self._run_savepoint(tx, operation) for operation in work]

    def _run_savepoint(self, tx: Tx, operation: Callable[[Tx], Any]) -> outcome.Outcome[Any]:
        conn = self._connection()
        with translated(self.path, "open a savepoint on"):
            conn.execute("SAVEPOINT operation")

        result: outcome.Outcome[Any] = outcome.capture(operation, tx)
        if not conn.in_transaction:
            cause = result.error if isinstance(result, outcome.Error) else None
            raise JournalError(
                f"an operation on the journal {self.path} ended the group's transaction "
                "(a COMMIT, a ROLLBACK or a fatal I/O error); the whole group was rolled back"
            ) from cause

        with translated(self.path, "close a savepoint on"):
            if isinstance(result, outcome.Error):
                conn.execute("ROLLBACK TO operation")
            conn.execute("RELEASE operation")
        return result

    def _write(self, operation: Callable[[Tx], T]) -> T:
        with self.transaction() as tx:
            return operation(tx)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise JournalError(f"the journal {self.path} is closed; open it again to use it")

        return self._conn

    # Writes

    def enqueue(
        self,
        *,
        kind: str,
        owner: str,
        key: str,
        payload: dict[str, Any],
        run_at: float | None = None,
        max_attempts: int | None = None,
    ) -> int | None:
        """Add a ready job; return its id, or None when ``key`` exists already."""
        return self._write(
            lambda tx: tx.enqueue(
                kind=kind,
                owner=owner,
                key=key,
                payload=payload,
                run_at=run_at,
                max_attempts=max_attempts,
            )
        )

    def claim(
        self,
        owner: str,
        *,
        kinds: Sequence[str] | None = None,
        limit: int = 1,
        lease_seconds: float | None = None,
    ) -> list[Job]:
        """Lease up to ``limit`` due jobs of ``owner`` (optionally of ``kinds``), earliest first."""
        return self._write(
            lambda tx: operations.claim(
                tx, owner, kinds=kinds, limit=limit, lease_seconds=lease_seconds
            )
        )

    def complete(self, job_id: int, effects: Effects | None = None) -> None:
        """Mark a running job succeeded and run ``effects`` in the same transaction.

        Raises LeaseLostError, with nothing written, when this instance no
        longer holds the job's lease.
        """
        self._write(lambda tx: operations.complete(tx, job_id, effects))

    def fail(
        self, job_id: int, error: str, *, retry_after: float | None = None, permanent: bool = False
    ) -> JobState:
        """Record a failed attempt and return the new state, FAILED or DEAD."""
        return self._write(
            lambda tx: operations.fail(
                tx, job_id, error, retry_after=retry_after, permanent=permanent
            )
        )

    def release(self, job_id: int) -> None:
        """Return a running job to ready without counting the attempt."""
        self._write(lambda tx: operations.release(tx, job_id))

    def release_held(self) -> int:
        """Return every job this instance still runs to ready (the last step of a drain)."""
        return self._write(operations.release_held)

    def extend_lease(self, job_id: int, lease_seconds: float | None = None) -> None:
        """Extend the lease of a running job to ``lease_seconds`` from now."""
        self._write(lambda tx: operations.extend_lease(tx, job_id, lease_seconds))

    def recover_expired_leases(self) -> int:
        """Return jobs whose lease expired to ready; return how many there were."""
        return self._write(lambda tx: operations.recover_leases(tx, expired_only=True))

    def retry(self, job_id: int) -> Job:
        """Make a failed or dead job ready now with its attempts reset (an operator action)."""
        return self._write(lambda tx: operations.retry(tx, job_id))

    # Reads

    def get(self, job_id: int) -> Job:
        """Return one job; raise JobNotFoundError when the id is unknown."""
        rows = self._read(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise operations.not_found(self.path, job_id)

        return operations.job_from_row(rows[0])

    def jobs(
        self,
        *,
        state: JobState | str | None = None,
        kind: str | None = None,
        owner: str | None = None,
        limit: int = 100,
    ) -> list[Job]:
        """Return up to ``limit`` jobs matching every given filter, newest first."""
        filters: list[str] = []
        params: list[Any] = []
        if state is not None:
            filters.append("state = ?")
            params.append(_parse_state(state).value)
        for column, value in (("kind", kind), ("owner", owner)):
            if value is not None:
                filters.append(f"{column} = ?")
                params.append(value)

        _require_limit(limit)
        where = f"WHERE {' AND '.join(filters)}" if filters else ""
        sql = f"SELECT {JOB_COLUMNS} FROM jobs {where} ORDER BY id DESC LIMIT ?"
        return [operations.job_from_row(row) for row in self._read(sql, (*params, limit))]

    def counts(self) -> list[tuple[str, str, int]]:
        """Return (kind, state, number of jobs) for every pair that has jobs."""
        rows = self._read(
            "SELECT kind, state, count(*) FROM jobs GROUP BY kind, state ORDER BY kind, state", ()
        )
        return [(str(kind), str(state), int(count)) for kind, state, count in rows]

    def events(self, *, after_id: int = 0, limit: int = 100) -> list[Event]:
        """Return up to ``limit`` outbox events with ids above ``after_id``, oldest first."""
        _require_limit(limit)
        rows = self._read(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        )
        return [operations.event_from_row(row) for row in rows]

    def pragmas(self) -> dict[str, Any]:
        """Return the connection's journal_mode, synchronous (2 is FULL) and busy_timeout (ms)."""
        names = ("journal_mode", "synchronous", "busy_timeout")
        return {name: self._read(f"PRAGMA {name}", ())[0][0] for name in names}

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run one read-only statement and return its rows (for listings of other tables)."""
        return self._read(sql, params)

    def _read(self, sql: str, params: Sequence[Any]) -> list[Any]:
        conn = self._connection()
        with translated(self.path, "read"):
            return conn.execute(sql, params).fetchall()


def _parse_state(state: JobState | str) -> JobState:
    try:
        return JobState(state)
    except ValueError:
        names = ", ".join(member.value for member in JobState)
        raise ValueError(f"unknown job state {state!r}; use one of {names}") from None


def _require_limit(limit: int) -> None:
    # SQLite reads a negative LIMIT as "no limit", which a listing must not do by accident.
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be an integer of at least 1, got {limit!r}")
