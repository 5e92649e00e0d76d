"""Benchmark the inbound listener: signed provider events accepted durably per second.

Run from the repository root:

    python bench/inbound_webhooks.py [--json] [--events N] [--seconds N]

``bench/webhooks.py`` runs the same measurement beside the outbound one.  The
listener runs in this process on loopback with a journal in a temporary
directory (WAL, synchronous=FULL); each 200 means the event was committed.
CLIENTS keep-alive connections post Mailgun-signed events, each with its own
event id, and the time from sending a request to reading its 200 is
recorded.  The clients run in the same process, so their work counts against
the listener.  The run stops after N events or the time limit, whichever
comes first.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from plaudit.config.model import InboundConfig, InboundMailgun  # noqa: E402
from plaudit.inbound.providers import Verifiers  # noqa: E402
from plaudit.inbound.server import InboundServer  # noqa: E402
from plaudit.inbound.testing import mailgun_event_body  # noqa: E402
from plaudit.journal import AsyncJournal, Journal  # noqa: E402

TARGET_PER_S = 1000.0
CLIENTS = 16
SIGNING_KEY = "key-bench-inbound"


def event_body(number: int, now: int) -> bytes:
    data = {
        "id": f"bench-{number}",
        "event": "delivered",
        "timestamp": float(now),
        "recipient": f"couple{number}@example.com",
    }
    return mailgun_event_body(SIGNING_KEY, data, timestamp=now, token=f"token-{number}")


async def _client(
    address: tuple[str, int], numbers: trio.MemoryReceiveChannel[int], latencies: list[float]
) -> None:
    # A bare HTTP/1.1 client: its requests are fixed bytes and the listener's
    # answers are short, so h11 on this side would only add client overhead.
    stream = await trio.open_tcp_stream(*address)
    async with stream:
        pending = b""
        async for number in numbers:
            body = event_body(number, int(time.time()))
            head = (
                "POST /inbound/mailgun HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            began = time.perf_counter()
            await stream.send_all(head.encode() + body)
            status, pending = await _read_response(stream, pending)
            if status != 200:
                raise RuntimeError(f"listener responded {status} to event {number}; expected 200")
            latencies.append(time.perf_counter() - began)


async def _read_response(stream: trio.SocketStream, pending: bytes) -> tuple[int, bytes]:
    """Read one response with a Content-Length body; return its status and any extra bytes."""
    while b"\r\n\r\n" not in pending:
        data = await stream.receive_some(65536)
        if not data:
            raise RuntimeError("listener closed the connection")
        pending += data
    head, _, rest = pending.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next(
        int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")
    )
    while len(rest) < length:
        data = await stream.receive_some(65536)
        if not data:
            raise RuntimeError("listener closed the connection")
        rest += data
    return status, rest[length:]


async def measure_inbound(count: int, seconds: float) -> dict[str, Any]:
    """Return ``inbound_per_s``, ``inbound_p99_ms`` and the accepted count."""
    with tempfile.TemporaryDirectory(prefix="plaudit-bench-inbound-") as directory:
        folder = Path(directory)
        (folder / "mailgun.key").write_text(SIGNING_KEY)
        config = InboundConfig(
            port=0, mailgun=InboundMailgun(signing_key_file=str(folder / "mailgun.key"))
        )
        journal = Journal.open(folder / "journal.sqlite3", instance="bench-inbound")
        latencies: list[float] = []
        try:
            async with trio.open_nursery() as nursery:
                writer = AsyncJournal(journal)
                await nursery.start(writer.run)
                server = InboundServer(writer, Verifiers(config), max_body_bytes=65536)
                address = await nursery.start(server.serve, "127.0.0.1", 0)
                began = time.perf_counter()
                with trio.move_on_after(seconds):
                    await _drive(address, count, latencies)
                elapsed = time.perf_counter() - began
                nursery.cancel_scope.cancel()
            stored = journal.query("SELECT count(*) FROM inbound_events")[0][0]
        finally:
            journal.close()
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0
    return {
        "inbound_per_s": round(len(latencies) / elapsed, 1) if elapsed > 0 else 0.0,
        "inbound_p99_ms": round(p99 * 1000, 2),
        "inbound_events": len(latencies),
        "inbound_stored": int(stored),
        "inbound_target_per_s": TARGET_PER_S,
    }


async def _drive(address: tuple[str, int], count: int, latencies: list[float]) -> None:
    send, receive = trio.open_memory_channel[int](CLIENTS)
    async with trio.open_nursery() as nursery:
        for _ in range(CLIENTS):
            nursery.start_soon(_client, address, receive.clone(), latencies)
        async with send:
            for number in range(count):
                await send.send(number)
        await receive.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument("--events", type=int, default=5000, help="events to post (default 5000)")
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="time limit in seconds (default 60)"
    )
    options = parser.parse_args()
    result = trio.run(measure_inbound, options.events, options.seconds)
    if options.json:
        print(json.dumps(result))
    else:
        for name, value in result.items():
            print(f"{name:22} {value}")
    return 0 if result["inbound_per_s"] >= TARGET_PER_S else 1


if __name__ == "__main__":
    sys.exit(main())
