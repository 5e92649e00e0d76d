"""Template variables of a request step, and ``plaudit ctl template preview``.

:func:`request_variables` is what the notifier renders every step with, so a
preview shows exactly what a couple would receive, apart from the
unsubscribe token.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final

from plaudit.config.model import CampaignStep, Config, VendorConfig
from plaudit.messaging.campaigns import FORBIDDEN_PLATFORMS
from plaudit.messaging.couples import Couple
from plaudit.messaging.email import build_message, unsubscribe_targets
from plaudit.messaging.requests import RequestError, find_campaign
from plaudit.messaging.templates import MessageTemplate, TemplateError

# Stands in for a real token in previews; no link with it unsubscribes anyone.
PREVIEW_TOKEN: Final = "preview"
SAMPLE_COUPLE: Final = Couple(
    names=["Ana Pires", "Ben Cole"],
    emails=["ana@example.com", "ben@example.com"],
    phone=None,
    wedding_date="2026-06-13",
    venue="The Old Mill",
    timezone=None,
    consent_email=True,
    consent_sms=False,
)


def review_links(vendor: VendorConfig, step: CampaignStep) -> list[dict[str, str]]:
    """Return the step's review links: the same for every couple, and never Yelp."""
    platforms = step.platforms or list(vendor.review_links)
    return [
        {"platform": platform, "url": vendor.review_links[platform]}
        for platform in platforms
        if platform in vendor.review_links and platform.lower() not in FORBIDDEN_PLATFORMS
    ]


def unsubscribe_link(vendor: VendorConfig, token: str) -> str:
    """Return the link a template shows: the https one when set, else the mailto one."""
    targets = unsubscribe_targets(vendor, token)
    return targets[0] if targets else ""


def request_variables(
    vendor: VendorConfig, step: CampaignStep, couple: Couple, *, token: str
) -> dict[str, Any]:
    """Return the variables a step's templates are rendered with for ``couple``."""
    day = date.fromisoformat(couple.wedding_date)
    return {
        "couple_names": " & ".join(couple.names),
        "first_names": [name.split()[0] for name in couple.names if name.split()],
        "wedding_date": f"{day:%B} {day.day}, {day.year}",
        "venue": couple.venue,
        "vendor": vendor.name,
        "vendor_address": vendor.postal_address,
        "review_links": review_links(vendor, step),
        "unsubscribe_link": unsubscribe_link(vendor, token),
        # The notifier's personalisation replaces these two for treated couples.
        "opening_line": "",
        "found_on": "",
    }


def preview_step(
    config: Config, campaign_name: str | None, step_number: int, couple: Couple | None
) -> dict[str, Any]:
    """Render step ``step_number`` (from 1) of a campaign for ``couple`` or a sample couple.

    Returns the subject, text, HTML and links, or ``error`` with the
    template, part, line and message when the template fails.  Raises
    RequestError for an unknown campaign or step.
    """
    vendor = config.vendor
    if vendor is None:
        raise RequestError("templates need a [vendor] table in the config; add it")
    campaign = find_campaign(config, campaign_name)
    if not 1 <= step_number <= len(campaign.steps):
        raise RequestError(
            f"campaign {campaign.name!r} has steps 1 to {len(campaign.steps)}, "
            f"not {step_number}; pick one of those"
        )
    step = campaign.steps[step_number - 1]
    name = f"{campaign.name} step {step_number}"
    result: dict[str, Any] = {
        "action": "preview",
        "campaign": campaign.name,
        "step": step_number,
        "template": name,
        "channel": step.channel,
        "sample": couple is None,
    }
    variables = request_variables(vendor, step, couple or SAMPLE_COUPLE, token=PREVIEW_TOKEN)
    try:
        template = MessageTemplate(name, subject=step.subject, text=step.text, html=step.html)
        rendered = template.render(variables)
    except TemplateError as error:
        result["error"] = {
            "message": str(error),
            "part": error.part or None,
            "line": error.line,
            "column": error.column,
        }
        return result

    message = build_message(
        rendered, vendor=vendor, to=["couple@preview.invalid"], message_id="", unsubscribe_token=""
    )
    text_part = message.get_body(("plain",))
    html_part = message.get_body(("html",))
    result.update(
        subject=rendered.subject,
        text=text_part.get_content() if text_part is not None else rendered.text,
        html=html_part.get_content() if html_part is not None else "",
        review_links=variables["review_links"],
        unsubscribe_link=variables["unsubscribe_link"],
        list_unsubscribe=unsubscribe_targets(vendor, PREVIEW_TOKEN),
    )
    return result
