"""check-config rules for ``[sms]``, ``[push]``, the campaign steps that use them, and the
route the e-mail unsubscribe link needs."""

from __future__ import annotations

import os
from collections.abc import Iterator

from plaudit.config.locate import KeyPath
from plaudit.config.model import Config, PushConfig, SmsConfig
from plaudit.errors import PlauditError
from plaudit.messaging.push import load_vapid_key
from plaudit.messaging.sms import check_sms_config
from plaudit.messaging.unsubscribe_checks import check_unsubscribe_route

TWILIO_ROUTE = "/inbound/twilio"


def check_channels(config: Config) -> Iterator[tuple[KeyPath, str]]:
    """Yield (key path, problem) for the SMS and push tables and the steps that need them."""
    if config.sms is not None:
        yield from _check_sms(config, config.sms)
    if config.push is not None:
        yield from _check_push(config.push)
    for index, campaign in enumerate(config.campaigns):
        for number, step in enumerate(campaign.steps):
            path: KeyPath = ("campaigns", index, "steps", number, "channel")
            if step.channel == "sms" and config.sms is None:
                yield path, "SMS steps need an [sms] table; add it or change the channel"
            if step.channel == "sms" and "STOP" not in step.text.upper():
                yield (
                    ("campaigns", index, "steps", number, "text"),
                    "an SMS must say how to opt out; add a line like 'Reply STOP to opt out'",
                )
            if step.channel == "push" and config.push is None:
                yield path, "push steps need a [push] table; add it or change the channel"
    yield from check_unsubscribe_route(config)


def _check_sms(config: Config, sms: SmsConfig) -> Iterator[tuple[KeyPath, str]]:
    for key, problem in check_sms_config(sms):
        yield ("sms", key), problem
    yield from _check_file(("sms", "auth_token_file"), sms.auth_token_file)
    if not sms.help_text.strip():
        yield (
            ("sms", "help_text"),
            "empty; carriers require an answer to HELP, so set the vendor's name and contact line",
        )

    twilio = config.inbound.twilio if config.inbound is not None else None
    if sms.status_callback_url and twilio is None:
        yield (
            ("sms", "status_callback_url"),
            "status callbacks need [inbound.twilio] to verify them; add it or clear this URL",
        )
    elif twilio is not None and sms.status_callback_url:
        expected = twilio.public_url.rstrip("/") + TWILIO_ROUTE
        if sms.status_callback_url != expected:
            yield (
                ("sms", "status_callback_url"),
                f"{sms.status_callback_url!r} is not the listener's Twilio route {expected!r}; "
                "signatures cover the exact URL, so use that one",
            )


def _check_push(push: PushConfig) -> Iterator[tuple[KeyPath, str]]:
    if not push.subject.startswith(("mailto:", "https://")):
        yield (
            ("push", "subject"),
            f"{push.subject!r} is not a mailto: or https: URL; push services require a contact",
        )
    problems = list(_check_file(("push", "vapid_private_key_file"), push.vapid_private_key_file))
    yield from problems
    if not problems:
        try:
            load_vapid_key(push.vapid_private_key_file)
        except PlauditError as error:
            yield ("push", "vapid_private_key_file"), str(error)


def _check_file(path: KeyPath, file: str) -> Iterator[tuple[KeyPath, str]]:
    if not os.path.isabs(file):
        yield path, f"relative path {file!r}; use an absolute path"
    elif not os.access(file, os.R_OK):
        yield path, f"cannot read {file}; check that it exists and the daemon's user may read it"
