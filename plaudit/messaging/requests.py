"""Review requests in the journal: adding one by hand, listing them and showing one.

``plaudit ctl request add`` validates a couple exactly as a CSV import does,
because it builds a one-row CSV in the generic layout and passes it through
:func:`parse_couples_csv`.  Each error names the ``ctl`` option to correct.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any, Final, final

import msgspec

from plaudit.config.model import CampaignConfig, Config
from plaudit.errors import PlauditError
from plaudit.journal.tx import Tx
from plaudit.messaging.campaigns import SEND_JOB, first_step_at, schedule_step
from plaudit.messaging.consent import ConsentSource, consent_history
from plaudit.messaging.couples import Couple, load_couple, parse_couples_csv, store_couples
from plaudit.personalisation.explain import explain_request

# Generic CSV column -> the ``plaudit ctl request add`` option that fills it.
CTL_CONSENT: Final = ConsentSource(kind="ctl", detail="plaudit ctl request add")
OPTION_OF_COLUMN: Final[dict[str, str]] = {
    "names": "--name",
    "email": "--email",
    "phone": "--phone",
    "wedding_date": "--wedding-date",
    "venue": "--venue",
    "timezone": "--timezone",
    "email_consent": "--no-email-consent",
    "sms_consent": "--sms-consent",
}
REQUEST_STATES: Final = (
    "scheduled",
    "sending",
    "sent",
    "bounced",
    "suppressed",
    "stopped",
    "failed",
)
_REQUEST_COLUMNS: Final = (
    "id, couple_id, campaign, step, channel, state, scheduled_at, sent_at, message_id,"
    " provider, last_error, updated_at, unconfirmed"
)
_REQUEST_FIELDS: Final = (
    "id",
    "couple_id",
    "campaign",
    "step",
    "channel",
    "state",
    "scheduled_at",
    "sent_at",
    "message_id",
    "provider",
    "last_error",
    "updated_at",
    # 1 when the step counts as sent but no server confirmed the submission.
    "unconfirmed",
)


class RequestError(PlauditError):
    """A request to add, list or show review requests is invalid; its message names the fix."""


@final
class NewCouple(msgspec.Struct, frozen=True, kw_only=True):
    """The couple fields of ``plaudit ctl request add``, before validation."""

    names: list[str]
    emails: list[str]
    wedding_date: str
    phone: str = ""
    venue: str = ""
    timezone: str = ""
    consent_email: bool = True
    consent_sms: bool = False


def validate_couple(fields: NewCouple) -> Couple:
    """Validate ``fields`` with the CSV import's rules; raises RequestError naming each option."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(list(OPTION_OF_COLUMN))
    writer.writerow(
        [
            " & ".join(name.strip() for name in fields.names),
            "; ".join(address.strip() for address in fields.emails),
            fields.phone,
            fields.wedding_date,
            fields.venue,
            fields.timezone,
            "yes" if fields.consent_email else "no",
            "yes" if fields.consent_sms else "no",
        ]
    )
    parsed = parse_couples_csv(buffer.getvalue())
    if parsed.errors:
        problems = [
            f"{OPTION_OF_COLUMN.get(error.column, '--' + error.column)} {error.value!r}: "
            f"{error.message}"
            for error in parsed.errors
        ]
        raise RequestError("; ".join(problems))
    if len(parsed.couples) != 1:
        raise RequestError("a couple needs --name, --email and --wedding-date; add them")
    return parsed.couples[0]


def find_campaign(config: Config, name: str | None) -> CampaignConfig:
    """Return the named campaign, or the only one when ``name`` is None."""
    campaigns = [campaign for campaign in config.campaigns if campaign.steps]
    known = ", ".join(campaign.name for campaign in campaigns) or "none"
    if name is None:
        if len(campaigns) == 1:
            return campaigns[0]
        raise RequestError(f"name the campaign with --campaign; campaigns in the config: {known}")
    for campaign in campaigns:
        if campaign.name == name:
            return campaign
    raise RequestError(f"unknown campaign {name!r}; campaigns in the config: {known}")


def add_request(
    tx: Tx,
    config: Config,
    campaign: CampaignConfig,
    *,
    couple_id: int | None = None,
    couple: Couple | None = None,
) -> dict[str, Any]:
    """Store the couple (when new) and schedule its first step of ``campaign``.

    Raises RequestError, leaving the journal unchanged, when the couple id is
    unknown or the couple already has requests in the campaign.
    """
    vendor = config.vendor
    if vendor is None:
        raise RequestError("review requests need a [vendor] table in the config; add it")
    created = False
    if couple is not None:
        # The couple came from command options, so no import row applies.
        command_couple = msgspec.structs.replace(couple, source_row=0)
        report = store_couples(tx, [command_couple], vendor=vendor.name, source=CTL_CONSENT)
        created = report.created == 1
        row = tx.execute(
            "SELECT id FROM couples WHERE email = ?", (couple.emails[0].lower(),)
        ).fetchone()
        couple_id = int(row[0])
    if couple_id is None:
        raise RequestError("name a couple with --couple ID, or give --name, --email and more")
    stored = load_couple(tx, couple_id)
    if stored is None:
        raise RequestError(
            f"no couple with id {couple_id}; see the ids in plaudit ctl request list"
        )

    existing = tx.execute(
        "SELECT id, state FROM requests WHERE couple_id = ? AND campaign = ? ORDER BY step",
        (couple_id, campaign.name),
    ).fetchone()
    if existing is not None:
        raise RequestError(
            f"couple {couple_id} already has requests in campaign {campaign.name!r} "
            f"(request {existing[0]} is {existing[1]}); see plaudit ctl request show {existing[0]}"
        )
    run_at = first_step_at(stored, campaign, vendor_timezone=vendor.timezone)
    request_id = schedule_step(tx, couple_id=couple_id, campaign=campaign, step=0, run_at=run_at)
    return {
        "action": "add",
        "couple": couple_id,
        "couple_created": created,
        "campaign": campaign.name,
        "request": request_id,
        "scheduled_at": run_at,
    }


def list_requests(
    tx: Tx,
    *,
    state: str | None = None,
    campaign: str | None = None,
    couple_id: int | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Return requests, newest first, with the couple's names."""
    where = []
    params: list[Any] = []
    for column, value in (("state", state), ("campaign", campaign), ("couple_id", couple_id)):
        if value is not None:
            where.append(f"r.{column} = ?")
            params.append(value)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    columns = ", ".join(f"r.{name}" for name in _REQUEST_FIELDS)
    rows = tx.execute(
        f"SELECT {columns}, c.names FROM requests r JOIN couples c ON c.id = r.couple_id"
        f" {clause} ORDER BY r.id DESC LIMIT ?",
        (*params, limit),
    ).fetchall()
    requests = []
    for row in rows:
        request = _request(row)
        request["names"] = msgspec.json.decode(row[len(_REQUEST_FIELDS)], type=list[str])
        requests.append(request)
    _add_send_errors(tx, requests)
    return requests


def show_request(tx: Tx, request_id: int) -> dict[str, Any]:
    """Return one request with its couple, every step of its campaign, messages and job."""
    row = tx.execute(f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE id = ?", (request_id,))
    found = row.fetchone()
    if found is None:
        raise RequestError(f"no request with id {request_id}; see plaudit ctl request list")
    request = _request(found)
    couple = load_couple(tx, request["couple_id"])
    steps = [
        _request(step)
        for step in tx.execute(
            f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE couple_id = ? AND campaign = ?"
            " ORDER BY step",
            (request["couple_id"], request["campaign"]),
        ).fetchall()
    ]
    _add_send_errors(tx, [request, *steps])
    message_ids = [step["message_id"] for step in steps if step["message_id"]]
    return {
        "action": "show",
        "request": request,
        "couple": None if couple is None else msgspec.to_builtins(couple),
        "steps": steps,
        "stop_reason": _stop_reason(request),
        "messages": _message_events(tx, message_ids),
        "job": _job(tx, request_id),
        # Variant, chosen send time and why; None until the step first runs.
        "personalisation": explain_request(tx, request_id),
        # When and how e-mail and SMS consent was given or withdrawn, oldest first.
        "consent": msgspec.to_builtins(consent_history(tx, request["couple_id"])),
    }


def _request(row: Sequence[Any]) -> dict[str, Any]:
    request = dict(zip(_REQUEST_FIELDS, row, strict=False))
    # Stored from 0; shown to people, in text and JSON alike, from 1 as in
    # template previews and the request.* webhook events.
    request["step"] = int(request["step"]) + 1
    return request


def _add_send_errors(tx: Tx, requests: list[dict[str, Any]]) -> None:
    """Set each request's ``send_error`` and ``send_attempts`` from its send job.

    The request row records only final outcomes, so while the job retries
    (an unreachable SMTP server, say) its error is in the job alone.
    ``send_error`` is None once the job succeeded, because an error left from
    an earlier attempt no longer applies.
    """
    keys = sorted({f"request:{request['id']}" for request in requests})
    if not keys:
        return
    marks = ", ".join("?" for _ in keys)
    rows = tx.execute(
        f"SELECT key, state, attempts, last_error FROM jobs WHERE key IN ({marks})", keys
    ).fetchall()
    jobs = {key: (state, attempts, error) for key, state, attempts, error in rows}
    for request in requests:
        state, attempts, error = jobs.get(f"request:{request['id']}", (None, 0, None))
        request["send_attempts"] = attempts
        request["send_error"] = None if state == "succeeded" else error


def _stop_reason(request: dict[str, Any]) -> str | None:
    if request["state"] in ("stopped", "suppressed", "bounced", "failed"):
        return str(request["last_error"] or request["state"])
    return None


def _message_events(tx: Tx, message_ids: list[str]) -> list[dict[str, Any]]:
    if not message_ids:
        return []
    marks = ", ".join("?" for _ in message_ids)
    rows = tx.execute(
        "SELECT message_id, address, kind, status, provider, occurred_at FROM message_events"
        f" WHERE message_id IN ({marks}) ORDER BY occurred_at, id",
        message_ids,
    ).fetchall()
    fields = ("message_id", "address", "kind", "status", "provider", "occurred_at")
    return [dict(zip(fields, row, strict=True)) for row in rows]


def _job(tx: Tx, request_id: int) -> dict[str, Any] | None:
    row = tx.execute(
        "SELECT id, state, attempts, next_run_at, last_error FROM jobs WHERE kind = ? AND key = ?",
        (SEND_JOB, f"request:{request_id}"),
    ).fetchone()
    if row is None:
        return None
    return dict(zip(("id", "state", "attempts", "next_run_at", "last_error"), row, strict=True))
