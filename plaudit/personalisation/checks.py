"""check-config rules for template variants and the drafting endpoint."""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import urlsplit

from plaudit.config.locate import KeyPath
from plaudit.config.model import Config, DraftingConfig
from plaudit.messaging.templates import MessageTemplate, TemplateError
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

    drafting = config.personalisation.drafting
    if drafting is not None:
        yield from _check_drafting(drafting)


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
