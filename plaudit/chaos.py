"""``plaudit demo --chaos``: the daemon under platform faults and SIGKILLs, measured.

The run serves the sandbox and a webhook receiver in this process and runs
``plaudit run`` as a child process, as ``plaudit demo`` does, with shortened
intervals but the production code paths.  Once the first daemon responds on
its control socket, the fault phase begins: for ``--seconds`` the run injects
a seeded fault schedule per platform, SIGKILLs the daemon at seeded moments
and starts it again at once.  Then every fault is switched off for a grace period,
the daemon is stopped with SIGTERM and the journal file is compared with the
sandbox's truth and the receiver's record.  When events written during that
stop still wait for delivery, the daemon is started again until they are
delivered (at most three starts of 30 s), as the next start in production
would deliver them.

The fault schedule, for every platform: 20 % of API requests get a 500, and
5 % of responses have a malformed body.  On top of that, the seed chooses
one platform for a hard outage (every request gets a 500) over 40 % of the
run and a second one for a short outage of 10 s.  A third gets
bursts of 429 with ``Retry-After: 1`` and the fourth latency spikes of 2 s.
The webhook receiver fails single requests (503, connection reset or a 3 s
response), at most 0.4 a second.

NOTE: the seed fixes the fault windows and the kill moments relative to the
start of the fault phase, but sync slots follow the wall clock and the
daemon's start-up time varies, so two runs with one seed can differ.

Figures, all read from the journal file and the receiver after the run:

- ``availability``: a *scheduled cycle* is one (platform, profile, slot) of
  the sync schedule, where slot ``s`` covers wall time
  ``[s * interval, (s + 1) * interval)`` and every slot that lies wholly
  inside the fault phase counts, whether or not its job exists.  A cycle
  succeeded when the sync job keyed by that slot is ``succeeded`` and
  finished before its slot ended.  Cycles that overlap an injected hard
  outage of their platform are left out, because no client can sync a
  platform that rejects every request; ``availability_including_outages``
  counts them too.
- ``webhook_delivery_rate``: share of journal events emitted at least
  5 s (``DELIVERY_ALLOWANCE``) before the fault phase ended whose webhook
  the receiver accepted (2xx, valid signature) before it ended.
- ``webhook_delivered_eventually``: share of all events accepted by the end
  of the grace period.
- ``recovery_seconds_*``: per outage, seconds from its end to the first sync
  job of that platform that succeeded after it.
- ``sync_accuracy``: reviews that match the truth in every compared field,
  divided by the reviews the journal should have plus the extra ones it has.
  A review deleted on the platform is compared by its deletion alone, because
  an edit made between the last listing and the deletion is never served.
  ``sync_differences`` lists the first differences.
- ``lost_side_effects``: events whose webhook never arrived, plus
  ``review.created`` events beyond the first for one review, plus e-mail
  review-request steps due before the fault phase ended whose message (by
  Message-ID) never reached the SMTP sink, whatever the journal recorded.
- ``duplicated_side_effects``: messages that reached the SMTP sink more
  than once for one request step (by Message-ID).

The marketplace storefront (one WeddingWire profile) gets its own faults:
10 % of page requests fail with a 500, and three windows bring 500s only,
bot-challenge pages only and 3 s pages (see :mod:`plaudit.chaos_storefront`).
``marketplace`` in the summary reports the profile's failed and retried
jobs, incidents, recovery after each storefront outage and sync accuracy;
the overall ``sync_accuracy`` includes the profile too.

Review requests: the config gets a campaign whose steps fall due all
through the fault phase (see :mod:`plaudit.chaos_mail`).  The sink fails
single transactions before DATA, and every second SIGKILL is aimed at a
send, so it lands while a message's DATA waits for the sink's reply.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any, Final, final

import httpx
import trio

from plaudit.chaos_faults import (
    BASE_FAULTS,
    NO_FAULTS,
    PLATFORMS,
    SHORT_OUTAGE,
    FaultInjector,
    Window,
    fault_plan,
    faults_path,
    kill_times,
    settings_at,
)
from plaudit.chaos_figures import print_chaos_summary
from plaudit.chaos_mail import ChaosMail, campaign_config, step_count
from plaudit.chaos_storefront import open_incidents, storefront_config
from plaudit.chaos_summary import RunFacts, summarise, undelivered
from plaudit.daemon.control_client import request
from plaudit.demo import DemoError, compare, demo_config, fetch_truth, read_journal, stop_daemon
from plaudit.demo_dirs import demo_dirs, without_removed_files
from plaudit.errors import ControlError
from plaudit.sandbox import SandboxOptions, serve_sandbox
from plaudit.sandbox.receiver import DemoWebhooks, Fault, FaultKind, serve_receiver

__all__ = [
    "BASE_FAULTS",
    "GOOGLE_FULL_SYNC_INTERVAL",
    "LEFT_OVER_ROUNDS",
    "LEFT_OVER_SECONDS",
    "MIN_SECONDS",
    "NO_FAULTS",
    "PLATFORMS",
    "READY_TIMEOUT",
    "SHORT_OUTAGE",
    "SYNC_INTERVAL",
    "ChaosRun",
    "Window",
    "chaos_main",
    "fault_plan",
    "faults_path",
    "kill_times",
    "settings_at",
]

# Seconds; production syncs every 15 minutes, the chaos run every 15 s.  A
# restart after SIGKILL took 2 to 4 s on a 2-core machine at load average 4
# (process start to the first response on the control socket, no bytecode
# cache), and a slot must hold a restart plus a sync, so 5 s slots lost every
# cycle of a slot in which the daemon was killed before it had synced.
SYNC_INTERVAL: Final = 15.0
# Seconds between full Google listings; the production default is an hour.
GOOGLE_FULL_SYNC_INTERVAL: Final = 30.0
MIN_SECONDS: Final = 30.0
# Seconds the first daemon may take to open its control socket.
READY_TIMEOUT: Final = 60.0
# Starts after the final stop, and seconds each, to deliver events that the
# stopping daemon wrote but did not send.
LEFT_OVER_ROUNDS: Final = 3
LEFT_OVER_SECONDS: Final = 30.0

# Breaker and in-call retry settings scaled down with the sync interval.  The
# defaults (a breaker open for 30 s to 10 min, a 90 s call deadline) suit a
# 15-minute schedule, not a 15 s one.
_RELIABILITY_TABLES: Final = """
[platforms.{platform}.breaker]
open_initial = 1.0
open_max = 4.0

[platforms.{platform}.retry]
attempt_timeout = 4.0
deadline = 8.0
backoff_initial = 0.2
backoff_max = 1.0
"""


@final
class ChaosRun:
    """One chaos run: its sandbox, receiver, daemon processes and measurements."""

    def __init__(
        self, *, seconds: float, seed: int, state_dir: Path, runtime_dir: Path, as_json: bool
    ) -> None:
        self.seconds = seconds
        self.seed = seed
        # Ends early once everything agrees; long enough for a loaded 2-core machine.
        self.grace_seconds = max(60.0, seconds)
        self.state_dir = state_dir
        self.runtime_dir = runtime_dir
        self.as_json = as_json
        self.config_path = state_dir / "plaudit.toml"
        self.journal_path = state_dir / "journal.sqlite3"
        self.log_path = state_dir / "daemon.log"
        rng = random.Random(seed)
        # The fault plan draws from ``rng`` before the kill moments do.
        self.faults = FaultInjector(seconds=seconds, rng=rng, say=self.say)
        self.kill_at = kill_times(seconds, rng)
        self._receiver_rng = random.Random(seed + 1)
        self.webhooks = DemoWebhooks()
        self.mail = ChaosMail(seed=seed)
        self.base_url = ""
        self.kills = 0
        self.process: trio.Process | None = None
        # Unix times of the phase boundaries.
        self.phase_started = 0.0
        self.phase_ended = 0.0
        self.restarts_after_stop = 0

    def __repr__(self) -> str:
        return f"<ChaosRun seed={self.seed} seconds={self.seconds:g} kills={self.kills}>"

    def statistics(self) -> dict[str, Any]:
        """Return the run's progress: kills so far, fault windows and outages ended."""
        return {
            "seed": self.seed,
            "kills": self.kills,
            "kills_planned": len(self.kill_at),
            **self.faults.statistics(),
        }

    def say(self, line: str) -> None:
        print(line, file=sys.stderr if self.as_json else sys.stdout, flush=True)

    async def run(self) -> dict[str, Any]:
        options = SandboxOptions(seed=self.seed, script_seconds=self.seconds * 0.8)
        async with trio.open_nursery() as nursery:
            self.base_url = await nursery.start(serve_sandbox, options)
            receiver_url = await nursery.start(serve_receiver, self.webhooks.receiver)
            self.webhooks.receiver.script.clear()
            smtp_port = await nursery.start(self.mail.sink.serve)
            self.config_path.write_text(self._config(receiver_url, smtp_port), encoding="utf-8")
            self.say(f"sandbox {self.base_url}, receiver {receiver_url}, seed {self.seed}")
            try:
                await self._start_daemon()
                await self._wait_until_ready()
                await self._fault_phase()
                converged = await self._grace_phase()
            finally:
                exit_code = await self._stop_daemon()
            exit_code = await self._deliver_left_over(exit_code)
            summary = await self._summarise(converged=converged, exit_code=exit_code)
            nursery.cancel_scope.cancel()
        return summary

    def _config(self, receiver_url: str, smtp_port: int) -> str:
        tables = "".join(_RELIABILITY_TABLES.format(platform=name) for name in PLATFORMS)
        base = demo_config(self.base_url, sync_interval=SYNC_INTERVAL)
        # Only full Google listings find deletions and replies to older reviews.
        google = f"[platforms.google]\nfull_sync_interval = {GOOGLE_FULL_SYNC_INTERVAL}\n"
        base = base.replace("[platforms.google]\n", google, 1)
        mail = campaign_config(
            port=smtp_port, base_url=self.base_url, steps=step_count(self.seconds)
        )
        storefront = storefront_config(self.base_url)
        return base + tables + self.webhooks.config(receiver_url) + mail + storefront

    async def _start_daemon(self) -> None:
        command = [
            sys.executable, "-m", "plaudit", "run",
            "--config", str(self.config_path),
            "--state-dir", str(self.state_dir),
            "--runtime-dir", str(self.runtime_dir),
        ]  # fmt: skip
        # Bytecode cached under the state directory, as an installed package has
        # it.  Compiling every module from source made each restart slower:
        # the control socket responded after 1.0 to 1.4 s without the cache
        # and 0.6 to 1.0 s with it (4 starts each, 2 cores, load average 3).
        env = dict(os.environ)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(self.state_dir / "pycache")
        # A session of its own keeps a terminal's Ctrl-C from reaching the daemon,
        # so only this run stops it, with SIGTERM.
        with self.log_path.open("ab") as log_file:
            self.process = await trio.lowlevel.open_process(
                command, stdout=log_file, stderr=log_file, env=env, start_new_session=True
            )
        self.say(f"daemon started: pid {self.process.pid}")

    async def _wait_until_ready(self) -> None:
        """Wait for the first daemon's control socket, so its start-up is not a fault."""
        socket_path = self.runtime_dir / "control.sock"
        with trio.move_on_after(READY_TIMEOUT):
            while True:
                self._check_alive()
                try:
                    await request(socket_path, "status", timeout=5.0)
                except (ControlError, OSError):
                    await trio.sleep(0.2)
                else:
                    await self.mail.import_couples(socket_path, self.state_dir)
                    return
        raise DemoError(
            f"the daemon did not respond on {socket_path} within {READY_TIMEOUT:g} s; "
            f"see {self.log_path}"
        )

    async def _fault_phase(self) -> None:
        self.phase_started = time.time()
        began = trio.current_time()
        kills = list(self.kill_at)
        async with httpx.AsyncClient(base_url=self.base_url, timeout=5.0) as client:
            while (elapsed := trio.current_time() - began) < self.seconds:
                await self.faults.apply(client, elapsed)
                if kills and elapsed >= kills[0]:
                    kills.pop(0)
                    # The second, fourth and sixth kills are aimed at a send.
                    await self._kill_and_restart(aimed=self.kills % 2 == 1)
                if not self.mail.imported:
                    await self.mail.import_couples(
                        self.runtime_dir / "control.sock", self.state_dir
                    )
                self._maybe_fault_receiver()
                self.mail.maybe_fault()
                self._check_alive()
                await trio.sleep(0.25)
            await self.faults.switch_off(client)
        self.webhooks.receiver.script.clear()
        self.mail.sink.script.clear()
        self.phase_ended = time.time()
        self.say(f"fault phase over after {self.seconds:g} s; {self.kills} kills")

    def _maybe_fault_receiver(self) -> None:
        # Called every 0.25 s, so at most 0.4 scripted faults a second; a 40 s
        # run delivered about 6 webhooks a second.  At most one fault waits at
        # a time: faults piled up while no delivery came would otherwise fail
        # several requests in a row, which is an outage rather than noise.
        if not self.webhooks.receiver.script and self._receiver_rng.random() < 0.1:
            kind = self._receiver_rng.choice((FaultKind.STATUS, FaultKind.RESET, FaultKind.SLOW))
            self.webhooks.receiver.add_faults([Fault(kind, status=503, seconds=3.0)])

    async def _kill_and_restart(self, *, aimed: bool) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            during_send = aimed and await self.mail.aim_at_send(
                kill=lambda: process.send_signal(signal.SIGKILL)
            )
            if not aimed:
                process.send_signal(signal.SIGKILL)
            await process.wait()
            self.kills += 1
            suffix = " during a send" if during_send else ""
            self.say(f"daemon pid {process.pid} killed with SIGKILL{suffix}")
        await self._start_daemon()

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise DemoError(
                f"the daemon exited by itself with status {self.process.returncode}; "
                f"see {self.log_path}"
            )

    async def _grace_phase(self) -> bool:
        """Wait, faults off, until the journal agrees with the truth and nothing is left over.

        Nothing left over: every webhook arrived, every request step due in
        the fault phase reached the sink, and the storefront's incidents are
        resolved.
        """
        deadline = trio.current_time() + self.grace_seconds
        while trio.current_time() < deadline:
            await trio.sleep(1.0)
            self._check_alive()
            reviews, _ = await trio.to_thread.run_sync(read_journal, self.journal_path)
            differences = compare(reviews, await fetch_truth(self.base_url))
            recovering = open_incidents(self.journal_path)
            if not differences and not self._left_over() and not recovering:
                return True
        return False

    async def _stop_daemon(self) -> int:
        """Stop the running daemon as :func:`plaudit.demo.stop_daemon` does; -1 when none runs."""
        if self.process is None:
            return -1
        return await stop_daemon(self.process)

    async def _deliver_left_over(self, exit_code: int) -> int:
        """Start the daemon again while events written during its drain wait for delivery.

        An event emitted while the daemon stops (an incident resolved by the
        last sync, say) stays in the journal's outbox and goes out after the
        next start, so "delivered eventually" includes that start.  At most
        ``LEFT_OVER_ROUNDS`` starts; returns the first non-zero exit status.
        """
        for _ in range(LEFT_OVER_ROUNDS):
            if not self._left_over():
                break
            self.restarts_after_stop += 1
            self.say(f"{self._left_over()} events or request steps wait; starting again")
            try:
                await self._start_daemon()
                await self._wait_until_ready()
                deadline = trio.current_time() + LEFT_OVER_SECONDS
                while trio.current_time() < deadline:
                    await trio.sleep(0.5)
                    if not self._left_over():
                        break
            finally:
                code = await self._stop_daemon()
            exit_code = exit_code or code
        return exit_code

    def _left_over(self) -> int:
        """Return undelivered events plus request steps due in the fault phase and not sent."""
        unsent = self.mail.pending(self.journal_path, due_before=self.phase_ended)
        return len(undelivered(self.journal_path, self.webhooks)) + unsent

    async def _summarise(self, *, converged: bool, exit_code: int) -> dict[str, Any]:
        facts = RunFacts(
            seed=self.seed,
            seconds=self.seconds,
            sync_interval=SYNC_INTERVAL,
            base_url=self.base_url,
            journal_path=self.journal_path,
            log_path=self.log_path,
            phase_started=self.phase_started,
            phase_ended=self.phase_ended,
            kills=self.kills,
            restarts_after_stop=self.restarts_after_stop,
        )
        return await summarise(
            facts,
            faults=self.faults,
            webhooks=self.webhooks,
            mail=self.mail,
            converged=converged,
            exit_code=exit_code,
        )


def chaos_main(
    *, seconds: float, seed: int, state_dir: str | None, as_json: bool, keep: bool = False
) -> int:
    """Run the chaos harness; exit status 0 only when every target holds."""
    if seconds < MIN_SECONDS:
        raise DemoError(
            f"--seconds {seconds:g} is too short for --chaos; use at least {MIN_SECONDS:g}"
        )
    with demo_dirs(state_dir, prefix="plaudit-chaos-", keep=keep) as dirs:
        run = ChaosRun(
            seconds=seconds,
            seed=seed,
            state_dir=dirs.state,
            runtime_dir=dirs.runtime,
            as_json=as_json,
        )
        summary = without_removed_files(trio.run(run.run), dirs)
    if as_json:
        print(json.dumps(summary, default=str))
    else:
        print_chaos_summary(summary)
    return 0 if not summary["failed_targets"] else 1
