"""Confirming Amazon SNS subscriptions on the operator's word.

The listener stores a SubscriptionConfirmation once its signature checks out,
but never follows its SubscribeURL by itself.  The operator first checks the
topic, then runs ``plaudit ctl inbound --confirm ID``.

The URL must be https on an SNS endpoint in the TopicArn's region
(``sns.REGION.amazonaws.com``) or on a host listed in ``[inbound.ses]
confirm_hosts``.  It must also carry the ``ConfirmSubscription`` action for
the stored topic, so a signed message cannot aim Plaudit at another address.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import defusedxml.ElementTree as SafeElementTree
import httpx

from plaudit.errors import ControlError
from plaudit.journal import AsyncJournal

log = logging.getLogger(__name__)

# Seconds allowed for the GET of a SubscribeURL.
CONFIRM_TIMEOUT: Final = 15.0
# Bytes of the response that are read; a ConfirmSubscriptionResponse is far smaller.
MAX_ANSWER_BYTES: Final = 64 * 1024
_SNS_HOST: Final = re.compile(r"sns\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?")
_PENDING: Final = (
    "SELECT body FROM inbound_events WHERE id = ? AND provider = 'ses'"
    " AND state = 'confirmation_required'"
)
_CONFIRMED: Final = (
    "UPDATE inbound_events SET state = 'processed', reason = ?, processed_at = ?"
    " WHERE id = ? AND state = 'confirmation_required'"
)


def subscribe_url(body: bytes, *, extra_hosts: list[str]) -> tuple[str, str]:
    """Return the (SubscribeURL, TopicArn) of a stored confirmation, or raise ControlError."""
    try:
        message = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ControlError(f"the stored confirmation is not JSON ({error})") from error
    if not isinstance(message, dict):
        raise ControlError("the stored confirmation is not a JSON object")
    url = message.get("SubscribeURL")
    topic = message.get("TopicArn")
    if not isinstance(url, str) or not isinstance(topic, str):
        raise ControlError("the stored confirmation has no SubscribeURL or TopicArn")

    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    query = parse_qs(parts.query)
    if host not in extra_hosts:
        matched = _SNS_HOST.fullmatch(host)
        topic_region = topic.split(":")[3] if topic.count(":") >= 5 else ""
        if parts.scheme != "https" or matched is None or matched.group(1) != topic_region:
            raise ControlError(
                f"SubscribeURL {url!r} is not an https SNS endpoint in the topic's region "
                f"({topic_region or 'unknown'}); confirm it in the AWS console instead, or list "
                "its host in [inbound.ses] confirm_hosts"
            )
    if query.get("Action") != ["ConfirmSubscription"] or query.get("TopicArn") != [topic]:
        raise ControlError(
            f"SubscribeURL {url!r} does not confirm the topic {topic}; "
            "confirm it in the AWS console instead"
        )
    return url, topic


def subscription_arn(answer: bytes) -> str:
    """Return the SubscriptionArn of a ConfirmSubscriptionResponse, or raise ControlError."""
    try:
        root = SafeElementTree.fromstring(answer)
    except Exception as error:
        raise ControlError(f"the SNS response is not XML ({error})") from error
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == "SubscriptionArn" and element.text:
            return element.text.strip()
    raise ControlError(
        "the SNS response is without a SubscriptionArn; check the topic in the AWS console"
    )


async def confirm(
    journal: AsyncJournal, inbound_id: int, *, extra_hosts: list[str], now: float
) -> dict[str, Any]:
    """Follow one stored SubscribeURL and mark the confirmation processed."""
    rows = await journal.read(lambda opened: opened.query(_PENDING, (inbound_id,)))
    if not rows:
        raise ControlError(
            f"no SNS subscription awaiting confirmation has the id {inbound_id}; "
            "`plaudit ctl inbound` lists them"
        )
    url, topic = subscribe_url(bytes(rows[0][0]), extra_hosts=extra_hosts)
    try:
        async with httpx.AsyncClient(timeout=CONFIRM_TIMEOUT, follow_redirects=False) as client:
            response = await client.get(url)
    except httpx.HTTPError as error:
        raise ControlError(
            f"could not reach {urlsplit(url).hostname}: {error.__class__.__name__}: {error}; "
            "try again, or confirm the subscription in the AWS console"
        ) from error
    answer = response.content[:MAX_ANSWER_BYTES]
    if response.status_code != 200:
        raise ControlError(
            f"SNS responded with HTTP {response.status_code} to the confirmation of {topic}; "
            "the link expires after three days: ask SNS to resend it, or use the AWS console"
        )
    arn = subscription_arn(answer)
    reason = f"subscription confirmed: {arn}"
    await journal.transaction(lambda tx: tx.execute(_CONFIRMED, (reason, now, inbound_id)))
    log.info("inbound.subscription_confirmed", extra={"topic": topic, "subscription": arn})
    return {"id": inbound_id, "topic": topic, "subscription_arn": arn}
