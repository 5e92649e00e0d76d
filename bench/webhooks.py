"""Benchmark outbound webhook delivery through the journal against bare httpx posts.

Run from the repository root:

    python bench/webhooks.py [--json] [--deliveries N] [--seconds N] [--rounds N]

Both sides post the same signed bodies to the same loopback receiver in the
same run, taking turns over --rounds rounds of N / rounds deliveries each.
The bare loop posts one at a time over a keep-alive connection.  The
journal side fans the events out in their transaction, claims, signs, and
records every attempt durably (WAL, synchronous=FULL), with IN_FLIGHT
attempts to the endpoint at once, and again with one attempt at a time (the
default, which keeps the delivery order) for the ``ordered_*`` figures.  The
receiver runs in the same process, so its work counts against both sides.
Each side's round stops after its share of N deliveries or of the time
limit, whichever comes first.  The
inbound half (see bench/inbound_webhooks.py) runs afterwards.  With --json
the last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The inbound half: signed provider events accepted durably by the listener.
from inbound_webhooks import measure_inbound  # noqa: E402

from plaudit.actors.webhooks import WebhookActor  # noqa: E402
from plaudit.config.model import DEFAULT_WEBHOOK_SCHEDULE  # noqa: E402
from plaudit.daemon.children import ChildContext  # noqa: E402
from plaudit.journal import AsyncJournal, Event, Journal, Tx  # noqa: E402
from plaudit.sandbox.receiver import Receiver, serve_receiver  # noqa: E402
from plaudit.webhooks.delivery import delivery_body  # noqa: E402
from plaudit.webhooks.endpoints import Endpoint  # noqa: E402
from plaudit.webhooks.router import Router, delivery_job, webhook_id  # noqa: E402
from plaudit.webhooks.signing import Secret, sign_headers  # noqa: E402

TARGET_PER_S = 500.0
TARGET_RATIO = 0.40
# Attempts in flight to the benchmark endpoint; order is not measured here.
IN_FLIGHT = 8
SECRET = Secret.parse("whsec_" + base64.b64encode(bytes(range(32))).decode())


class Stop:
    """The stop condition of one side: a delivery count or a deadline."""

    def __init__(self, count: int, seconds: float) -> None:
        self.count = count
        self.deadline = time.perf_counter() + seconds


def endpoint(url: str, in_flight: int = IN_FLIGHT) -> Endpoint:
    return Endpoint(
        name="bench",
        url=f"{url}/hook",
        secrets=(SECRET,),
        events=("*",),
        enabled=True,
        retry_schedule=DEFAULT_WEBHOOK_SCHEDULE,
        timeout=15.0,
        disable_after=432000.0,
        allow_private=True,
        max_in_flight=in_flight,
    )


def event_payload(number: int) -> dict[str, Any]:
    return {
        "change": "created",
        "review": {
            "platform": "google",
            "review_id": f"review-{number:06d}",
            "stars": 5,
            "text": "Beautiful photos and a calm, kind photographer. " * 3,
            "author": "Couple",
        },
    }


async def run_journal(
    url: str, directory: Path, stop: Stop, *, in_flight: int = IN_FLIGHT
) -> dict[str, float]:
    """Fan out N events, deliver them through the actor, return the rate."""
    target = endpoint(url, in_flight)
    journal = Journal.open(directory / "journal.sqlite3")
    journal.set_emit_hooks([Router([target])])
    async_journal = AsyncJournal(journal)
    delivered = 0
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(async_journal.run)
            await _emit_events(async_journal, stop.count)
            actor = WebhookActor(
                async_journal, [target], lease_seconds=120.0, batch=256, poll_interval=0.05
            )
            context = ChildContext("webhooks")
            began = time.perf_counter()
            # The actor stops, and hands back what it holds, before the writer is cancelled.
            async with trio.open_nursery() as actors:
                actors.start_soon(actor.start, context)
                while time.perf_counter() < stop.deadline:
                    delivered = actor.webhook_statistics().delivered
                    if delivered >= stop.count:
                        break
                    await trio.sleep(0.01)
                elapsed = time.perf_counter() - began
                context.stop_requested.set()
                actor.wake()
            nursery.cancel_scope.cancel()
    finally:
        journal.close()
    return {"deliveries": delivered, "seconds": elapsed, "per_s": delivered / elapsed}


async def _emit_events(journal: AsyncJournal, count: int) -> None:
    def emit(tx: Tx, first: int, last: int) -> None:
        for number in range(first, last):
            tx.emit(
                type="review.created",
                key=f"review.created:google:review-{number:06d}",
                platform="google",
                subject=f"review-{number:06d}",
                payload=event_payload(number),
            )

    for first in range(0, count, 500):
        last = min(first + 500, count)
        await journal.transaction(functools.partial(emit, first=first, last=last))


async def run_bare(url: str, stop: Stop) -> dict[str, float]:
    """Post the same signed bodies with a bare httpx loop, one at a time."""
    target = endpoint(url)
    posted = 0
    async with httpx.AsyncClient(follow_redirects=False) as client:
        began = time.perf_counter()
        for number in range(stop.count):
            if time.perf_counter() >= stop.deadline:
                break
            key = f"review.created:google:review-{number:06d}"
            job = delivery_job(target, _event(key, number))
            body = delivery_body(job["payload"])
            headers = sign_headers(
                [SECRET], webhook_id=webhook_id("bench", key), timestamp=int(time.time()), body=body
            )
            headers["content-type"] = "application/json"
            response = await client.post(target.url, content=body, headers=headers, timeout=15.0)
            if 200 <= response.status_code < 300:
                posted += 1
        elapsed = time.perf_counter() - began
    return {"deliveries": posted, "seconds": elapsed, "per_s": posted / elapsed}


def _event(key: str, number: int) -> Event:
    return Event(
        id=number + 1,
        key=key,
        type="review.created",
        platform="google",
        subject=f"review-{number:06d}",
        payload=event_payload(number),
        created_at=time.time(),
    )


async def bench(count: int, seconds: float, rounds: int) -> dict[str, Any]:
    """Alternate the two sides for ``rounds`` rounds and sum them, then measure inbound.

    Alternating keeps a change in the machine's load from favouring the side
    that happened to run while it was quiet.
    """
    receiver = Receiver(secrets=[SECRET])
    per_round = max(count // rounds, 1)
    sums = {"bare": [0.0, 0.0], "journal": [0.0, 0.0], "ordered": [0.0, 0.0]}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="plaudit-bench-webhooks-") as directory:
        async with trio.open_nursery() as nursery:
            url = await nursery.start(serve_receiver, receiver)
            for number in range(rounds):
                folder = Path(directory) / f"round-{number}"
                (folder / "fanned").mkdir(parents=True)
                (folder / "ordered").mkdir()
                share = seconds / rounds
                for side, result in (
                    ("bare", await run_bare(url, Stop(per_round, share))),
                    ("journal", await run_journal(url, folder / "fanned", Stop(per_round, share))),
                    # The default of one attempt in flight, which keeps the order.
                    (
                        "ordered",
                        await run_journal(
                            url, folder / "ordered", Stop(per_round, share), in_flight=1
                        ),
                    ),
                ):
                    sums[side][0] += result["deliveries"]
                    sums[side][1] += result["seconds"]
            nursery.cancel_scope.cancel()
    inbound = await measure_inbound(count, seconds)
    bare_per_s = sums["bare"][0] / sums["bare"][1]
    journal_per_s = sums["journal"][0] / sums["journal"][1]
    ordered_per_s = sums["ordered"][0] / sums["ordered"][1]
    return {
        "deliveries_per_s": round(journal_per_s, 1),
        "bare_posts_per_s": round(bare_per_s, 1),
        "ratio": round(journal_per_s / bare_per_s, 3),
        "deliveries": int(sums["journal"][0]),
        "bare_posts": int(sums["bare"][0]),
        "rounds": rounds,
        "in_flight": IN_FLIGHT,
        # The same journal side with max_in_flight = 1, the ordered default.
        "ordered_deliveries_per_s": round(ordered_per_s, 1),
        "ordered_ratio": round(ordered_per_s / bare_per_s, 3),
        "bad_signatures": receiver.statistics()["bad_signatures"],
        "target_per_s": TARGET_PER_S,
        "target_ratio": TARGET_RATIO,
        # The 1-minute load average before and after, as the kernel reports it.
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        **inbound,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    parser.add_argument(
        "--deliveries", type=int, default=3000, help="deliveries per side (default 3000)"
    )
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="time limit per side in seconds (default 60)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds that alternate the bare loop and the journal side (default 3)",
    )
    options = parser.parse_args()
    if options.rounds < 1 or options.deliveries < 1:
        parser.error("--rounds and --deliveries must be at least 1")
    result = trio.run(bench, options.deliveries, options.seconds, options.rounds)
    if options.json:
        print(json.dumps(result))
    else:
        for name, value in result.items():
            print(f"{name:18} {value}")
    meets = (
        result["deliveries_per_s"] >= TARGET_PER_S
        and result["ratio"] >= TARGET_RATIO
        and result["inbound_per_s"] >= result["inbound_target_per_s"]
    )
    return 0 if meets and result["bad_signatures"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
