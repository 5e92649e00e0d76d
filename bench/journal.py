"""Benchmark the durable job journal against raw SQLite and persist-queue.

Run from the repository root:

    python bench/journal.py [--json] [--seconds N] [--cycles N]

Every figure comes from one run on this machine, in fresh temporary
directories, with WAL and synchronous=FULL everywhere.  With --json the last
line printed is one JSON object with the figures.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from plaudit.journal import AsyncJournal, Journal  # noqa: E402

TARGET_CYCLES_PER_S = 1000.0
TARGET_RATIO = 1.0
AIM_RATIO = 1.5
TARGET_IDLE_RSS_MB = 60.0

# The daemon gets this long to create its control socket, then runs idle
# until IDLE_SECONDS after its start before its RSS is read.
DAEMON_START_TIMEOUT = 20.0
IDLE_SECONDS = 3.0
DAEMON_STOP_TIMEOUT = 30.0


class Budget:
    """A stop condition shared by workers: a cycle count and a deadline, whichever comes first."""

    def __init__(self, cycles: int, seconds: float) -> None:
        self.cycles = cycles
        self.deadline = time.perf_counter() + seconds
        self.started = 0
        self.finished = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Reserve one more cycle; return False once the count or the time is used up."""
        with self._lock:
            if self.started >= self.cycles or time.perf_counter() >= self.deadline:
                return False
            self.started += 1
            return True

    def done(self) -> None:
        with self._lock:
            self.finished += 1


def rate(count: int, began: float) -> float:
    return count / (time.perf_counter() - began)


# 1. Our job cycles through AsyncJournal


def measure_job_cycles(
    directory: Path, *, cycles: int, seconds: float, workers: int, window: float
) -> tuple[float, dict[str, Any]]:
    """Run enqueue, claim, complete cycles from concurrent Trio tasks; return cycles/s."""
    journal = Journal.open(directory / "journal.sqlite3", instance="bench")
    async_journal = AsyncJournal(journal, window=window)
    budget = Budget(cycles, seconds)

    async def worker(index: int) -> None:
        # One owner per worker, so a claim finds the job its own worker enqueued.
        owner = f"owner-{index}"
        sequence = 0
        while budget.take():
            sequence += 1
            key = f"{owner}:{sequence}"
            await async_journal.enqueue(kind="bench", owner=owner, key=key, payload={"n": sequence})
            jobs = await async_journal.claim(owner)
            await async_journal.complete(jobs[0].id)
            budget.done()

    async def main() -> float:
        async with trio.open_nursery() as nursery:
            await nursery.start(async_journal.run)
            began = time.perf_counter()
            async with trio.open_nursery() as team:
                for index in range(workers):
                    team.start_soon(worker, index)
            result = rate(budget.finished, began)
            nursery.cancel_scope.cancel()
        return result

    try:
        cycles_per_s = trio.run(main)
    finally:
        journal.close()

    stats = async_journal.statistics()
    details = {
        "cycles": budget.finished,
        "workers": workers,
        "window_s": window,
        "commits": stats.commits,
        "operations": stats.operations,
        "mean_group_size": round(stats.mean_group_size, 2),
    }
    return cycles_per_s, details


# 2. Raw SQLite commits


def measure_raw_commits(directory: Path, *, cycles: int, seconds: float) -> float:
    """Commit single-row INSERTs one by one in WAL with synchronous=FULL; return commits/s."""
    conn = sqlite3.connect(directory / "raw.sqlite3", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    require_durable(conn, "raw")
    conn.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")

    budget = Budget(cycles, seconds)
    began = time.perf_counter()
    while budget.take():
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO rows (body) VALUES (?)", ('{"n": 1}',))
        conn.execute("COMMIT")
        budget.done()
    result = rate(budget.finished, began)
    conn.close()
    return result


def require_durable(conn: sqlite3.Connection, name: str) -> None:
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    synchronous = conn.execute("PRAGMA synchronous").fetchone()[0]
    if (mode, synchronous) != ("wal", 2):
        raise SystemExit(
            f"{name}: expected WAL and synchronous=FULL (2), read back {mode}, {synchronous}"
        )


# 3. persist-queue's SQLiteAckQueue


PEER_CONFIGURATION = (
    "persistqueue.SQLiteAckQueue(path, multithreading=True, auto_commit=True): "
    "WAL set by persist-queue, PRAGMA synchronous=FULL set on both of its connections "
    "and read back; each put, get and ack is its own committed transaction"
)


def measure_peer_cycles(directory: Path, *, cycles: int, seconds: float, threads: int) -> float:
    """Run put, get, ack cycles on persist-queue from ``threads`` threads; return cycles/s."""
    from persistqueue import SQLiteAckQueue

    queue = SQLiteAckQueue(str(directory), multithreading=True, auto_commit=True)
    # persist-queue sets WAL but leaves synchronous at the build default.
    # With multithreading=True it puts through one connection and gets through another.
    connections = cast(list[sqlite3.Connection], [queue._putter, queue._getter])
    for conn in connections:
        conn.execute("PRAGMA synchronous = FULL")
        require_durable(conn, "persist-queue")

    budget = Budget(cycles, seconds)

    def worker() -> None:
        while budget.take():
            queue.put({"n": 1})
            item = queue.get(block=True, timeout=5.0)
            queue.ack(item)
            budget.done()

    began = time.perf_counter()
    run_threads(worker, threads)
    result = rate(budget.finished, began)
    queue.close()
    return result


def run_threads(target: Callable[[], None], count: int) -> None:
    team = [threading.Thread(target=target) for _ in range(count)]
    for thread in team:
        thread.start()
    for thread in team:
        thread.join()


# 5. Idle daemon RSS


def measure_idle_rss(config: Path) -> tuple[float | None, str]:
    """Start ``plaudit run``, let it idle, and return its VmRSS in MB with a note."""
    with tempfile.TemporaryDirectory() as state, tempfile.TemporaryDirectory() as runtime:
        command = [
            sys.executable,
            "-m",
            "plaudit",
            "run",
            "--config",
            str(config),
            "--state-dir",
            state,
            "--runtime-dir",
            runtime,
        ]
        began = time.monotonic()
        daemon = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            return read_idle_rss(daemon, Path(runtime) / "control.sock", began)
        finally:
            stop(daemon)


def read_idle_rss(
    daemon: subprocess.Popen[str], socket: Path, began: float
) -> tuple[float | None, str]:
    while not socket.exists():
        if daemon.poll() is not None:
            return None, f"the daemon exited with status {daemon.returncode} before it was ready"
        if time.monotonic() - began > DAEMON_START_TIMEOUT:
            return None, f"no control socket after {DAEMON_START_TIMEOUT:g} s"
        time.sleep(0.1)

    time.sleep(max(0.0, IDLE_SECONDS - (time.monotonic() - began)))
    if daemon.poll() is not None:
        return None, f"the daemon exited with status {daemon.returncode} while idle"

    status = Path(f"/proc/{daemon.pid}/status").read_text()
    rss_line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    kilobytes = int(rss_line.split()[1])
    return kilobytes / 1024, f"VmRSS of pid {daemon.pid} after {IDLE_SECONDS:g} s idle"


def stop(daemon: subprocess.Popen[str]) -> None:
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=DAEMON_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()

    stderr = daemon.stderr.read() if daemon.stderr else ""
    if daemon.returncode not in (0, -signal.SIGTERM) and stderr:
        last = stderr.strip().splitlines()[-3:]
        print("daemon stderr (last lines):", *last, sep="\n  ", file=sys.stderr)


# Report


def print_table(figures: dict[str, Any], notes: list[str]) -> None:
    rows = [
        (
            "job_cycles_per_s",
            figures["job_cycles_per_s"],
            f">= {TARGET_CYCLES_PER_S:g}",
            meets(figures["job_cycles_per_s"], TARGET_CYCLES_PER_S),
        ),
        ("raw_commits_per_s", figures["raw_commits_per_s"], "(reference)", ""),
        ("peer_cycles_per_s", figures["peer_cycles_per_s"], "(reference)", ""),
        (
            "peer_ratio",
            figures["peer_ratio"],
            f">= {TARGET_RATIO:g} (aim {AIM_RATIO:g})",
            meets(figures["peer_ratio"], TARGET_RATIO),
        ),
        (
            "idle_rss_mb",
            figures["idle_rss_mb"],
            f"<= {TARGET_IDLE_RSS_MB:g}",
            meets(TARGET_IDLE_RSS_MB, figures["idle_rss_mb"]),
        ),
    ]
    print(f"{'figure':<20} {'value':>12}  {'target':<20} met")
    for name, value, target, met in rows:
        formatted = "null" if value is None else f"{value:,.2f}"
        print(f"{name:<20} {formatted:>12}  {target:<20} {met}")
    print(f"ours / raw commits: {figures['job_cycles_per_s'] / figures['raw_commits_per_s']:.2f}")
    for note in notes:
        print(f"note: {note}")


def meets(value: float | None, bound: float | None) -> str:
    if value is None or bound is None:
        return "n/a"
    return "yes" if value >= bound else "NO"


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="end the output with one JSON line")
    parser.add_argument(
        "--seconds",
        type=float,
        default=5.0,
        help="maximum seconds for each throughput measurement (default 5)",
    )
    parser.add_argument(
        "--cycles",
        type=int,
        default=50_000,
        help="maximum cycles or commits for each measurement (default 50000)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=32,
        help="concurrent Trio tasks, and persist-queue threads (default 32)",
    )
    parser.add_argument(
        "--window",
        type=float,
        default=0.002,
        help="group-commit window in seconds (default 0.002, as the daemon)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=ROOT / "config" / "plaudit.example.toml",
        help="daemon configuration for the idle RSS figure",
    )
    return parser.parse_args()


def main() -> None:
    arguments = parse_arguments()
    bounds = {"cycles": arguments.cycles, "seconds": arguments.seconds}
    notes = [
        f"peer: {PEER_CONFIGURATION}",
        f"SQLite {sqlite3.sqlite_version}, nproc {os.cpu_count()}",
    ]

    with (
        tempfile.TemporaryDirectory() as ours,
        tempfile.TemporaryDirectory() as raw,
        tempfile.TemporaryDirectory() as peer_one,
        tempfile.TemporaryDirectory() as peer_many,
    ):
        cycles_per_s, details = measure_job_cycles(
            Path(ours), workers=arguments.workers, window=arguments.window, **bounds
        )
        raw_per_s = measure_raw_commits(Path(raw), **bounds)
        peer_single = measure_peer_cycles(Path(peer_one), threads=1, **bounds)
        peer_threaded = measure_peer_cycles(Path(peer_many), threads=arguments.workers, **bounds)

    # Compare with the faster of the two peer runs.
    peer_per_s = max(peer_single, peer_threaded)
    notes.append(
        f"peer runs: 1 thread {peer_single:,.0f} cycles/s, {arguments.workers} threads "
        f"{peer_threaded:,.0f} cycles/s; the faster is used"
    )
    notes.append(f"ours: {details}")

    idle_rss, rss_note = measure_idle_rss(arguments.config)
    if idle_rss is None:
        notes.append(
            f"idle_rss_mb is null: {rss_note} (command: python -m plaudit run "
            f"--config {arguments.config} ...)"
        )
    else:
        notes.append(f"idle_rss_mb: {rss_note}")

    figures: dict[str, Any] = {
        "job_cycles_per_s": round(cycles_per_s, 1),
        "raw_commits_per_s": round(raw_per_s, 1),
        "peer_cycles_per_s": round(peer_per_s, 1),
        "peer_ratio": round(cycles_per_s / peer_per_s, 3),
        "idle_rss_mb": None if idle_rss is None else round(idle_rss, 1),
    }
    print_table(figures, notes)

    if arguments.json:
        extras = {
            "peer_single_thread_cycles_per_s": round(peer_single, 1),
            "peer_threaded_cycles_per_s": round(peer_threaded, 1),
            "peer_configuration": PEER_CONFIGURATION,
            "ours": details,
            "sqlite_version": sqlite3.sqlite_version,
            "nproc": os.cpu_count(),
        }
        print(json.dumps({**figures, **extras}))


if __name__ == "__main__":
    main()
