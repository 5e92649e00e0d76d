"""The SMS provider and push service stand-ins as ``plaudit sandbox`` serves them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import final

import msgspec
import trio

from plaudit.sandbox.twilio import ACCOUNT_SID, AUTH_TOKEN, TwilioStandIn
from plaudit.sandbox.webpush import SUBSCRIBE_PATH, PushStandIn


@final
class ChannelUrls(msgspec.Struct, frozen=True, kw_only=True):
    """The stand-ins' base URLs and the credentials the Twilio stand-in accepts."""

    twilio: str
    push: str
    account_sid: str
    auth_token: str

    def lines(self) -> list[str]:
        """Return the lines ``plaudit sandbox`` prints about the stand-ins."""
        return [
            f"  SMS ([sms] base_url): {self.twilio}"
            f" (account_sid {self.account_sid}, auth token {self.auth_token!r})",
            f"  Push service:         {self.push}"
            f" (POST {self.push}{SUBSCRIBE_PATH} for a subscription)",
        ]


async def serve_channel_stand_ins(
    stop: Callable[[], Awaitable[object]],
    *,
    task_status: trio.TaskStatus[ChannelUrls] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve both stand-ins on loopback until ``stop`` returns."""
    twilio = TwilioStandIn()
    push = PushStandIn()
    async with trio.open_nursery() as nursery:
        twilio_url = await nursery.start(twilio.serve)
        push_url = await nursery.start(push.serve)
        task_status.started(
            ChannelUrls(
                twilio=twilio_url, push=push_url, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN
            )
        )
        await stop()
        nursery.cancel_scope.cancel()
