"""Campaigns: when each review request goes out, and the config rules they obey.

A couple's first step is scheduled from the wedding date; each later step
from the moment the previous one was sent.  A step is due at 10:00 in the
couple's time zone (the vendor's when the couple has none), so a request
never arrives in the middle of the night.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from typing import Final

from plaudit.config.locate import KeyPath
from plaudit.config.model import CampaignConfig, Config, VendorConfig
from plaudit.journal.tx import Tx
from plaudit.messaging.couples import Couple, load_couple, wedding_day
from plaudit.messaging.templates import MessageTemplate, TemplateError

SEND_JOB: Final = "request.send"
OWNER: Final = "notifier"
LOCAL_SEND_TIME: Final = time(10, 0)
# Yelp's guidelines forbid asking customers for reviews.
FORBIDDEN_PLATFORMS: Final = frozenset({"yelp"})


def first_step_at(couple: Couple, campaign: CampaignConfig, *, vendor_timezone: str) -> float:
    """Return the Unix time at which the campaign's first step is due for ``couple``."""
    zone = zoneinfo.ZoneInfo(couple.timezone or vendor_timezone)
    day = wedding_day(couple) + timedelta(days=campaign.steps[0].delay_days)
    return datetime.combine(day, LOCAL_SEND_TIME, tzinfo=zone).timestamp()


def schedule_step(
    tx: Tx, *, couple_id: int, campaign: CampaignConfig, step: int, run_at: float
) -> int | None:
    """Insert the request row and its send job; return the request id, None if it exists."""
    row = tx.execute(
        "INSERT INTO requests (couple_id, campaign, step, channel, state, scheduled_at,"
        " updated_at) VALUES (?, ?, ?, ?, 'scheduled', ?, ?)"
        " ON CONFLICT (couple_id, campaign, step) DO NOTHING RETURNING id",
        (couple_id, campaign.name, step, campaign.steps[step].channel, run_at, tx.now),
    ).fetchone()
    if row is None:
        return None
    request_id = int(row[0])
    tx.enqueue(
        kind=SEND_JOB,
        owner=OWNER,
        key=f"request:{request_id}",
        payload={"request": request_id},
        run_at=run_at,
    )
    return request_id


def schedule_new_couples(tx: Tx, config: Config) -> int:
    """Schedule the first step of every campaign for couples that have none; return how many."""
    vendor = config.vendor
    if vendor is None:
        return 0
    scheduled = 0
    for campaign in config.campaigns:
        if not campaign.steps:
            continue
        rows = tx.execute(
            "SELECT id FROM couples WHERE id NOT IN"
            " (SELECT couple_id FROM requests WHERE campaign = ?) ORDER BY id",
            (campaign.name,),
        ).fetchall()
        for (couple_id,) in rows:
            couple = load_couple(tx, int(couple_id))
            if couple is None:
                continue
            run_at = first_step_at(couple, campaign, vendor_timezone=vendor.timezone)
            if schedule_step(tx, couple_id=couple_id, campaign=campaign, step=0, run_at=run_at):
                scheduled += 1
    return scheduled


def stop_couple(tx: Tx, couple_id: int, *, reason: str) -> int:
    """Cancel every request of the couple not yet sent; return how many."""
    cursor = tx.execute(
        "UPDATE requests SET state = 'stopped', last_error = ?, updated_at = ?"
        " WHERE couple_id = ? AND state = 'scheduled'",
        (f"stopped: {reason}", tx.now, couple_id),
    )
    return cursor.rowcount


def check_campaigns(config: Config) -> Iterator[tuple[KeyPath, str]]:
    """Yield config problems: missing vendor or SMTP, bad links, templates that fail."""
    if config.vendor is not None:
        yield from _check_vendor(config.vendor)
    for index, campaign in enumerate(config.campaigns):
        yield from _check_campaign(config, index, campaign)


def _check_vendor(vendor: VendorConfig) -> Iterator[tuple[KeyPath, str]]:
    if not vendor.postal_address.strip():
        yield (
            ("vendor", "postal_address"),
            "empty; e-mail must carry the vendor's postal address (CAN-SPAM), so set it",
        )
    if not vendor.unsubscribe_url and not vendor.unsubscribe_mailto:
        yield (
            ("vendor", "unsubscribe_url"),
            "every request needs an unsubscribe link; set unsubscribe_url, unsubscribe_mailto "
            "or both",
        )
    for platform in vendor.review_links:
        if platform.lower() in FORBIDDEN_PLATFORMS:
            yield (
                ("vendor", "review_links", platform),
                "Yelp forbids asking for reviews; remove this link",
            )
    try:
        zoneinfo.ZoneInfo(vendor.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        yield (
            ("vendor", "timezone"),
            f"unknown time zone {vendor.timezone!r}; use an IANA name like America/Chicago",
        )


def _check_campaign(
    config: Config, index: int, campaign: CampaignConfig
) -> Iterator[tuple[KeyPath, str]]:
    where: KeyPath = ("campaigns", index)
    if not campaign.steps:
        yield (*where, "steps"), "a campaign needs at least one step; add a [[campaigns.steps]]"
    if any(step.channel == "email" for step in campaign.steps):
        if config.vendor is None:
            yield where, "e-mail steps need a [vendor] table with name and postal_address; add it"
        if config.smtp is None:
            yield where, "e-mail steps need an [smtp] table; add it"
    links = config.vendor.review_links if config.vendor is not None else {}
    for number, step in enumerate(campaign.steps):
        step_path: KeyPath = (*where, "steps", number)
        for platform in step.platforms:
            if platform not in links:
                yield (
                    (*step_path, "platforms"),
                    f"{platform!r} has no link in [vendor] review_links; add it there",
                )
        template = f"{campaign.name} step {number + 1}"
        try:
            MessageTemplate(template, subject=step.subject, text=step.text, html=step.html).check()
        except TemplateError as error:
            yield step_path, str(error)
