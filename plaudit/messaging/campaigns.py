"""Campaigns: when each review request goes out, and the config rules they obey.

A couple's first step is scheduled from the wedding date; each later step
from the moment the previous one was sent.  A step is due at 10:00 in the
couple's time zone (the vendor's when the couple has none), so a request
never arrives in the middle of the night.

A config with a ``[vendor]`` and an ``[smtp]`` table but no ``campaigns`` key
gets :func:`default_campaign`: a thank-you e-mail ten days after the wedding
and one reminder seven days later.  ``campaigns = []`` turns it off.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Collection, Iterator
from datetime import datetime, time, timedelta
from typing import Any, Final, Literal

import msgspec

from plaudit.config.api_platforms import is_yelp_url
from plaudit.config.locate import KeyPath
from plaudit.config.model import CampaignConfig, CampaignStep, Config, VendorConfig
from plaudit.journal.tx import Tx
from plaudit.messaging.couples import Couple, load_couple, wedding_day
from plaudit.messaging.templates import MessageTemplate, TemplateError

SEND_JOB: Final = "request.send"
OWNER: Final = "notifier"
LOCAL_SEND_TIME: Final = time(10, 0)
# Yelp's guidelines forbid asking customers for reviews.
FORBIDDEN_PLATFORMS: Final = frozenset({"yelp"})
StopReason = Literal["review", "unsubscribe", "hard_bounce", "complaint"]

DEFAULT_CAMPAIGN: Final = "default"
# Days after the wedding for the first request, then after the first request.
DEFAULT_FIRST_DELAY_DAYS: Final = 10.0
DEFAULT_REMINDER_DELAY_DAYS: Final = 7.0
_DEFAULT_LINKS: Final = (
    "{% for link in review_links %}{{ link.platform }}: {{ link.url }}\n{% endfor %}"
)
_DEFAULT_FOOTER: Final = (
    "\n{{ vendor }}\n{{ vendor_address }}\n"
    "You can stop these e-mails at any time: {{ unsubscribe_link }}\n"
)
_DEFAULT_FIRST_TEXT: Final = (
    "Dear {{ couple_names }},\n\n"
    "Thank you for letting us be part of your wedding on {{ wedding_date }}. "
    "If you have a few minutes, we would be grateful if you shared your experience "
    "in a review:\n\n" + _DEFAULT_LINKS + _DEFAULT_FOOTER
)
_DEFAULT_REMINDER_TEXT: Final = (
    "Dear {{ couple_names }},\n\n"
    "A short reminder: if you would like to tell other couples about your day with us, "
    "you can write a review here:\n\n" + _DEFAULT_LINKS + _DEFAULT_FOOTER
)


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


def stop_couple(
    tx: Tx, couple_id: int, *, reason: str, campaigns: Collection[str] | None = None
) -> int:
    """Cancel the couple's requests not yet sent, in ``campaigns`` or all; return how many."""
    sql = (
        "UPDATE requests SET state = 'stopped', last_error = ?, updated_at = ?"
        " WHERE couple_id = ? AND state = 'scheduled'"
    )
    parameters: list[object] = [f"stopped: {reason}", tx.now, couple_id]
    if campaigns is not None:
        names = sorted(campaigns)
        sql += f" AND campaign IN ({', '.join('?' for _ in names)})"
        parameters += names
    return tx.execute(sql, parameters).rowcount


def campaigns_stopping_on(config: Config, reason: StopReason) -> frozenset[str]:
    """Return the names of the campaigns whose ``stop_on`` lists ``reason``."""
    return frozenset(campaign.name for campaign in config.campaigns if reason in campaign.stop_on)


def default_campaign() -> CampaignConfig:
    """Return the campaign used when the config has a vendor but no ``campaigns`` key.

    Its templates pass the compliance checks: the same public review links
    for every couple, no incentive wording, the vendor's postal address and
    an unsubscribe link in every message.
    """
    return CampaignConfig(
        name=DEFAULT_CAMPAIGN,
        steps=[
            CampaignStep(
                delay_days=DEFAULT_FIRST_DELAY_DAYS,
                subject="Thank you, {{ couple_names }}",
                text=_DEFAULT_FIRST_TEXT,
            ),
            CampaignStep(
                delay_days=DEFAULT_REMINDER_DELAY_DAYS,
                subject="A reminder from {{ vendor }}",
                text=_DEFAULT_REMINDER_TEXT,
            ),
        ],
    )


def fill_default_delays(document: dict[str, Any]) -> None:
    """Set each step's missing ``delay_days`` in a parsed config document.

    The first step of a campaign defaults to DEFAULT_FIRST_DELAY_DAYS after
    the wedding, every later step to DEFAULT_REMINDER_DELAY_DAYS after the
    step before.  Anything that is not a list of tables is left for the
    validation to report.
    """
    campaigns = document.get("campaigns")
    if not isinstance(campaigns, list):
        return
    for campaign in campaigns:
        steps = campaign.get("steps") if isinstance(campaign, dict) else None
        if not isinstance(steps, list):
            continue
        for number, step in enumerate(steps):
            if isinstance(step, dict) and "delay_days" not in step:
                first = number == 0
                step["delay_days"] = (
                    DEFAULT_FIRST_DELAY_DAYS if first else DEFAULT_REMINDER_DELAY_DAYS
                )


def with_default_campaign(config: Config, *, campaigns_key: bool) -> Config:
    """Return ``config`` with :func:`default_campaign` when it needs one.

    ``campaigns_key`` is whether the file has a ``campaigns`` key at all, so
    an explicit ``campaigns = []`` keeps the daemon from sending requests.
    """
    if campaigns_key or config.campaigns or config.vendor is None or config.smtp is None:
        return config
    return msgspec.structs.replace(config, campaigns=[default_campaign()])


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
    for platform, url in vendor.review_links.items():
        # A Yelp URL is already reported, with its value, by the rule that
        # rejects Yelp links anywhere in the configuration.
        if platform.lower() in FORBIDDEN_PLATFORMS and not is_yelp_url(url):
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
            # Located at the failing part's key, or at the step when no part is named.
            yield ((*step_path, error.part) if error.part else step_path), str(error)
