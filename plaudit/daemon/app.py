"""``plaudit run``: the daemon process and its supervision tree.

Lifetimes nest.  The state-directory lock and the journal are opened first
and closed last.  The journal's group-commit writer outlives the supervisor,
so every child (platform actors, housekeeping, control socket, metrics,
watchdog) stops before the writer does.  SIGTERM and SIGINT drain, and SIGHUP
reloads the configuration.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, final

import trio

import plaudit
from plaudit import metrics
from plaudit.actors.base import Actor
from plaudit.actors.marketplace import marketplace_restart_pending
from plaudit.actors.webhooks import WebhookActor
from plaudit.config import Config, Paths, load_config, resolve_paths
from plaudit.config.check import locate_problems
from plaudit.config.credential_files import require_inbound_files
from plaudit.config.paths import create_state_folders, resolve_state_folders
from plaudit.daemon.child_alerts import ChildAlerts
from plaudit.daemon.commands import CommandHandler
from plaudit.daemon.control import serve_control
from plaudit.daemon.lock import StateLock
from plaudit.daemon.metrics_http import serve_metrics
from plaudit.daemon.notify import SdNotifier, watchdog_interval, watchdog_loop
from plaudit.daemon.platforms import (
    build_platform_actors,
    check_platform_secrets,
    reconfigure_platform_actors,
)
from plaudit.daemon.preflight import check_control_socket, check_listen_port
from plaudit.daemon.supervisor import (
    ChildContext,
    ChildSpec,
    ChildState,
    RestartPolicy,
    RestartType,
    Supervisor,
)
from plaudit.errors import ConfigError
from plaudit.journal import AsyncJournal, Journal
from plaudit.matching.service import matching_children
from plaudit.messaging.deliverability.service import deliverability_children
from plaudit.messaging.event_rules import campaign_rules_of
from plaudit.messaging.service import build_messaging, reconfigure_messaging
from plaudit.reliability.clock_steps import ClockStepWatch, sweep_leases
from plaudit.reliability.monitor import PlatformHealthMonitor
from plaudit.webhooks.service import reconfigure_webhooks, start_webhooks

log = logging.getLogger(__name__)

# Housekeeping runs at least every 5 s; missing it for this long means the
# event loop or the journal is stuck.
HOUSEKEEPING_STALE_SECONDS = 30.0


@final
class Daemon:
    """One running Plaudit process; ``run`` returns when it has drained."""

    def __init__(
        self,
        config_path: str,
        config: Config,
        paths: Paths,
        *,
        notifier: SdNotifier | None = None,
        state_dir_override: str | None = None,
        runtime_dir_override: str | None = None,
    ) -> None:
        self.config_path = config_path
        config = resolve_state_folders(config, paths.state_dir)
        self.config = config
        # The settings the process started with; some apply only at start.
        self._started_config = config
        self.restart_pending: list[str] = []
        self.paths = paths
        self.notifier = notifier or SdNotifier.from_env()
        self._overrides = (state_dir_override, runtime_dir_override)
        self.instance = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.state = "starting"
        self.started_at = time.time()
        # Uptime is measured on the monotonic clock, which a wall-clock step leaves alone.
        self._started_monotonic = time.monotonic()
        self.config_loaded_at = time.time()
        self.actors: dict[str, Actor] = {}
        self.supervisor: Supervisor | None = None
        self.child_alerts = ChildAlerts()
        self.journal: AsyncJournal | None = None
        self._drain_requested = trio.Event()
        # "host:port" of the metrics endpoint once it listens (the port may be 0 in config).
        self.metrics_address: str | None = None
        # Health states, uptime and incidents of every platform; built with the supervisor.
        self.health: PlatformHealthMonitor | None = None
        # trio.current_time() of the last housekeeping pass; the watchdog checks it.
        self._housekeeping_at = -math.inf
        # The inbound listener's serve function; None without an [inbound] table.
        self._inbound_serve: Callable[..., Awaitable[None]] | None = None

    def __repr__(self) -> str:
        return f"<Daemon {self.instance} state={self.state} actors={len(self.actors)}>"

    async def run(self) -> None:
        """Open the journal, start the tree, serve until drained."""
        with StateLock(self.paths.lock_path, state_dir=self.paths.state_dir):
            check_control_socket(self.paths.control_socket)
            # An unreadable credential file stops the start, as it stops a
            # reload, before any folder or the journal is created.
            try:
                require_inbound_files(self.config, self.config_path)
                check_platform_secrets(self.config)
            except ConfigError as error:
                located = locate_problems(self.config_path, error.problems)
                raise ConfigError(self.config_path, located) from error
            create_state_folders(self.config, self.paths.state_dir)
            if self.config.metrics.enabled:
                check_listen_port(
                    self.config.metrics.host, self.config.metrics.port, table="metrics"
                )
            if self.config.inbound is not None:
                check_listen_port(
                    self.config.inbound.host, self.config.inbound.port, table="inbound"
                )
            journal = self._open_journal()
            try:
                await self._run_with_journal(journal)
            finally:
                self._release_own_leases(journal)
                journal.close()
                log.info("daemon.stopped", extra={"instance": self.instance})

    def _open_journal(self) -> Journal:
        cfg = self.config.journal
        journal = Journal.open(
            self.paths.journal_path,
            instance=self.instance,
            lease_seconds=cfg.lease_seconds,
            max_attempts=cfg.max_attempts,
            retry_initial=cfg.retry_initial,
            retry_max=cfg.retry_max,
            # The state lock proves no other daemon holds these leases.
            recover_all_leases=True,
        )
        log.info(
            "journal.opened",
            extra={
                "path": str(self.paths.journal_path),
                "schema": journal.schema_version,
                "leases_recovered": journal.recovered_at_open,
            },
        )
        return journal

    def _release_own_leases(self, journal: Journal) -> None:
        """Hand back every job this process still holds, so the next start need not wait."""
        released = journal.release_held()
        if released:
            log.warning("journal.leases_released_at_exit", extra={"jobs": released})

    async def _run_with_journal(self, journal: Journal) -> None:
        cfg = self.config.journal
        self.journal = AsyncJournal(
            journal, window=cfg.group_commit_window, max_batch=cfg.group_commit_max
        )
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async with trio.open_nursery() as outer:
                await outer.start(self.journal.run)
                outer.start_soon(self._handle_signals, signals)
                outer.start_soon(self.child_alerts.run, self.journal)
                await self._supervise()
                outer.cancel_scope.cancel()

    async def _supervise(self) -> None:
        """Run the supervisor until a drain is requested, then stop it within the deadline."""
        self.supervisor = self._build_supervisor()
        async with trio.open_nursery() as nursery:
            # Start in the background: a drain requested while a child is
            # still starting must not wait for that start to finish.
            nursery.start_soon(
                partial(self.supervisor.run, task_status=_ReadyCallback(self._tree_started))
            )
            await self._drain_requested.wait()
            await self._drain(nursery)

    def _tree_started(self) -> None:
        if not self._drain_requested.is_set():
            self._mark_ready()

    def _mark_ready(self) -> None:
        self.state = "running"
        metrics.READY.set(1)
        metrics.CONFIG_RELOAD_OK.set(1)
        metrics.CONFIG_RELOAD_TIME.set(self.config_loaded_at)
        self.notifier.ready()
        self.notifier.status(f"running: {len(self.actors)} platform actors")
        log.info("daemon.ready", extra={"instance": self.instance, "pid": os.getpid()})

    async def _drain(self, nursery: trio.Nursery) -> None:
        """Stop claiming, let the children finish or release their jobs, give up at the deadline."""
        self.state = "draining"
        metrics.READY.set(0)
        self.notifier.stopping()
        self.notifier.status("draining")
        deadline = self.config.daemon.shutdown_timeout
        log.info("daemon.draining", extra={"deadline_seconds": deadline})
        assert self.supervisor is not None
        with trio.move_on_after(deadline) as scope:
            await self.supervisor.stop()
        if scope.cancelled_caught:
            log.warning("daemon.drain_deadline_passed", extra={"deadline_seconds": deadline})
        nursery.cancel_scope.cancel()

    def request_drain(self) -> None:
        self._drain_requested.set()

    async def _handle_signals(self, signals: Any) -> None:
        async for signum in signals:
            if signum == signal.SIGHUP:
                with contextlib.suppress(ConfigError):
                    # Logged by reload(); the running configuration stays.
                    await self.reload()
            else:
                log.info("daemon.signal", extra={"signal": signal.Signals(signum).name})
                self.request_drain()

    async def reload(self) -> None:
        """Apply a new config from disk; an invalid one is rejected and the running one stays.

        Raises ConfigError (after logging it) so ``ctl reload`` can show the reason.
        """
        self.notifier.reloading()
        state_dir, runtime_dir = self._overrides
        try:
            config = load_config(self.config_path)
            paths = resolve_paths(config, state_dir=state_dir, runtime_dir=runtime_dir)
            config = resolve_state_folders(config, paths.state_dir)
            self._check_reloadable(config, paths)
            create_state_folders(config, paths.state_dir)
            check_platform_secrets(config)
        except ConfigError as error:
            metrics.CONFIG_RELOAD_OK.set(0)
            log.error(  # noqa: TRY400 - the problems say it all; a traceback adds nothing
                "config.reload_rejected",
                extra={"path": self.config_path, "problems": error.problems},
            )
            self.notifier.ready()
            raise
        await reconfigure_platform_actors(self, config)
        await reconfigure_messaging(self.actors, config)
        if self.health is not None:
            # The new thresholds apply from the next observation on.
            self.health.policy = config.health
        webhooks = self.actors.get("webhooks")
        if isinstance(webhooks, WebhookActor):
            reconfigure_webhooks(self.webhook_router, webhooks, config)
        self.restart_pending = self._restart_pending(config)
        if self.restart_pending:
            log.warning("config.restart_required", extra={"tables": self.restart_pending})
        self.config = config
        self.config_loaded_at = time.time()
        metrics.CONFIG_RELOAD_OK.set(1)
        metrics.CONFIG_RELOAD_TIME.set(self.config_loaded_at)
        logging.getLogger().setLevel(config.daemon.log_level.upper())
        self.notifier.ready()
        log.info("config.reloaded", extra={"path": self.config_path})

    def _restart_pending(self, config: Config) -> list[str]:
        """Name the tables whose changes take effect only at the next start.

        The journal's policy, the supervisor's budgets and the control socket's
        peers are fixed when the process starts.  Every difference from the
        settings the process started with is listed, so a reload never claims
        to have applied them.
        """
        started = self._started_config
        pending = [
            name
            for name in ("journal", "supervisor", "control", "inbound")
            if getattr(started, name) != getattr(config, name)
        ]
        if marketplace_restart_pending(self.actors, config):
            # A marketplace site added or removed: its actor starts or stops at a restart.
            pending.append("platforms.marketplace")
        return pending

    def _check_reloadable(self, config: Config, paths: Paths) -> None:
        """Reject changes that only a restart can apply, naming each one."""
        fixed = {
            "daemon.state_dir": (self.paths.state_dir, paths.state_dir),
            "journal.path": (self.paths.journal_path, paths.journal_path),
            "control.socket": (self.paths.control_socket, paths.control_socket),
            "metrics": (self.config.metrics, config.metrics),
        }
        problems = [
            f"{key}: changed from {old!r} to {new!r}; "
            "a reload cannot apply this, restart the daemon"
            for key, (old, new) in fixed.items()
            if old != new
        ]
        if problems:
            raise ConfigError(self.config_path, problems)

    def _build_supervisor(self) -> Supervisor:
        policy = RestartPolicy.from_config(self.config.supervisor)
        grace = self.config.supervisor.shutdown_grace
        assert self.journal is not None
        self.health = PlatformHealthMonitor(self.journal, policy=self.config.health)
        self.actors = build_platform_actors(self.config, self.journal, monitor=self.health)
        # Installs the emit hook too, so events from here on fan out to endpoints.
        self.webhook_router, self.actors["webhooks"] = start_webhooks(self.config, self.journal)
        messaging = build_messaging(
            self.config,
            self.journal,
            state_dir=self.paths.state_dir,
            config_path=self.config_path,
            settings=lambda: self.config,
        )
        inbound = None
        if self.config.inbound is not None:
            # Imported only when configured: its signature libraries cost
            # about 9 MB of resident memory.
            from plaudit.inbound.service import build_inbound

            inbound = build_inbound(
                self.config,
                self.journal,
                config_path=self.config_path,
                unsubscribe_pages=messaging.unsubscribe_pages,
                rules=lambda: campaign_rules_of(self.config),
            )
        self._inbound_serve = None if inbound is None else inbound[1]
        if inbound is not None:
            self.actors["inbound"] = inbound[0]
        # The notifier, or without campaigns an actor that only delivers alerts.
        self.actors["notifier"] = messaging.notifier
        # Children stop in reverse start order: the actors stop claiming and
        # hand back their jobs first, while the control socket and metrics
        # still serve requests.
        children = self._service_children(policy, grace)
        children += [
            ChildSpec(name, actor.start, policy=policy, shutdown_grace=grace, signals_ready=True)
            for name, actor in self.actors.items()
        ]
        children += [
            ChildSpec(name, start, policy=policy, shutdown_grace=grace, signals_ready=True)
            for name, start in deliverability_children(
                self.config,
                self.journal,
                state_dir=self.paths.state_dir,
                settings=lambda: self.config.deliverability,
                rules=lambda: campaign_rules_of(self.config),
            )
        ]
        # Review matching and the report gauges.
        children += [
            ChildSpec(name, start, policy=policy, shutdown_grace=grace, signals_ready=True)
            for name, start in matching_children(self.journal, lambda: self.config)
        ]
        # Each child has its own budget; a child that exhausts it is marked
        # failed and its siblings keep running.  The root's own intensity is
        # set above the sum of those budgets so that the root never escalates:
        # escalating at the top would end the process.
        root_intensity = dataclasses.replace(
            policy, max_restarts=policy.max_restarts * len(children) + 1
        )
        return Supervisor("root", children, intensity=root_intensity, on_event=self._on_child_event)

    def _on_child_event(
        self, name: str, old: ChildState, new: ChildState, error: BaseException | None
    ) -> None:
        self.child_alerts.observe(name, old, new, error)
        if new == ChildState.FAILED:
            self.notifier.status(f"degraded: {name} failed")
            log.error("daemon.child_failed", extra={"child": name, "error": repr(error)})

    def _service_children(self, policy: RestartPolicy, grace: float) -> list[ChildSpec]:
        handler = CommandHandler(self)
        cfg = self.config
        mode = int(cfg.control.mode, 8)

        async def control(ctx: ChildContext) -> None:
            await serve_until_stopped(
                ctx,
                partial(
                    serve_control,
                    self.paths.control_socket,
                    handler,
                    mode=mode,
                    allowed_uids=cfg.control.allowed_uids,
                    allowed_gids=cfg.control.allowed_gids,
                ),
            )

        async def housekeeping(ctx: ChildContext) -> None:
            ctx.started()
            await self._housekeeping(ctx)

        async def health(ctx: ChildContext) -> None:
            monitor = self.health
            if monitor is None:
                raise RuntimeError("the health monitor is built with the supervisor")
            try:
                await serve_until_stopped(ctx, monitor.run)
            finally:
                # The last state changes and heartbeat, so uptime counts up to the stop.
                with trio.CancelScope(shield=True), trio.move_on_after(grace):
                    await monitor.flush()

        children = [
            ChildSpec("control", control, policy=policy, shutdown_grace=grace, signals_ready=True),
            ChildSpec(
                "housekeeping",
                housekeeping,
                policy=policy,
                shutdown_grace=grace,
                signals_ready=True,
            ),
            ChildSpec("health", health, policy=policy, shutdown_grace=grace, signals_ready=True),
        ]
        if cfg.metrics.enabled:

            async def metrics_server(ctx: ChildContext) -> None:
                await serve_until_stopped(
                    ctx,
                    partial(serve_metrics, cfg.metrics.host, cfg.metrics.port),
                    on_started=self._metrics_bound,
                )

            children.append(
                ChildSpec(
                    "metrics",
                    metrics_server,
                    policy=policy,
                    shutdown_grace=grace,
                    signals_ready=True,
                )
            )
        inbound_serve = self._inbound_serve
        if inbound_serve is not None:

            async def inbound_listener(ctx: ChildContext) -> None:
                await serve_until_stopped(ctx, inbound_serve)

            children.append(
                ChildSpec(
                    "inbound-listener",
                    inbound_listener,
                    policy=policy,
                    shutdown_grace=grace,
                    signals_ready=True,
                )
            )
        interval = watchdog_interval()
        if interval is not None and self.notifier.enabled:

            async def watchdog(ctx: ChildContext) -> None:
                ctx.started()
                await watchdog_loop(self.notifier, interval=interval, healthy=self.healthy)

            children.append(
                ChildSpec(
                    "watchdog", watchdog, policy=policy, shutdown_grace=grace, signals_ready=True
                )
            )
        return children

    def _metrics_bound(self, address: tuple[str, int]) -> None:
        host, port = address
        self.metrics_address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def healthy(self) -> bool:
        """Tell the systemd watchdog whether the daemon still makes progress.

        Housekeeping writes to and reads from the journal every few seconds, so
        a recent pass shows that the event loop and the journal both respond.
        A journal stuck on a hung disk stops the pings, and systemd restarts
        the service.
        """
        if self.state not in ("running", "draining") or self.journal is None:
            return False
        if not self.journal.statistics().running:
            return False
        return trio.current_time() - self._housekeeping_at < HOUSEKEEPING_STALE_SECONDS

    async def _housekeeping(self, ctx: ChildContext) -> None:
        """Return expired leases to ready and refresh the journal gauges, periodically."""
        assert self.journal is not None
        interval = min(self.config.journal.lease_sweep_interval, 5.0)
        watch = ClockStepWatch(wall=time.time, monotonic=trio.current_time)
        while not ctx.stop_requested.is_set():
            recovered = await sweep_leases(self.journal, watch)
            if recovered:
                log.warning("journal.leases_recovered", extra={"jobs": recovered})
            await self.refresh_job_gauges()
            self._housekeeping_at = trio.current_time()
            with trio.move_on_after(interval):
                await ctx.stop_requested.wait()

    async def refresh_job_gauges(self) -> None:
        assert self.journal is not None
        counts = await self.journal.read(lambda journal: journal.counts())
        metrics.JOBS.clear()
        for kind, state, count in counts:
            metrics.JOBS.labels(kind, state).set(count)

    def failed_children(self) -> list[str]:
        """Name the permanent children that the supervisor marked failed, in start order."""
        if self.supervisor is None:
            return []
        return [
            child.name
            for child in self.supervisor.statistics().children
            if child.state is ChildState.FAILED and child.restart_type is RestartType.PERMANENT
        ]

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "version": plaudit.__version__,
            "state": self.state,
            # A failed permanent child does work the daemon needs, so it is not ready.
            "ready": self.state == "running" and not self.failed_children(),
            "failed_children": self.failed_children(),
            "uptime_seconds": round(time.monotonic() - self._started_monotonic, 3),
            "config_path": self.config_path,
            "config_loaded_at": self.config_loaded_at,
            "instance": self.instance,
            "state_dir": str(self.paths.state_dir),
            "metrics_address": self.metrics_address,
        }


@final
class _ReadyCallback:
    """A ``task_status`` that calls back when the task reports it has started."""

    def __init__(self, callback: Callable[[], None]) -> None:
        self._callback = callback

    def started(self, value: object = None) -> None:
        self._callback()


async def serve_until_stopped(
    ctx: ChildContext,
    serve: Callable[..., Awaitable[object]],
    on_started: Callable[[Any], None] | None = None,
) -> None:
    """Run a server that reports readiness through ``task_status`` until asked to stop.

    ``on_started`` receives the value the server passed to ``task_status.started``.
    """
    async with trio.open_nursery() as nursery:
        value = await nursery.start(serve)
        if on_started is not None:
            on_started(value)
        ctx.started()
        await ctx.stop_requested.wait()
        nursery.cancel_scope.cancel()
