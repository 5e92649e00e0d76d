"""The sandbox: loopback guard, seeded world, scripted events, faults and truth."""

from __future__ import annotations

import functools
import itertools
import os
import select
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from plaudit.sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_REFRESH_TOKEN,
    GoogleWorld,
    SandboxError,
    SandboxOptions,
    WorldOptions,
    loopback_address,
    sandbox_main,
    serve_sandbox,
)
from plaudit.sandbox.truth import truth_reviews

LOCATION_2001 = "accounts/1001/locations/2001"
LOCATION_2002 = "accounts/1001/locations/2002"


async def start(nursery: trio.Nursery, **options: Any) -> str:
    base_url: str = await nursery.start(serve_sandbox, SandboxOptions(**options))
    return base_url


async def access_token(client: httpx.AsyncClient, base_url: str) -> str:
    form = {
        "grant_type": "refresh_token",
        "client_id": SANDBOX_CLIENT_ID,
        "client_secret": SANDBOX_CLIENT_SECRET,
        "refresh_token": SANDBOX_REFRESH_TOKEN,
    }
    response = await client.post(f"{base_url}/google/oauth2/token", data=form)
    token: str = response.json()["access_token"]
    return token


def locations_of(truth: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {location["name"]: location for location in truth["locations"]}


# Loopback guard.


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1"])
def test_loopback_addresses_accepted(host: str) -> None:
    assert loopback_address(host) == host


def test_localhost_binds_ipv4_loopback() -> None:
    assert loopback_address("localhost") == "127.0.0.1"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "sandbox.example", ""])
def test_non_loopback_host_rejected(host: str) -> None:
    with pytest.raises(SandboxError, match="loopback only"):
        loopback_address(host)


async def test_serve_rejects_wildcard_host() -> None:
    async with trio.open_nursery() as nursery:
        with pytest.raises(SandboxError, match=r"0\.0\.0\.0"):
            await start(nursery, host="0.0.0.0")


def test_cli_rejects_public_host(capsys: pytest.CaptureFixture[str]) -> None:
    status = sandbox_main(["--host", "10.0.0.8", "--port", "0"])
    assert status == 2
    assert "10.0.0.8" in capsys.readouterr().err


def test_cli_rejects_rate_above_one(capsys: pytest.CaptureFixture[str]) -> None:
    status = sandbox_main(["--port", "0", "--error-rate", "1.5"])
    assert status == 2
    assert "error_rate" in capsys.readouterr().err


async def test_taken_port_raises_sandbox_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with trio.open_nursery() as nursery:
            with pytest.raises(SandboxError, match=f"port {port}"):
                await start(nursery, port=port)


async def test_ipv6_loopback_serves() -> None:
    if not socket.has_ipv6:
        pytest.skip("this host has no IPv6 support")

    async with trio.open_nursery() as nursery:
        try:
            base_url = await start(nursery, host="::1")
        except SandboxError as error:
            pytest.skip(f"::1 cannot be bound here: {error}")
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{base_url}/_sandbox/stats")
        nursery.cancel_scope.cancel()

    assert base_url.startswith("http://[::1]:")
    assert response.status_code == 200


# The seeded world.


def test_same_seed_same_world() -> None:
    first = GoogleWorld(WorldOptions(seed=42))
    second = GoogleWorld(WorldOptions(seed=42))
    assert first.truth() == second.truth()
    assert first.script == second.script


def test_other_seed_other_world() -> None:
    first = GoogleWorld(WorldOptions(seed=42)).truth()
    second = GoogleWorld(WorldOptions(seed=43)).truth()
    assert first["locations"] != second["locations"]


def test_world_has_the_two_locations() -> None:
    truth = GoogleWorld().truth()
    titles = {location["name"]: location["title"] for location in truth["locations"]}
    assert titles == {
        LOCATION_2001: "Willow & Vine Photography",
        LOCATION_2002: "Willow & Vine Photography (Studio)",
    }


def test_initial_review_counts() -> None:
    locations = locations_of(GoogleWorld().truth())
    assert len(locations[LOCATION_2001]["reviews"]) == 120
    assert len(locations[LOCATION_2002]["reviews"]) == 40


def test_extra_locations_added() -> None:
    truth = GoogleWorld(WorldOptions(extra_locations=2)).truth()
    names = [location["name"] for location in truth["locations"]]
    assert names[2:] == ["accounts/1001/locations/2003", "accounts/1001/locations/2004"]


def test_initial_reviews_vary() -> None:
    reviews = [
        review
        for location in GoogleWorld(WorldOptions(seed=3)).truth()["locations"]
        for review in location["reviews"]
    ]
    ratings = {review["starRating"] for review in reviews}
    assert {"FIVE", "FOUR"} <= ratings
    assert ratings & {"ONE", "TWO", "THREE"}
    assert any("reviewReply" in review for review in reviews)
    assert any("reviewReply" not in review for review in reviews)
    assert any("comment" not in review for review in reviews)
    assert all(review["reviewer"]["displayName"] for review in reviews)


# The script.


def test_script_spans_configured_seconds() -> None:
    script = GoogleWorld(WorldOptions(script_seconds=20.0)).script
    assert script[0].at >= 1.0
    assert script[-1].at <= 20.0
    assert all(1.0 <= later.at - earlier.at <= 2.0 for earlier, later in itertools.pairwise(script))


def test_script_has_every_event_kind() -> None:
    kinds = {event.kind for event in GoogleWorld(WorldOptions(seed=1)).script}
    assert kinds == {"create", "edit", "reply", "delete"}


def test_script_deletes_at_most_two() -> None:
    for seed in range(1, 30):
        deletions = [e for e in GoogleWorld(WorldOptions(seed=seed)).script if e.kind == "delete"]
        assert 1 <= len(deletions) <= 2, seed


def test_events_wait_for_their_time() -> None:
    world = GoogleWorld()
    first = world.script[0]
    assert world.advance_to(first.at - 0.001) == []
    assert world.advance_to(first.at) == [first]


def test_advance_applies_whole_script() -> None:
    world = GoogleWorld()
    applied = world.advance_to(60.0)
    assert applied == world.script
    assert world.truth()["events_pending"] == 0


def test_time_never_goes_back() -> None:
    world = GoogleWorld()
    world.advance_to(10.0)
    world.advance_to(2.0)
    assert world.elapsed == 10.0


def test_deletion_flagged_in_truth() -> None:
    world = GoogleWorld()
    world.advance_to(60.0)
    deleted = [event.review_id for event in world.script if event.kind == "delete"]
    reviews = {
        review["reviewId"]: review
        for location in world.truth()["locations"]
        for review in location["reviews"]
    }
    for review_id in deleted:
        assert reviews[review_id]["deleted"] is True
        assert reviews[review_id]["deleteTime"] is not None


def test_edit_bumps_update_time() -> None:
    world = GoogleWorld()
    edit = next(event for event in world.script if event.kind == "edit")
    world.advance_to(edit.at)
    review = world.locations[edit.profile].reviews[edit.review_id]
    assert review.update_time == world.options.epoch + edit.at
    assert review.stars == edit.stars
    assert review.comment == edit.comment


def test_truth_reviews_converts_document() -> None:
    world = GoogleWorld()
    world.advance_to(60.0)
    reviews = truth_reviews(world.truth())
    assert len(reviews) == sum(len(loc.reviews) for loc in world.locations.values())
    deleted = {review.review_id for review in reviews if review.deleted_at}
    assert deleted == {event.review_id for event in world.script if event.kind == "delete"}


# Over HTTP.


async def test_scripted_events_appear_over_time(autojump_clock: trio.abc.Clock) -> None:
    async with trio.open_nursery() as nursery:
        base_url = await start(nursery, seed=4, script_seconds=10.0)
        async with httpx.AsyncClient() as client:
            before = (await client.get(f"{base_url}/_sandbox/truth")).json()
            await trio.sleep(11.0)
            after = (await client.get(f"{base_url}/_sandbox/truth")).json()
        nursery.cancel_scope.cancel()

    assert before["events_applied"] == []
    assert after["events_pending"] == 0
    assert after["events_applied"] == [
        e.describe() for e in GoogleWorld(WorldOptions(seed=4, script_seconds=10.0)).script
    ]


async def test_advance_endpoint_moves_time(autojump_clock: trio.abc.Clock) -> None:
    async with trio.open_nursery() as nursery:
        base_url = await start(nursery, script_seconds=10.0)
        async with httpx.AsyncClient() as client:
            response = await client.post(f"{base_url}/_sandbox/advance", json={"seconds": 30})
            truth = (await client.get(f"{base_url}/_sandbox/truth")).json()
        nursery.cancel_scope.cancel()

    assert response.status_code == 200
    assert response.json()["applied"]
    assert truth["events_pending"] == 0


async def test_advance_rejects_negative_seconds(autojump_clock: trio.abc.Clock) -> None:
    async with trio.open_nursery() as nursery:
        base_url = await start(nursery)
        async with httpx.AsyncClient() as client:
            response = await client.post(f"{base_url}/_sandbox/advance", json={"seconds": -5})
        nursery.cancel_scope.cancel()

    assert response.status_code == 400


async def test_held_script_waits_until_released(autojump_clock: trio.abc.Clock) -> None:
    async with trio.open_nursery() as nursery:
        base_url = await start(nursery, script_seconds=10.0, hold_script=True)
        async with httpx.AsyncClient() as client:
            advanced = await client.post(f"{base_url}/_sandbox/advance", json={"seconds": 30})
            held = (await client.get(f"{base_url}/_sandbox/truth")).json()
            released = await client.post(f"{base_url}/_sandbox/script", json={"held": False})
            truth = (await client.get(f"{base_url}/_sandbox/truth")).json()
        nursery.cancel_scope.cancel()

    assert advanced.json()["applied"] == []
    assert held["events_pending"] > 0
    assert len(released.json()["applied"]) == held["events_pending"]
    assert truth["events_pending"] == 0


async def test_script_hold_rejects_a_malformed_request(autojump_clock: trio.abc.Clock) -> None:
    async with trio.open_nursery() as nursery:
        base_url = await start(nursery)
        async with httpx.AsyncClient() as client:
            response = await client.post(f"{base_url}/_sandbox/script", json={"held": "soon"})
        nursery.cancel_scope.cancel()

    assert response.status_code == 400
    assert '{"held": false}' in response.json()["error"]


async def test_truth_endpoint_matches_world(autojump_clock: trio.abc.Clock) -> None:
    async with trio.open_nursery() as nursery:
        base_url = await start(nursery, seed=9)
        async with httpx.AsyncClient() as client:
            truth = (await client.get(f"{base_url}/_sandbox/truth")).json()
        nursery.cancel_scope.cancel()

    expected = GoogleWorld(WorldOptions(seed=9)).truth()
    assert truth["locations"] == expected["locations"]


async def test_listing_requires_bearer_token(autojump_clock: trio.abc.Clock) -> None:
    async with trio.open_nursery() as nursery:
        base_url = await start(nursery)
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{base_url}/google/v4/{LOCATION_2001}/reviews")
        nursery.cancel_scope.cancel()

    assert response.status_code == 401
    assert response.json()["error"]["status"] == "UNAUTHENTICATED"
    assert "invalid_token" in response.headers["www-authenticate"]


async def test_listing_pages_cover_location(autojump_clock: trio.abc.Clock) -> None:
    async with trio.open_nursery() as nursery:
        base_url = await start(nursery)
        ids: list[str] = []
        pages = 0
        async with httpx.AsyncClient() as client:
            headers = {"Authorization": f"Bearer {await access_token(client, base_url)}"}
            params: dict[str, str] = {}
            while pages < 10:
                response = await client.get(
                    f"{base_url}/google/v4/{LOCATION_2001}/reviews", params=params, headers=headers
                )
                body = response.json()
                pages += 1
                ids += [review["reviewId"] for review in body["reviews"]]
                if "nextPageToken" not in body:
                    break
                params = {"pageToken": body["nextPageToken"]}
        nursery.cancel_scope.cancel()

    assert pages == 3
    assert len(ids) == 120
    assert len(set(ids)) == 120
    assert body["totalReviewCount"] == 120


@pytest.mark.parametrize(
    ("params", "status"),
    [({"pageSize": "51"}, 400), ({"pageSize": "0"}, 400), ({"pageToken": "garbage"}, 400)],
)
async def test_listing_rejects_bad_arguments(
    autojump_clock: trio.abc.Clock, params: dict[str, str], status: int
) -> None:
    async with trio.open_nursery() as nursery:
        base_url = await start(nursery)
        async with httpx.AsyncClient() as client:
            headers = {"Authorization": f"Bearer {await access_token(client, base_url)}"}
            response = await client.get(
                f"{base_url}/google/v4/{LOCATION_2001}/reviews", params=params, headers=headers
            )
        nursery.cancel_scope.cancel()

    assert response.status_code == status
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"


async def test_unknown_location_not_found(autojump_clock: trio.abc.Clock) -> None:
    async with trio.open_nursery() as nursery:
        base_url = await start(nursery)
        async with httpx.AsyncClient() as client:
            headers = {"Authorization": f"Bearer {await access_token(client, base_url)}"}
            response = await client.get(
                f"{base_url}/google/v4/accounts/1001/locations/9/reviews", headers=headers
            )
        nursery.cancel_scope.cancel()

    assert response.status_code == 404


async def test_wrong_refresh_token_invalid_grant(autojump_clock: trio.abc.Clock) -> None:
    form = {
        "grant_type": "refresh_token",
        "client_id": SANDBOX_CLIENT_ID,
        "client_secret": SANDBOX_CLIENT_SECRET,
        "refresh_token": "not-the-sandbox-token",
    }
    async with trio.open_nursery() as nursery:
        base_url = await start(nursery)
        async with httpx.AsyncClient() as client:
            response = await client.post(f"{base_url}/google/oauth2/token", data=form)
        nursery.cancel_scope.cancel()

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_reply_shows_in_truth(autojump_clock: trio.abc.Clock) -> None:
    review_id = next(iter(GoogleWorld().locations[LOCATION_2002].reviews))
    async with trio.open_nursery() as nursery:
        base_url = await start(nursery)
        async with httpx.AsyncClient() as client:
            headers = {"Authorization": f"Bearer {await access_token(client, base_url)}"}
            response = await client.put(
                f"{base_url}/google/v4/{LOCATION_2002}/reviews/{review_id}/reply",
                json={"comment": "Thank you both!"},
                headers=headers,
            )
            truth = (await client.get(f"{base_url}/_sandbox/truth")).json()
        nursery.cancel_scope.cancel()

    assert response.status_code == 200
    assert response.json()["comment"] == "Thank you both!"
    reviews = {r["reviewId"]: r for r in locations_of(truth)[LOCATION_2002]["reviews"]}
    assert reviews[review_id]["reviewReply"]["comment"] == "Thank you both!"


# Faults.


async def test_queued_statuses_come_in_order(autojump_clock: trio.abc.Clock) -> None:
    async with trio.open_nursery() as nursery:
        base_url = await start(nursery, next_statuses=(503, 429), retry_after=3.0)
        url = f"{base_url}/google/v4/{LOCATION_2001}/reviews"
        async with httpx.AsyncClient() as client:
            headers = {"Authorization": f"Bearer {await access_token(client, base_url)}"}
            statuses = [(await client.get(url, headers=headers)) for _ in range(3)]
            stats = (await client.get(f"{base_url}/_sandbox/stats")).json()
        nursery.cancel_scope.cancel()

    assert [response.status_code for response in statuses] == [503, 429, 200]
    assert statuses[1].headers["retry-after"] == "3"
    assert stats["faults"]["injected"]["status"] == 2


async def test_fault_settings_change_at_runtime(autojump_clock: trio.abc.Clock) -> None:
    async with trio.open_nursery() as nursery:
        base_url = await start(nursery)
        url = f"{base_url}/google/v4/{LOCATION_2001}/reviews"
        async with httpx.AsyncClient() as client:
            headers = {"Authorization": f"Bearer {await access_token(client, base_url)}"}
            changed = await client.post(f"{base_url}/_sandbox/faults", json={"error_rate": 1.0})
            response = await client.get(url, headers=headers)
        nursery.cancel_scope.cancel()

    assert changed.json()["error_rate"] == 1.0
    assert response.status_code == 500


async def test_invalid_fault_setting_rejected(autojump_clock: trio.abc.Clock) -> None:
    async with trio.open_nursery() as nursery:
        base_url = await start(nursery)
        async with httpx.AsyncClient() as client:
            too_high = await client.post(f"{base_url}/_sandbox/faults", json={"error_rate": 2})
            unknown = await client.post(f"{base_url}/_sandbox/faults", json={"chaos": True})
        nursery.cancel_scope.cancel()

    assert too_high.status_code == 400
    assert "error_rate" in too_high.json()["error"]
    assert unknown.status_code == 400


async def test_latency_delays_response(autojump_clock: trio.abc.Clock) -> None:
    async with trio.open_nursery() as nursery:
        base_url = await start(nursery, latency=30.0)
        async with httpx.AsyncClient(timeout=60.0) as client:
            headers = {"Authorization": f"Bearer {await access_token(client, base_url)}"}
            started = trio.current_time()
            await client.get(f"{base_url}/google/v4/{LOCATION_2001}/reviews", headers=headers)
            waited = trio.current_time() - started
        nursery.cancel_scope.cancel()

    # Virtual time: the sandbox slept 30 s on the mock clock.
    assert waited >= 30.0


async def test_stats_count_requests(autojump_clock: trio.abc.Clock) -> None:
    async with trio.open_nursery() as nursery:
        base_url = await start(nursery)
        async with httpx.AsyncClient() as client:
            await access_token(client, base_url)
            await client.get(f"{base_url}/_sandbox/truth")
            stats = (await client.get(f"{base_url}/_sandbox/stats")).json()
        nursery.cancel_scope.cancel()

    assert stats["requests"]["token"] == 1
    assert stats["requests"]["truth"] == 1
    assert stats["tokens_issued"] == 1


async def test_shutdown_trigger_stops_serving(autojump_clock: trio.abc.Clock) -> None:
    stop = trio.Event()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            serving = functools.partial(serve_sandbox, SandboxOptions(), shutdown_trigger=stop.wait)
            await nursery.start(serving)
            stop.set()


@pytest.mark.slow
def test_cli_exits_zero_on_sigterm() -> None:
    """Real process; waits at most 120 s for start-up and 60 s for the exit (a loaded machine)."""
    program = (
        "import sys; from plaudit.sandbox import sandbox_main; sys.exit(sandbox_main(sys.argv[1:]))"
    )
    command = [sys.executable, "-c", program, "--port", "0", "--smtp-port", "0"]
    repository = str(Path(__file__).resolve().parents[1])
    environment = {**os.environ, "PYTHONPATH": repository}
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=environment) as process:
        assert process.stdout is not None
        readable, _, _ = select.select([process.stdout], [], [], 120.0)
        first_line = process.stdout.readline() if readable else ""
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=60)

    assert first_line.startswith("Plaudit sandbox serving on http://127.0.0.1:")
    assert status == 0
