"""check-config rules for template variants, steps with channel auto and the drafting endpoint."""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import urlsplit

from plaudit.config.locate import KeyPath
from plaudit.config.model import CampaignStep, Config, DraftingConfig
from plaudit.messaging.templates import MessageTemplate, TemplateError
from plaudit.personalisation.channel_choice import AUTO
from plaudit.personalisation.variants import BASE


def check_personalisation(config: Config) -> Iterator[tuple[KeyPath, str]]:
    """Yield problems of variant templates and of ``[personalisation.drafting]``."""
    for index, campaign in enumerate(config.campaigns):
        for number, step in enumerate(campaign.steps):
            seen: set[str] = set()
            for position, variant in enumerate(step.variants):
                path: KeyPath = ("campaigns", index, "steps", number, "variants", position)
                name = variant.name.strip()
                if not name or name == BASE:
                    yield (
                        (*path, "name"),
                        f"invalid variant name {variant.name!r}; use a short word other than "
                        f"{BASE!r}, which names the step's own template",
                    )
                elif name in seen:
                    yield (
                        (*path, "name"),
                        f"variant {name!r} appears twice in this step; rename one",
                    )
                seen.add(name)
                template = f"{campaign.name} step {number + 1} variant {name}"
                try:
                    MessageTemplate(
                        template, subject=variant.subject, text=variant.text, html=variant.html
                    ).check()
                except TemplateError as error:
                    yield path, str(error)

    for index, campaign in enumerate(config.campaigns):
        for number, step in enumerate(campaign.steps):
            yield from _check_auto_channel(config, ("campaigns", index, "steps", number), step)

    drafting = config.personalisation.drafting
    if drafting is not None:
        yield from _check_drafting(drafting)


def _check_auto_channel(
    config: Config, path: KeyPath, step: CampaignStep
) -> Iterator[tuple[KeyPath, str]]:
    if step.channel != AUTO:
        if step.channels:
            yield (
                (*path, "channels"),
                f"channels is used only with channel = {AUTO!r}, but channel is "
                f"{step.channel!r}; remove channels or set channel = {AUTO!r}",
            )
        return
    if not step.channels:
        yield (
            (*path, "channels"),
            'empty; list the channels this step may use, such as channels = ["email", "sms"]',
        )
    duplicates = sorted({name for name in step.channels if step.channels.count(name) > 1})
    if duplicates:
        yield (*path, "channels"), f"{', '.join(duplicates)} listed twice; list each channel once"
    for name in dict.fromkeys(step.channels):
        missing = _missing_table(config, name)
        if missing:
            yield (
                (*path, "channels"),
                f"{name} needs {missing}; add it or remove {name!r} from channels",
            )
    if "sms" in step.channels and "STOP" not in step.text.upper():
        yield (
            (*path, "text"),
            "this step may go out by SMS, and an SMS must say how to opt out; add a line like "
            "'Reply STOP to opt out'",
        )


def _missing_table(config: Config, channel: str) -> str:
    if channel == "email" and (config.smtp is None or config.vendor is None):
        return "an [smtp] table and a [vendor] table"
    if channel == "sms" and config.sms is None:
        return "an [sms] table"
    if channel == "push" and config.push is None:
        return "a [push] table"
    return ""


def _check_drafting(drafting: DraftingConfig) -> Iterator[tuple[KeyPath, str]]:
    where: KeyPath = ("personalisation", "drafting")
    parts = urlsplit(drafting.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        yield (
            (*where, "url"),
            f"invalid URL {drafting.url!r}; use the full chat-completions URL, such as "
            "http://127.0.0.1:8080/v1/chat/completions",
        )
    if not drafting.model.strip():
        yield (*where, "model"), "empty; set the model name the endpoint serves"
    if drafting.api_key_file and not os.path.isabs(drafting.api_key_file):
        yield (
            (*where, "api_key_file"),
            f"relative path {drafting.api_key_file!r}; use an absolute path",
        )
