"""``plaudit ctl push-subscribe EMAIL FILE``: store a couple's browser push subscription.

FILE is the JSON a page gets from ``PushSubscription.toJSON()`` in the
couple's browser: ``{"endpoint": ..., "keys": {"p256dh": ..., "auth": ...}}``.
The ctl side reads it; the daemon validates it and stores it for the couple
with that e-mail address.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from plaudit.daemon.control_wire import InvalidArgument
from plaudit.errors import ControlError
from plaudit.journal import Tx
from plaudit.messaging.push import (
    InvalidSubscription,
    PushSubscription,
    add_subscription,
    validate_subscription,
)

if TYPE_CHECKING:
    from plaudit.daemon.app import Daemon

Command = Callable[[dict[str, Any]], Awaitable[Any]]
COMMAND: Final = "push-subscribe"
COMMANDS: Final = frozenset({COMMAND})
# A subscription is a few hundred bytes; anything far larger is not one.
MAX_FILE_BYTES: Final = 16 * 1024


def add_parsers(commands: Any) -> None:
    """Add ``push-subscribe`` to ``plaudit ctl``'s subparsers."""
    parser = commands.add_parser(
        COMMAND, help="store a couple's web push subscription (PushSubscription.toJSON())"
    )
    parser.add_argument("email", help="an e-mail address of the imported couple")
    parser.add_argument("file", type=Path, help="JSON file with endpoint and keys")


def request_args(options: argparse.Namespace) -> dict[str, Any]:
    """Read the subscription file and return the request's arguments."""
    path: Path = options.file
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ControlError(
                f"{path} is larger than {MAX_FILE_BYTES} bytes, too large for a "
                "subscription; check the file"
            )
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ControlError(f"cannot read {path}: {error.strerror}; check the path") from error
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ControlError(
            f"{path} is not JSON ({error}); save PushSubscription.toJSON()"
        ) from error
    return {"email": options.email, "subscription": data}


def renderers() -> dict[str, Callable[[dict[str, Any]], str]]:
    return {COMMAND: render_subscribed}


def render_subscribed(result: dict[str, Any]) -> str:
    return f"stored push subscription {result.get('id')} for couple {result.get('couple')}\n"


def parse_subscription(data: object) -> PushSubscription:
    """Return the subscription in ``toJSON()`` form; raises InvalidArgument naming the field."""
    keys = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(keys, dict):
        raise InvalidArgument("the subscription needs 'endpoint' and a 'keys' object")
    fields = {
        "endpoint": data.get("endpoint"),
        "p256dh": keys.get("p256dh"),
        "auth": keys.get("auth"),
    }
    for name, value in fields.items():
        if not isinstance(value, str) or not value:
            raise InvalidArgument(f"the subscription's {name!r} is missing or not a string")
    return PushSubscription(
        endpoint=str(fields["endpoint"]), p256dh=str(fields["p256dh"]), auth=str(fields["auth"])
    )


def push_commands(daemon: Daemon) -> dict[str, Command]:
    """Return the daemon's side of ``push-subscribe``."""

    async def subscribe(args: dict[str, Any]) -> dict[str, Any]:
        email = args.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise InvalidArgument(f"argument 'email' must be an e-mail address, got {email!r}")
        subscription = parse_subscription(args.get("subscription"))
        push = daemon.config.push
        try:
            validate_subscription(
                subscription, allow_http=push is not None and push.allow_private_endpoints
            )
        except InvalidSubscription as error:
            raise InvalidArgument(str(error)) from error
        journal = daemon.journal
        if journal is None:
            raise ControlError("the journal is not open yet; try again in a moment")

        def store(tx: Tx) -> tuple[int, int]:
            couple_id = couple_by_email(tx, email)
            return couple_id, add_subscription(tx, couple_id, subscription)

        couple_id, subscription_id = await journal.transaction(store)
        return {"id": subscription_id, "couple": couple_id}

    return {COMMAND: subscribe}


def couple_by_email(tx: Tx, email: str) -> int:
    """Return the id of the couple with ``email`` among its addresses; raises InvalidArgument."""
    address = email.strip().lower()
    row = tx.execute(
        "SELECT id FROM couples WHERE email = ? OR EXISTS"
        " (SELECT 1 FROM json_each(couples.emails) WHERE lower(value) = ?) ORDER BY id LIMIT 1",
        (address, address),
    ).fetchone()
    if row is None:
        raise InvalidArgument(
            f"no couple has the address {email!r}; import the couple first with "
            "`plaudit ctl import couples FILE.csv`"
        )
    return int(row[0])
