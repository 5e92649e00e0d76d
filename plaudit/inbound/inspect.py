"""``plaudit inspect webhook``: map a saved provider webhook body and print JSON lines."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from plaudit.inbound.events import map_events
from plaudit.inbound.mapping import InboundEvent, MappingError


def event_record(event: InboundEvent) -> dict[str, Any]:
    """Return the printed fields of one event; absent values are left out."""
    record: dict[str, Any] = {
        "type": event.type,
        "provider_event_id": event.provider_event_id,
        "occurred_at": event.occurred_at,
    }
    optional = {
        "message_id": event.message_id,
        "recipient": event.recipient,
        "status": event.status,
        "platform": event.platform,
        "profile": event.profile,
    }
    record.update({key: value for key, value in optional.items() if value is not None})
    return record


def inspect_webhook(provider: str, path: str) -> int:
    """Print one JSON line per event in the file; on failure print the reason and return 1 or 2."""
    try:
        body = Path(path).read_bytes()
    except OSError as error:
        print(
            f"plaudit inspect webhook: cannot read {path}: {error.strerror or error}",
            file=sys.stderr,
        )
        return 2
    try:
        events = map_events(provider, body, received_at=time.time())
    except MappingError as error:
        print(f"plaudit inspect webhook: {path}: {error}", file=sys.stderr)
        return 1
    for event in events:
        sys.stdout.write(msgspec.json.encode(event_record(event)).decode() + "\n")
    return 0
