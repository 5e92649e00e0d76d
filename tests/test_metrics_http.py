"""The metrics endpoint over real HTTP on loopback."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from prometheus_client import CONTENT_TYPE_LATEST

from plaudit.daemon.metrics_http import (
    ListenAddressError,
    MetricsServer,
    open_listeners,
    serve_metrics,
)
from plaudit.metrics import READY, REGISTRY


@asynccontextmanager
async def metrics_server(
    collect: Callable[[], None] | None = None, host: str = "127.0.0.1"
) -> AsyncIterator[str]:
    """Serve metrics on a free port and yield its base URL."""

    async def serve(task_status: Any) -> None:
        await serve_metrics(host, 0, collect=collect, task_status=task_status)

    async with trio.open_nursery() as nursery:
        bound_host, port = await nursery.start(serve)
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        yield f"http://{shown}:{port}"
        nursery.cancel_scope.cancel()


def client() -> httpx.AsyncClient:
    # trust_env=False: proxy variables must not divert loopback requests.
    return httpx.AsyncClient(trust_env=False, timeout=5.0)


async def test_metrics_exposition() -> None:
    async with metrics_server() as url, client() as http:
        response = await http.get(f"{url}/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    assert "# TYPE plaudit_ready gauge" in response.text


async def test_collect_runs_before_scrape() -> None:
    calls = 0

    def collect() -> None:
        nonlocal calls
        calls += 1
        READY.set(calls)

    async with metrics_server(collect) as url, client() as http:
        first = await http.get(f"{url}/metrics")
        second = await http.get(f"{url}/metrics")

    assert "plaudit_ready 1.0" in first.text
    assert "plaudit_ready 2.0" in second.text


async def test_collect_failure_still_serves(caplog: pytest.LogCaptureFixture) -> None:
    def collect() -> None:
        raise RuntimeError("journal closed")

    before = REGISTRY.get_sample_value("plaudit_metrics_collect_errors_total") or 0.0
    async with metrics_server(collect) as url, client() as http:
        response = await http.get(f"{url}/metrics")

    assert response.status_code == 200
    after = REGISTRY.get_sample_value("plaudit_metrics_collect_errors_total")
    assert after == before + 1
    assert "metrics.collect_failed" in caplog.messages


async def test_healthz_returns_ok() -> None:
    async with metrics_server() as url, client() as http:
        response = await http.get(f"{url}/healthz")

    assert response.status_code == 200
    assert response.text == "ok\n"


async def test_unknown_path_is_404() -> None:
    async with metrics_server() as url, client() as http:
        response = await http.get(f"{url}/admin")

    assert response.status_code == 404


async def test_post_is_405() -> None:
    async with metrics_server() as url, client() as http:
        response = await http.post(f"{url}/metrics", content=b"x")

    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


async def test_head_has_no_body() -> None:
    async with metrics_server() as url, client() as http:
        response = await http.head(f"{url}/metrics")

    assert response.status_code == 200
    assert int(response.headers["content-length"]) > 0
    assert response.content == b""


async def test_query_string_ignored() -> None:
    async with metrics_server() as url, client() as http:
        response = await http.get(f"{url}/metrics?name[]=plaudit_ready")

    assert response.status_code == 200


async def test_keep_alive_serves_several_requests() -> None:
    async with metrics_server() as url, client() as http:
        responses = [await http.get(f"{url}/healthz") for _ in range(3)]

    assert [response.status_code for response in responses] == [200, 200, 200]


async def test_malformed_request_is_400() -> None:
    async with metrics_server() as url:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        stream = await trio.open_tcp_stream(host, int(port))
        async with stream:
            await stream.send_all(b"NOT HTTP AT ALL\r\n\r\n")
            reply = await stream.receive_some(4096)

    assert reply.startswith(b"HTTP/1.1 400 ")


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


async def test_ipv6_loopback() -> None:
    if not ipv6_loopback_available():
        pytest.skip("::1 is not configured on this host")
    async with metrics_server(host="::1") as url, client() as http:
        response = await http.get(f"{url}/healthz")

    assert response.status_code == 200


async def test_started_reports_bound_port() -> None:
    async with metrics_server() as url:
        port = int(url.rsplit(":", 1)[1])

    assert port > 0


async def test_port_in_use_raises() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(ListenAddressError) as caught:
            await serve_metrics("127.0.0.1", port)

    assert str(caught.value) == (
        f"metrics address 127.0.0.1:{port} is already in use; "
        f"set [metrics] port to a free port or stop the other process"
    )


async def test_inbound_port_in_use_names_the_inbound_table() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(ListenAddressError) as caught:
            await open_listeners("127.0.0.1", port, table="inbound")

    assert str(caught.value) == (
        f"inbound address 127.0.0.1:{port} is already in use; "
        f"set [inbound] port to a free port or stop the other process"
    )


async def test_excess_connection_gets_503() -> None:
    server = MetricsServer(max_connections=1)

    async def serve(task_status: Any) -> None:
        await server.serve("127.0.0.1", 0, task_status=task_status)

    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(serve)
        holder = await trio.open_tcp_stream(host, port)
        async with holder, client() as http:
            # The held connection occupies the only slot once it is accepted.
            await holder.send_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            await holder.receive_some(4096)
            response = await http.get(f"http://{host}:{port}/metrics")
        nursery.cancel_scope.cancel()

    assert response.status_code == 503
    assert server.statistics().connections_rejected == 1


async def test_idle_connection_closed(autojump_clock: trio.testing.MockClock) -> None:
    server = MetricsServer(idle_timeout=30.0)

    async def serve(task_status: Any) -> None:
        await server.serve("127.0.0.1", 0, task_status=task_status)

    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(serve)
        stream = await trio.open_tcp_stream(host, port)
        start = trio.current_time()
        async with stream:
            closed = await stream.receive_some(4096) == b""
        elapsed = trio.current_time() - start
        nursery.cancel_scope.cancel()

    assert closed
    assert elapsed == pytest.approx(30.0)
