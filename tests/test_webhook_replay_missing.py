"""``plaudit ctl replay ID`` with an id that names no delivery."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import trio

from plaudit.actors.webhooks import WebhookActor
from plaudit.daemon.control_wire import InvalidArgument
from plaudit.journal import AsyncJournal, Journal
from plaudit.webhooks.control import webhook_commands
from plaudit.webhooks.endpoints import Endpoint
from plaudit.webhooks.signing import generate_secret


async def test_replay_unknown_delivery_names_delivery(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "journal.sqlite3")
    target = Endpoint(
        name="crm",
        url="http://127.0.0.1:9/hook",
        secrets=(generate_secret(),),
        events=("*",),
        enabled=True,
        retry_schedule=(5.0,),
        timeout=15.0,
        disable_after=86_400.0,
        allow_private=True,
    )
    try:
        async with trio.open_nursery() as nursery:
            facade = AsyncJournal(journal, window=0)
            await nursery.start(facade.run)
            actor = WebhookActor(facade, [target], lease_seconds=60.0)
            daemon = SimpleNamespace(actors={"webhooks": actor}, journal=facade)
            replay = webhook_commands(cast(Any, daemon))["replay"]
            with pytest.raises(InvalidArgument) as caught:
                await replay({"job": 999999})
            nursery.cancel_scope.cancel()
    finally:
        journal.close()

    assert str(caught.value) == (
        "delivery 999999 not found; list delivery ids with `plaudit ctl deliveries`"
    )
