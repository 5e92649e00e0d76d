"""Benchmark review ingestion from the sandbox into the journal against raw JSON decoding.

Run from the repository root:

    python bench/sync.py [--json] [--seconds N]

The script starts the sandbox in a child process on 127.0.0.1 with a large,
static world on all four API platforms (Google, Facebook, Trustpilot, Yelp).
It then runs the real platform actors against it, with their connectors and
retry policies, into a fresh journal (WAL, synchronous=FULL) in a temporary
directory, until every profile's first sync job has succeeded.  The listing
pages the connectors received are kept, and after the run the script times
decoding only those bytes with msgspec and with the standard json module.
With --json the last line printed is one JSON object with the figures.  See
bench/README.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, cast

import httpx
import msgspec
import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from plaudit.actors.base import Actor  # noqa: E402
from plaudit.actors.google import GoogleActor  # noqa: E402
from plaudit.actors.listing import ListingActor, ListingSource  # noqa: E402
from plaudit.actors.sources import FacebookSource, TrustpilotSource, YelpSource  # noqa: E402
from plaudit.config import Config, load_config  # noqa: E402
from plaudit.config.model import GoogleConfig  # noqa: E402
from plaudit.connectors.facebook import facebook_client  # noqa: E402
from plaudit.connectors.google import GoogleClient  # noqa: E402
from plaudit.connectors.trustpilot import trustpilot_client  # noqa: E402
from plaudit.connectors.yelp import yelp_client  # noqa: E402
from plaudit.daemon.children import ChildContext  # noqa: E402
from plaudit.journal import AsyncJournal, Journal  # noqa: E402

TARGET_REVIEWS_PER_S: Final = 5000.0
# The child sandbox gets this long to print its address.
SANDBOX_START_TIMEOUT: Final = 60.0
# Sandbox ids: Google accounts/1001/locations/2001 onwards, Facebook Pages
# 301001 onwards, Trustpilot business units 5e1f...01 onwards, and the two
# Yelp businesses the sandbox always serves.
GOOGLE_ACCOUNT: Final = "accounts/1001"
FIRST_LOCATION: Final = 2001
FIRST_PAGE: Final = 301001
YELP_BUSINESSES: Final = ("blush-and-bloom-florist", "harbour-view-venue")
# Path fragments of the listing routes whose bodies are kept for decoding.
LISTING_PATHS: Final = ("/reviews", "/ratings")


def trustpilot_unit(index: int) -> str:
    return f"5e1f{index + 1:020d}"


class WorldSize(msgspec.Struct, frozen=True, kw_only=True):
    """Profiles per platform and reviews per profile of the benchmark world."""

    google_locations: int
    google_reviews: int
    facebook_pages: int
    facebook_reviews: int
    trustpilot_units: int
    trustpilot_reviews: int

    def expected_reviews(self) -> int:
        """Return the reviews a complete first sync stores; Yelp lists three per business."""
        return (
            self.google_locations * self.google_reviews
            + self.facebook_pages * self.facebook_reviews
            + self.trustpilot_units * self.trustpilot_reviews
            + 3 * len(YELP_BUSINESSES)
        )


# The child process: the sandbox with a large world.


async def serve_large_sandbox(size: WorldSize, seed: int) -> None:
    """Serve the sandbox with ``size``'s world until stdin closes; print its URL first."""
    # Imported here: only the child needs Hypercorn and the sandbox.
    import socket

    from hypercorn.config import Config as HypercornConfig
    from hypercorn.trio import serve
    from hypercorn.typing import ASGIFramework

    from plaudit.sandbox.app import SandboxApp
    from plaudit.sandbox.faults import FaultInjector
    from plaudit.sandbox.standin import StandInWorld
    from plaudit.sandbox.world import GoogleWorld, WorldOptions

    # No script: the world stays as built, so every run ingests the same reviews.
    options = WorldOptions(
        seed=seed,
        extra_locations=size.google_locations - 2,
        reviews_per_location=(),
        extra_location_reviews=size.google_reviews,
        script_seconds=0.0,
    )
    app = SandboxApp(GoogleWorld(options), FaultInjector(seed=seed))
    worlds = {
        "facebook": [str(FIRST_PAGE + index) for index in range(size.facebook_pages)],
        "trustpilot": [trustpilot_unit(index) for index in range(size.trustpilot_units)],
    }
    counts = {"facebook": size.facebook_reviews, "trustpilot": size.trustpilot_reviews}
    for stand_in in app.stand_ins:
        if stand_in.name in worlds:
            world = StandInWorld(
                stand_in.name,
                worlds[stand_in.name],
                seed=seed,
                reviews_per_profile=counts[stand_in.name],
                script_seconds=0.0,
            )
            # The StandIn protocol leaves the world out; both stand-ins serve from one.
            stand_in.world = world  # type: ignore[attr-defined]

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = HypercornConfig()
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = None
    stop = trio.Event()

    async def watch_stdin() -> None:
        # The parent closes the pipe when it is done, or when it dies.
        await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)
        stop.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch_stdin)
        framework = cast("ASGIFramework", app)
        await nursery.start(functools.partial(serve, framework, config, shutdown_trigger=stop.wait))
        print(f"http://127.0.0.1:{port}", flush=True)


# The parent process: configuration, recording transport and actors.


def bench_config(base_url: str, size: WorldSize) -> str:
    """Return a configuration that syncs every profile of the large world once a day."""
    parts = [
        "[journal]\nlease_seconds = 120.0\n",
        f"""
[platforms.google]
api_base = "{base_url}/google/v4"
token_url = "{base_url}/google/oauth2/token"
client_id = "plaudit-sandbox"
client_secret = "sandbox-secret"
refresh_token = "sandbox-refresh-token"
sync_interval = 86400.0
request_timeout = 30.0
""",
    ]
    for index in range(size.google_locations):
        parts.append(
            f'\n[[platforms.google.locations]]\naccount = "{GOOGLE_ACCOUNT}"\n'
            f'location = "locations/{FIRST_LOCATION + index}"\nname = "Location {index}"\n'
        )
    parts.append(
        f'\n[platforms.facebook]\napi_base = "{base_url}/facebook/v19.0"\n'
        "sync_interval = 86400.0\nrequest_timeout = 30.0\npage_size = 100\n"
    )
    for index in range(size.facebook_pages):
        parts.append(
            f'\n[[platforms.facebook.pages]]\npage_id = "{FIRST_PAGE + index}"\n'
            'access_token = "sandbox-facebook-page-token"\n'
        )
    parts.append(
        f'\n[platforms.trustpilot]\napi_base = "{base_url}/trustpilot/v1"\n'
        f'token_url = "{base_url}/trustpilot/v1/oauth/oauth-business-users-for-applications/'
        'accesstoken"\napi_key = "sandbox-trustpilot-key"\n'
        'api_secret = "sandbox-trustpilot-secret"\n'
        "sync_interval = 86400.0\nrequest_timeout = 30.0\npage_size = 100\n"
    )
    for index in range(size.trustpilot_units):
        parts.append(
            "\n[[platforms.trustpilot.business_units]]\n"
            f'business_unit_id = "{trustpilot_unit(index)}"\n'
        )
    parts.append(
        f'\n[platforms.yelp]\napi_base = "{base_url}/yelp/v3"\napi_key = "sandbox-yelp-key"\n'
        "sync_interval = 86400.0\nrequest_timeout = 30.0\n"
    )
    for business in YELP_BUSINESSES:
        parts.append(f'\n[[platforms.yelp.businesses]]\nbusiness_id = "{business}"\n')
    return "".join(parts)


class RecordingTransport(httpx.AsyncBaseTransport):
    """Passes requests on and keeps the body of every successful listing response."""

    def __init__(self, platform: str, pages: list[tuple[str, bytes]]) -> None:
        self.platform = platform
        self.pages = pages
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if response.status_code == 200 and request.url.path.endswith(LISTING_PATHS):
            body = await response.aread()
            self.pages.append((self.platform, body))
            return httpx.Response(
                response.status_code, headers=response.headers, content=body, request=request
            )
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def build_actors(
    config: Config, journal: AsyncJournal, pages: list[tuple[str, bytes]]
) -> dict[str, tuple[Actor, int]]:
    """Return each platform's actor and its profile count, every client recording pages."""
    platforms = config.platforms
    google = platforms.google
    facebook = platforms.facebook
    trustpilot = platforms.trustpilot
    yelp = platforms.yelp
    if google is None or facebook is None or trustpilot is None or yelp is None:
        raise RuntimeError("the benchmark configuration must enable all four API platforms")

    def google_client(settings: GoogleConfig) -> GoogleClient:
        return GoogleClient(
            settings,
            client_secret=settings.client_secret or "",
            refresh_token=settings.refresh_token or "",
            transport=RecordingTransport("google", pages),
        )

    lease = config.journal.lease_seconds
    actors: dict[str, tuple[Actor, int]] = {
        "google": (
            GoogleActor(journal, google, google_client, lease_seconds=lease),
            len(google.locations),
        )
    }
    tokens = {page.page_id: page.access_token or "" for page in facebook.pages}
    sources: list[ListingSource] = [
        FacebookSource(
            facebook,
            facebook_client(
                facebook, page_tokens=tokens, transport=RecordingTransport("facebook", pages)
            ),
        ),
        TrustpilotSource(
            trustpilot,
            trustpilot_client(
                trustpilot,
                api_secret=trustpilot.api_secret or "",
                transport=RecordingTransport("trustpilot", pages),
            ),
        ),
        YelpSource(
            yelp,
            yelp_client(
                yelp, api_key=yelp.api_key or "", transport=RecordingTransport("yelp", pages)
            ),
        ),
    ]
    for source in sources:
        settings = getattr(platforms, source.platform)
        actor = ListingActor(
            journal,
            source,
            sync_interval=settings.sync_interval,
            breaker=settings.breaker,
            lease_seconds=lease,
        )
        actors[source.platform] = (actor, len(source.profiles()))
    return actors


# Measurements.


async def ingest(
    config: Config, journal: AsyncJournal, pages: list[tuple[str, bytes]], *, seconds: float
) -> tuple[float, dict[str, float]]:
    """Run every actor until each profile synced once; return the wall time and per-platform times.

    Raises RuntimeError when the syncs do not finish within ``seconds``.
    """
    actors = build_actors(config, journal, pages)
    contexts = {name: ChildContext(name) for name in actors}
    finished: dict[str, float] = {}
    began = time.perf_counter()
    with trio.move_on_after(seconds) as deadline:
        async with trio.open_nursery() as nursery:
            for name, (actor, _) in actors.items():
                nursery.start_soon(actor.start, contexts[name])
            while len(finished) < len(actors):
                await trio.sleep(0.01)
                for name, (actor, profiles) in actors.items():
                    if name not in finished and actor.statistics().jobs_succeeded >= profiles:
                        finished[name] = time.perf_counter() - began
                        contexts[name].stop_requested.set()
                        actor.wake()
    if deadline.cancelled_caught:
        states = {name: actor.statistics() for name, (actor, _) in actors.items()}
        raise RuntimeError(f"the syncs did not finish within {seconds} s: {states}")
    return max(finished.values()), finished


def measure_decode(pages: list[tuple[str, bytes]], *, repeats: int) -> dict[str, Any]:
    """Time decoding the kept listing bodies; return reviews per second for msgspec and json."""
    counted = 0
    for _, body in pages:
        decoded = msgspec.json.decode(body)
        counted += len(decoded.get("reviews") or decoded.get("data") or [])

    bodies = [body for _, body in pages]
    figures: dict[str, Any] = {"pages": len(bodies), "reviews": counted}
    decoders: dict[str, Callable[[bytes], Any]] = {
        "msgspec": msgspec.json.decode,
        "json": json.loads,
    }
    for name, decode in decoders.items():
        best = float("inf")
        for _ in range(repeats):
            began = time.perf_counter()
            for body in bodies:
                decode(body)
            best = min(best, time.perf_counter() - began)
        figures[f"{name}_reviews_per_s"] = counted / best
    return figures


def stored_counts(path: Path) -> dict[str, int]:
    """Return the stored reviews and review.created events, read back from the journal file."""
    conn = sqlite3.connect(path)
    try:
        reviews = conn.execute("SELECT count(*) FROM reviews").fetchone()[0]
        events = conn.execute(
            "SELECT count(*) FROM events WHERE type = 'review.created'"
        ).fetchone()[0]
    finally:
        conn.close()
    return {"reviews": int(reviews), "created_events": int(events)}


def start_sandbox(size: WorldSize, seed: int) -> tuple[subprocess.Popen[str], str]:
    """Start the child sandbox and return it with its base URL."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--serve-sandbox",
        "--seed",
        str(seed),
    ]
    for name in WorldSize.__struct_fields__:
        command += [f"--{name.replace('_', '-')}", str(getattr(size, name))]
    child = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    deadline = time.monotonic() + SANDBOX_START_TIMEOUT
    if child.stdout is None:
        raise RuntimeError("the sandbox child has no stdout pipe")
    line = ""
    while time.monotonic() < deadline and not line:
        line = child.stdout.readline().strip()
        if child.poll() is not None:
            break
    if not line.startswith("http://127.0.0.1:"):
        stop_sandbox(child)
        raise RuntimeError(f"the sandbox child did not start within {SANDBOX_START_TIMEOUT} s")
    return child, line


def stop_sandbox(child: subprocess.Popen[str]) -> None:
    if child.stdin is not None:
        child.stdin.close()
    try:
        child.wait(timeout=10)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def run(arguments: argparse.Namespace, size: WorldSize) -> dict[str, Any]:
    """Run one measurement and return the figures and details."""
    child, base_url = start_sandbox(size, arguments.seed)
    try:
        with tempfile.TemporaryDirectory() as directory:
            config_path = Path(directory) / "bench.toml"
            config_path.write_text(bench_config(base_url, size), encoding="utf-8")
            config = load_config(config_path)
            journal_path = Path(directory) / "journal.sqlite3"
            journal = Journal.open(journal_path, instance="bench")
            async_journal = AsyncJournal(journal)
            pages: list[tuple[str, bytes]] = []

            async def main() -> tuple[float, dict[str, float]]:
                async with trio.open_nursery() as nursery:
                    await nursery.start(async_journal.run)
                    result = await ingest(config, async_journal, pages, seconds=arguments.seconds)
                    nursery.cancel_scope.cancel()
                return result

            try:
                wall, per_platform = trio.run(main)
                commits = async_journal.statistics().commits
            finally:
                journal.close()
            counts = stored_counts(journal_path)
    finally:
        stop_sandbox(child)

    decode = measure_decode(pages, repeats=arguments.repeats)
    reviews_per_s = counts["reviews"] / wall
    return {
        "reviews_per_s": round(reviews_per_s, 1),
        "decode_reviews_per_s": round(decode["msgspec_reviews_per_s"], 1),
        "ratio": float(f"{reviews_per_s / decode['msgspec_reviews_per_s']:.4g}"),
        "json_decode_reviews_per_s": round(decode["json_reviews_per_s"], 1),
        "reviews": counts["reviews"],
        "expected_reviews": size.expected_reviews(),
        "created_events": counts["created_events"],
        "pages": decode["pages"],
        "decoded_reviews": decode["reviews"],
        "seconds": round(wall, 3),
        "platform_seconds": {name: round(value, 3) for name, value in per_platform.items()},
        "commits": commits,
        "sqlite_version": sqlite3.sqlite_version,
        "nproc": os.cpu_count(),
    }


def print_table(figures: dict[str, Any]) -> None:
    expected = figures["expected_reviews"]
    print(f"reviews stored:            {figures['reviews']:,} (expected {expected:,})")
    print(f"review.created events:     {figures['created_events']:,}")
    print(f"listing pages:             {figures['pages']:,}")
    print(f"first sync wall time:      {figures['seconds']:.2f} s {figures['platform_seconds']}")
    print(
        f"reviews_per_s:             {figures['reviews_per_s']:>12,.0f}"
        f"   target >= {TARGET_REVIEWS_PER_S:,.0f}"
    )
    print(f"decode_reviews_per_s:      {figures['decode_reviews_per_s']:>12,.0f}   (msgspec)")
    print(f"json_decode_reviews_per_s: {figures['json_decode_reviews_per_s']:>12,.0f}   (json)")
    print(f"ratio:                     {figures['ratio']:>12.4f}")


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: use a whole number, 1 or more")
    return int(text)


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON last")
    parser.add_argument(
        "--seconds",
        type=float,
        default=300.0,
        help="time limit of the sync run in seconds (default 300); the run fails beyond it",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the sandbox world")
    parser.add_argument(
        "--repeats", type=_count, default=5, help="decode passes; the fastest counts (default 5)"
    )
    defaults = {
        "google-locations": 20,
        "google-reviews": 600,
        "facebook-pages": 4,
        "facebook-reviews": 1500,
        "trustpilot-units": 4,
        "trustpilot-reviews": 1500,
    }
    for option, default in defaults.items():
        help_text = f"{option.replace('-', ' ')} (default {default})"
        parser.add_argument(f"--{option}", type=_count, default=default, help=help_text)
    parser.add_argument("--serve-sandbox", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.google_locations < 2:
        parser.error("--google-locations must be 2 or more: the sandbox always serves two")
    return arguments


def main() -> None:
    arguments = parse_arguments()
    size = WorldSize(**{name: getattr(arguments, name) for name in WorldSize.__struct_fields__})
    if arguments.serve_sandbox:
        trio.run(serve_large_sandbox, size, arguments.seed)
        return

    figures = run(arguments, size)
    print_table(figures)
    if arguments.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
