"""The commands the daemon serves on its control socket.

status, jobs, retry, pause, resume, drain and reload, plus health and watch
(a stream of health state changes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, final

import msgspec

from plaudit.actors.marketplace import find_profile_actor
from plaudit.alerts_ctl import alert_commands
from plaudit.daemon.control_wire import InvalidArgument, UnknownCommand
from plaudit.errors import ConfigError, ControlError, JobNotFoundError, PlatformError
from plaudit.inbound.control import inbound_commands
from plaudit.journal import Job, JobState
from plaudit.matching.service import matching_commands
from plaudit.messaging.couple_commands import with_couples_import
from plaudit.messaging.deliverability.service import deliverability_commands
from plaudit.messaging.push_ctl import push_commands
from plaudit.messaging.request_commands import request_commands
from plaudit.personalisation.control import personalisation_commands
from plaudit.reliability.limiter import quota_statistics
from plaudit.reliability.monitor import PlatformHealthMonitor
from plaudit.reviews.import_commands import import_commands
from plaudit.reviews.list_commands import with_review_list
from plaudit.reviews.reply_commands import with_review_replies
from plaudit.webhooks.control import webhook_commands

if TYPE_CHECKING:
    from plaudit.daemon.app import Daemon

JOB_STATES = [state.value for state in JobState]
# SQLite stores integers in 64 bits; larger ids cannot exist.
SQLITE_MAX_INTEGER = 2**63 - 1


def job_view(job: Job) -> dict[str, Any]:
    view: dict[str, Any] = msgspec.to_builtins(job)
    return view


def _int_arg(args: dict[str, Any], name: str, *, default: int | None = None) -> int:
    value = args.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"argument {name!r} must be an integer, got {value!r}")
    if not 0 <= value <= SQLITE_MAX_INTEGER:
        raise InvalidArgument(
            f"argument {name!r} must be between 0 and {SQLITE_MAX_INTEGER}, got {value}"
        )
    return value


def _str_arg(args: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = args.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"argument {name!r} must be a non-empty string, got {value!r}")
    return value


@final
class CommandHandler:
    """Dispatches one control request to the daemon and returns a JSON-ready result."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self._commands: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {
            "status": self.status,
            "jobs": self.jobs,
            "retry": self.retry,
            "pause": self.pause,
            "resume": self.resume,
            "drain": self.drain,
            "reload": self.reload,
            "health": self.health,
            "watch": self.watch,
            "verify": self.verify,
        }
        self._commands.update(webhook_commands(daemon))
        self._commands.update(import_commands(daemon))
        self._commands["import"] = with_couples_import(daemon, self._commands["import"])
        self._commands.update(deliverability_commands(daemon))
        self._commands.update(inbound_commands(daemon))
        self._commands.update(matching_commands(daemon))
        self._commands["review"] = with_review_replies(daemon, self._commands["review"])
        self._commands["review"] = with_review_list(daemon, self._commands["review"])
        self._commands.update(request_commands(daemon))
        self._commands.update(personalisation_commands(daemon))
        self._commands.update(alert_commands(daemon))
        self._commands.update(push_commands(daemon))

    async def __call__(self, command: str, args: dict[str, Any]) -> Any:
        try:
            run = self._commands[command]
        except KeyError:
            known = ", ".join(sorted(self._commands))
            raise UnknownCommand(f"unknown command {command!r}; known commands: {known}") from None
        return await run(args)

    @property
    def _journal(self) -> Any:
        if self.daemon.journal is None:
            raise ControlError("the journal is not open yet; try again in a moment")
        return self.daemon.journal

    async def status(self, args: dict[str, Any]) -> dict[str, Any]:
        counts = await self._journal.read(lambda journal: journal.counts())
        totals = dict.fromkeys(JOB_STATES, 0)
        for _kind, state, count in counts:
            totals[state] = totals.get(state, 0) + count
        schema = await self._journal.read(lambda journal: journal.schema_version)
        return {
            "daemon": self.daemon.status(),
            "actors": self._actor_rows(),
            "journal": {
                "path": str(self.daemon.paths.journal_path),
                "schema_version": schema,
                "counts": [
                    {"kind": kind, "state": state, "count": count} for kind, state, count in counts
                ],
                "totals": totals,
                "group_commit": msgspec.to_builtins(self._journal.statistics()),
            },
        }

    def _actor_rows(self) -> list[dict[str, Any]]:
        supervisor = self.daemon.supervisor
        if supervisor is None:
            return []
        rows = []
        for child in supervisor.statistics().children:
            row: dict[str, Any] = {
                "name": child.name,
                "state": str(child.state),
                "restarts": child.restarts,
                "last_error": child.last_error,
                "restart_type": str(child.restart_type),
                "paused": False,
            }
            actor = self.daemon.actors.get(child.name)
            if actor is not None:
                stats = actor.statistics()
                row.update(
                    paused=stats.paused, health=stats.health, jobs_succeeded=stats.jobs_succeeded
                )
                row["breaker"] = self._breaker_state(child.name)
                row["last_error"] = row["last_error"] or stats.last_error
            rows.append(row)
        return rows

    async def jobs(self, args: dict[str, Any]) -> dict[str, Any]:
        state = _str_arg(args, "state", required=False)
        if state is not None and state not in JOB_STATES:
            raise InvalidArgument(
                f"unknown job state {state!r}; use one of {', '.join(JOB_STATES)}"
            )
        kind = _str_arg(args, "kind", required=False)
        owner = _str_arg(args, "owner", required=False)
        limit = _int_arg(args, "limit", default=50)
        if not 1 <= limit <= 1000:
            raise InvalidArgument(f"limit must be between 1 and 1000, got {limit}")
        jobs = await self._journal.read(
            lambda journal: journal.jobs(state=state, kind=kind, owner=owner, limit=limit)
        )
        return {"jobs": [job_view(job) for job in jobs]}

    async def retry(self, args: dict[str, Any]) -> dict[str, Any]:
        job_id = _int_arg(args, "job")
        try:
            job = await self._journal.retry(job_id)
        except JobNotFoundError as error:
            raise InvalidArgument(str(error)) from error
        actor = self.daemon.actors.get(job.owner)
        if actor is not None:
            actor.wake()
        return {"job": job_view(job)}

    def _actor(self, args: dict[str, Any]) -> Any:
        name = _str_arg(args, "actor")
        actor = self.daemon.actors.get(str(name))
        if actor is None:
            known = ", ".join(sorted(self.daemon.actors)) or "none"
            raise InvalidArgument(f"no actor named {name!r}; actors that can pause: {known}")
        return actor

    async def pause(self, args: dict[str, Any]) -> dict[str, Any]:
        actor = self._actor(args)
        actor.pause()
        return {"actor": actor.name, "paused": True}

    async def resume(self, args: dict[str, Any]) -> dict[str, Any]:
        actor = self._actor(args)
        actor.resume()
        return {"actor": actor.name, "paused": False}

    async def drain(self, args: dict[str, Any]) -> dict[str, Any]:
        self.daemon.request_drain()
        return {"draining": True}

    async def reload(self, args: dict[str, Any]) -> dict[str, Any]:
        try:
            await self.daemon.reload()
        except ConfigError as error:
            raise ControlError(str(error)) from error
        return {
            "reloaded": True,
            "config_path": self.daemon.config_path,
            "restart_required": self.daemon.restart_pending,
        }

    async def verify(self, args: dict[str, Any]) -> dict[str, Any]:
        """Check a marketplace profile's storefront now; a mismatch also shows in health."""
        profile = str(_str_arg(args, "profile"))
        actor = find_profile_actor(self.daemon.actors, profile)
        if actor is None:
            raise InvalidArgument(
                f"no marketplace profile {profile!r}; use a profile_id of "
                "[[platforms.marketplace.profiles]], or site:profile_id when two sites share it"
            )
        try:
            verification = await actor.verify(profile.rpartition(":")[2])
        except PlatformError as error:
            raise ControlError(str(error)) from error
        result: dict[str, Any] = msgspec.to_builtins(verification)
        return result

    def _monitor(self) -> PlatformHealthMonitor:
        if self.daemon.health is None:
            raise ControlError("the health monitor is not running yet; try again in a moment")
        return self.daemon.health

    async def health(self, args: dict[str, Any]) -> dict[str, Any]:
        """Health states, uptime, breakers and incidents of every platform and profile."""
        report = await self._monitor().report()
        report["breakers"] = [
            msgspec.to_builtins(actor.breaker.statistics())
            for actor in self.daemon.actors.values()
            if actor.breaker is not None
        ]
        # One breaker guards every profile of a platform, so a profile shows its platform's.
        for row in report["subjects"]:
            row["breaker"] = self._breaker_state(str(row["platform"]))
            # Quotas are per platform account, so a profile shows its platform's too.
            quota = quota_statistics(str(row["platform"]))
            row["quota_used"] = None if quota is None else quota.used_ratio
        return report

    def _breaker_state(self, name: str) -> str | None:
        actor = self.daemon.actors.get(name)
        if actor is None or actor.breaker is None:
            return None
        return str(actor.breaker.state)

    async def watch(self, args: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Stream the current health states, then each state change as it happens."""
        return self._monitor().watch()
