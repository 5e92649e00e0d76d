"""Operator commands for webhooks, on the daemon's side of the control socket.

- ``webhooks``: every endpoint with its state, breaker and backlog;
  ``enable`` clears a disabled endpoint.
- ``deliveries``: the attempt log, newest first.
- ``replay``: one failed or dead delivery by job id, or every failed or dead
  delivery of an endpoint created since a time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec

from plaudit.actors.webhooks import WebhookActor
from plaudit.daemon.control_wire import InvalidArgument
from plaudit.errors import ControlError, IllegalTransitionError, JobNotFoundError
from plaudit.journal import Job, Tx
from plaudit.journal import operations as job_operations
from plaudit.webhooks import records
from plaudit.webhooks.delivery import Outcome
from plaudit.webhooks.router import DELIVER_KIND

if TYPE_CHECKING:
    from plaudit.daemon.app import Daemon

Command = Callable[[dict[str, Any]], Awaitable[Any]]
OUTCOMES = [outcome.value for outcome in Outcome if outcome is not Outcome.DEFERRED]
MAX_LIMIT = 1000


def webhook_commands(daemon: Daemon) -> dict[str, Command]:
    """Return the webhook commands, keyed by name, for the control socket."""

    def actor() -> WebhookActor:
        found = daemon.actors.get("webhooks")
        if not isinstance(found, WebhookActor) or daemon.journal is None:
            raise ControlError("the webhook actor is not running yet; try again in a moment")
        return found

    async def webhooks(args: dict[str, Any]) -> dict[str, Any]:
        webhook_actor = actor()
        name = args.get("enable")
        if name is not None:
            _require_endpoint(webhook_actor, name)
            await webhook_actor.enable(name)
        return await _overview(webhook_actor)

    async def deliveries(args: dict[str, Any]) -> dict[str, Any]:
        webhook_actor = actor()
        endpoint = _optional_str(args, "endpoint")
        outcome = _optional_str(args, "state")
        if outcome is not None and outcome not in OUTCOMES:
            raise InvalidArgument(
                f"unknown delivery state {outcome!r}; use one of {', '.join(OUTCOMES)}"
            )
        limit = args.get("limit", 50)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise InvalidArgument(f"limit must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")
        rows = await webhook_actor.journal.read(
            lambda journal: records.attempts(
                journal, endpoint=endpoint, outcome=outcome, limit=limit
            )
        )
        return {"attempts": rows}

    async def replay(args: dict[str, Any]) -> dict[str, Any]:
        webhook_actor = actor()
        if "job" in args:
            replayed = [await _replay_one(webhook_actor, args["job"])]
        else:
            replayed = await _replay_since(webhook_actor, args)
        webhook_actor.wake()
        return {"replayed": [msgspec.to_builtins(job) for job in replayed]}

    return {"webhooks": webhooks, "deliveries": deliveries, "replay": replay}


async def _overview(actor: WebhookActor) -> dict[str, Any]:
    stored = {row["name"]: row for row in await actor.journal.read(records.endpoint_rows)}
    endpoints = []
    for name, endpoint in sorted(actor.endpoints.items()):
        row = stored.pop(name, {"state": "enabled", "backlog": {}})
        breaker = actor.breakers.get(name)
        endpoints.append(
            {
                **row,
                "name": name,
                "url": endpoint.url,
                "configured": True,
                "enabled_in_config": endpoint.enabled,
                "events": list(endpoint.events),
                "max_in_flight": endpoint.max_in_flight,
                "max_per_second": endpoint.max_per_second,
                "breaker": None if breaker is None else msgspec.to_builtins(breaker.statistics()),
            }
        )
    # Endpoints removed from the configuration that still have history.
    endpoints += [{**row, "configured": False} for row in stored.values()]
    return {
        "endpoints": endpoints,
        "statistics": msgspec.to_builtins(actor.webhook_statistics()),
        "batching": msgspec.to_builtins(actor.batcher_statistics()),
    }


async def _replay_one(actor: WebhookActor, job_id: Any) -> Job:
    if isinstance(job_id, bool) or not isinstance(job_id, int):
        raise InvalidArgument(f"argument 'job' must be a delivery id (an integer), got {job_id!r}")
    try:
        job = await actor.journal.get(job_id)
    except JobNotFoundError as error:
        raise InvalidArgument(
            f"delivery {job_id} not found; list delivery ids with `plaudit ctl deliveries`"
        ) from error
    if job.kind != DELIVER_KIND:
        raise InvalidArgument(
            f"job {job_id} is a {job.kind} job, not a webhook delivery; use `plaudit ctl retry`"
        )
    _require_endpoint_enabled(actor, str(job.payload["endpoint"]))
    try:
        return await actor.journal.retry(job_id)
    except IllegalTransitionError as error:
        raise InvalidArgument(f"delivery {error}") from error


async def _replay_since(actor: WebhookActor, args: dict[str, Any]) -> list[Job]:
    endpoint = _optional_str(args, "endpoint")
    since = args.get("since")
    if endpoint is None or isinstance(since, bool) or not isinstance(since, int | float):
        raise InvalidArgument(
            "replay needs a delivery id, or an endpoint and a start time "
            "(--endpoint NAME --since ISO_TIME)"
        )
    _require_endpoint(actor, endpoint)
    _require_endpoint_enabled(actor, endpoint)

    def replay(tx: Tx) -> list[Job]:
        ids = records.replay_since(tx, endpoint, float(since))
        return [_job(tx, job_id) for job_id in ids]

    return await actor.journal.transaction(replay)


def _job(tx: Tx, job_id: int) -> Job:
    row = tx.execute(
        f"SELECT {job_operations.JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)
    ).fetchone()
    return job_operations.job_from_row(row)


def _require_endpoint(actor: WebhookActor, name: Any) -> None:
    if not isinstance(name, str) or name not in actor.endpoints:
        known = ", ".join(sorted(actor.endpoints)) or "none"
        raise InvalidArgument(f"no webhook endpoint named {name!r}; configured endpoints: {known}")


def _require_endpoint_enabled(actor: WebhookActor, name: str) -> None:
    health = actor.endpoint_health.get(name)
    if health is not None and health.disabled:
        raise InvalidArgument(
            f"webhook endpoint {name} is disabled ({health.disabled_reason}); enable it first "
            f"with `plaudit ctl webhooks --enable {name}`, then replay"
        )


def _optional_str(args: dict[str, Any], name: str) -> str | None:
    value = args.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"argument {name!r} must be a non-empty string, got {value!r}")
    return value
