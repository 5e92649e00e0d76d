"""The parts the sandbox's platform stand-ins share: fault routes, fault responses, paging."""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

import pytest
import trio

from plaudit.sandbox.app import Request, Response, json_response
from plaudit.sandbox.faults import Fault, FaultInjector
from plaudit.sandbox.standin import Route, StandInReview
from plaudit.sandbox.standin_base import (
    LOGGED_REQUESTS,
    StandInBase,
    change_budget,
    decide_fault,
    fault_response,
    fault_routes,
    page_count,
    page_slice,
    query_int,
    request_log,
    requests_route,
)
from plaudit.sandbox.usage import CallMeter

FAULTS_PATH = "/_sandbox/demo/faults"


def get(path: str, **query: str) -> Request:
    return Request("GET", path, query, {}, b"")


def post(path: str, body: bytes) -> Request:
    return Request("POST", path, {}, {}, body)


async def call(routes: list[Route], request: Request) -> Response:
    for method, pattern, _name, handler in routes:
        match = pattern.match(request.path)
        if match is not None and method == request.method:
            return await handler(request, match)
    raise AssertionError(f"no route for {request.method} {request.path}")


def body_of(response: Response) -> Any:
    return json.loads(response.body)


class Switches:
    """A stand-in's own fault settings: one flag and one call budget."""

    def __init__(self) -> None:
        self.faults = FaultInjector(seed=1)
        self.flag = False
        self.meter = CallMeter(budget=10, window_seconds=60.0, clock=lambda: 0.0)

    def settings(self) -> dict[str, Any]:
        return {"flag": self.flag, "budget": self.meter.budget}

    def change(self, changes: dict[str, Any]) -> str | None:
        self.flag = bool(changes.pop("flag", self.flag))
        return change_budget(self.meter, changes, "budget")

    def routes(self) -> list[Route]:
        return fault_routes(
            "demo", "demo.faults", self.faults, settings=self.settings, change=self.change
        )


async def test_fault_routes_read_settings() -> None:
    switches = Switches()

    response = await call(switches.routes(), get(FAULTS_PATH))

    assert response.status == 200
    body = body_of(response)
    assert body["error_rate"] == 0.0
    assert body["flag"] is False
    assert body["budget"] == 10
    # The stand-in's own settings follow the injector's.
    assert list(body)[-2:] == ["flag", "budget"]


async def test_fault_routes_apply_changes() -> None:
    switches = Switches()
    changes = {"flag": True, "budget": 3, "error_rate": 0.5}

    response = await call(switches.routes(), post(FAULTS_PATH, json.dumps(changes).encode()))

    assert response.status == 200
    assert body_of(response)["error_rate"] == 0.5
    assert switches.flag is True
    assert switches.meter.budget == 3
    assert switches.faults.settings.error_rate == 0.5


@pytest.mark.parametrize("budget", [0, "3", True, 2.5])
async def test_fault_routes_reject_invalid_budget(budget: object) -> None:
    switches = Switches()
    body = json.dumps({"budget": budget, "error_rate": 0.5}).encode()

    response = await call(switches.routes(), post(FAULTS_PATH, body))

    assert response.status == 400
    assert body_of(response) == {"error": f"invalid budget {budget!r}: use 1 or more"}
    assert switches.meter.budget == 10
    # The injector's settings stay as they were.
    assert switches.faults.settings.error_rate == 0.0


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"{", "Input data was truncated"),
        (b"[1]", "Expected `object`, got `array`"),
        (b'{"bogus": 1}', "Object contains unknown field `bogus`"),
        (b'{"error_rate": 2}', "Expected `float` <= 1.0 - at `$.error_rate`"),
    ],
)
async def test_fault_routes_reject_invalid_body(body: bytes, detail: str) -> None:
    switches = Switches()

    response = await call(switches.routes(), post(FAULTS_PATH, body))

    assert response.status == 400
    assert body_of(response) == {"error": f"invalid fault settings: {detail}"}


async def test_requests_route_serves_log() -> None:
    log = request_log()
    log.extend(str(number) for number in range(LOGGED_REQUESTS + 5))
    route = requests_route("demo", "demo.requests", lambda: {"page": list(log)})

    response = await call([route], get("/_sandbox/demo/requests"))

    assert route[2] == "demo.requests"
    assert response.status == 200
    pages = body_of(response)["page"]
    assert len(pages) == LOGGED_REQUESTS
    assert pages[0] == "5"


def error_of(status: int) -> Response:
    return json_response(status, {"status": status})


@pytest.mark.parametrize(
    ("retry_after", "header"), [(2.5, "3"), (2.0, "2"), (0.1, "1"), (0.0, "0")]
)
def test_fault_response_rounds_retry_after_up(retry_after: float, header: str) -> None:
    response = fault_response(Fault(status=429, retry_after=retry_after), error_of)

    assert response is not None
    assert response.status == 429
    assert response.headers == (("Retry-After", header),)


def test_fault_response_uses_platform_error() -> None:
    response = fault_response(Fault(status=503), error_of)

    assert response is not None
    assert response.status == 503
    assert body_of(response) == {"status": 503}
    assert response.headers == ()


def test_fault_response_resets_connection() -> None:
    response = fault_response(Fault(reset=True), error_of)

    assert response is not None
    assert response.reset


def test_fault_response_none_without_fault() -> None:
    assert fault_response(Fault(malformed=True, latency=1.0), error_of) is None


async def test_decide_fault_waits_latency(autojump_clock: trio.abc.Clock) -> None:
    faults = FaultInjector(seed=1)
    faults.update({"latency": 2.0, "next_statuses": [500], "routes": ["demo.list"]})
    start = trio.current_time()

    skipped = await decide_fault(faults, route="demo.other")
    decided = await decide_fault(faults, route="demo.list", listing=True)

    assert skipped == Fault()
    assert decided.status == 500
    assert trio.current_time() - start == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, 25),
        ({"limit": "7"}, 7),
        ({"limit": "0"}, 1),
        ({"limit": "-4"}, 1),
        ({"limit": "500"}, 100),
    ],
)
def test_query_int_clamps(query: dict[str, str], expected: int) -> None:
    request = Request("GET", "/", query, {}, b"")

    assert query_int(request, "limit", default=25, maximum=100) == expected


def test_query_int_without_maximum() -> None:
    request = Request("GET", "/", {"page": "900"}, {}, b"")

    assert query_int(request, "page", default=1) == 900


def test_query_int_rejects_text() -> None:
    request = Request("GET", "/", {"page": "two"}, {}, b"")

    with pytest.raises(ValueError, match="'two'"):
        query_int(request, "page", default=1)


def test_page_slice_and_count() -> None:
    items = list(range(5))

    assert page_slice(items, 1, 2) == [0, 1]
    assert page_slice(items, 3, 2) == [4]
    assert page_slice(items, 4, 2) == []
    assert page_count(5, 2) == 3
    assert page_count(4, 2) == 2
    assert page_count(0, 2) == 1


class Plain(StandInBase):
    name: ClassVar[str] = "plain"


class Renamed(StandInBase):
    name: ClassVar[str] = "renamed"

    def truth_entry(self, profile: str, review: StandInReview) -> dict[str, Any]:
        return {"id": f"{profile}/{review.review_id}"}


def test_stand_in_truth_renders_entries() -> None:
    plain = Plain("plain", ["a", "b"], seed=4, elapsed=lambda: 0.0, reviews_per_profile=2)
    renamed = Renamed("plain", ["a", "b"], seed=4, elapsed=lambda: 0.0, reviews_per_profile=2)

    truth = plain.truth()
    renamed_truth = renamed.truth()

    assert truth == plain.world.truth()
    assert [entry["profile"] for entry in truth["profiles"]] == ["a", "b"]
    first = truth["profiles"][0]["reviews"][0]["review_id"]
    assert renamed_truth["profiles"][0]["reviews"][0] == {"id": f"a/{first}"}
    assert repr(plain).startswith("<Plain <StandInWorld plain profiles=2")


def test_stand_in_advances_with_sandbox_clock() -> None:
    now = [0.0]
    stand_in = Plain("plain", ["a"], seed=4, elapsed=lambda: now[0], script_seconds=10.0)
    pending = stand_in.world.statistics()["events"]

    now[0] = 60.0
    stand_in.truth()

    assert pending > 0
    assert stand_in.world.statistics()["events_applied"] == pending
    assert stand_in.world.now() == stand_in.world.epoch + 60.0


def test_route_patterns_are_anchored() -> None:
    switches = Switches()

    patterns = [pattern for _method, pattern, _name, _handler in switches.routes()]

    assert all(isinstance(pattern, re.Pattern) for pattern in patterns)
    assert patterns[0].match("/_sandbox/demo/faults/extra") is None
    assert patterns[0].match("/x/_sandbox/demo/faults") is None
