"""The control socket server and clients, over real Unix sockets."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from plaudit.daemon.control import ControlServer, serve_control
from plaudit.daemon.control_client import request, request_stream, request_sync
from plaudit.daemon.control_peers import (
    PeerCredentials,
    default_peer_policy,
    peer_allowed,
    read_supplementary_groups,
)
from plaudit.daemon.control_wire import (
    MAX_REQUEST_LINE,
    ControlResponseError,
    InvalidArgument,
    LineBuffer,
    LineTooLongError,
    UnknownCommand,
)
from plaudit.errors import ControlError, PlauditError


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    # pytest's tmp_path can exceed the 107-byte limit of AF_UNIX paths.
    directory = Path(tempfile.mkdtemp(prefix="ctl-", dir="/tmp"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def sock_path(socket_dir: Path) -> Path:
    return socket_dir / "control.sock"


async def echo_handler(command: str, args: dict[str, Any]) -> Any:
    if command == "echo":
        return {"command": command, "args": args}
    if command == "bad-arg":
        raise InvalidArgument("argument 'job' must be an integer, got 'x'")
    if command == "plaudit-error":
        raise PlauditError("journal is read-only; fix the permissions of /var/lib/plaudit")
    if command == "crash":
        raise RuntimeError("boom")
    if command == "unencodable":
        return {"value": object()}
    raise UnknownCommand(f"unknown command {command!r}")


class RawClient:
    """A line-oriented client that sends arbitrary bytes, for malformed requests."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = LineBuffer(1 << 20)

    @classmethod
    async def connect(cls, path: Path) -> RawClient:
        return cls(await trio.open_unix_socket(os.fspath(path)))

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def receive(self) -> dict[str, Any]:
        while (line := self.buffer.next_line()) is None:
            data = await self.stream.receive_some(65536)
            assert data, "server closed the connection before responding"
            self.buffer.feed(data)
        response = json.loads(line)
        assert isinstance(response, dict)
        return response

    async def at_eof(self) -> bool:
        return await self.stream.receive_some(65536) == b""

    async def aclose(self) -> None:
        await self.stream.aclose()


async def start_server(
    nursery: trio.Nursery, path: Path, handler: Any = echo_handler, **options: Any
) -> ControlServer:
    async def run(task_status: Any) -> None:
        await serve_control(path, handler, task_status=task_status, **options)

    server: ControlServer = await nursery.start(run)
    return server


# -- wire format --------------------------------------------------------------


def test_line_buffer_splits_lines() -> None:
    buffer = LineBuffer(16)
    buffer.feed(b"one\ntw")
    assert buffer.next_line() == b"one"
    assert buffer.next_line() is None
    buffer.feed(b"o\n")
    assert buffer.next_line() == b"two"


def test_line_buffer_skips_oversize_line() -> None:
    buffer = LineBuffer(4)
    buffer.feed(b"abcdefgh")
    with pytest.raises(LineTooLongError):
        buffer.next_line()
    buffer.feed(b"ijk\nok\n")
    assert buffer.next_line() == b"ok"


# -- peer credentials ---------------------------------------------------------


@pytest.mark.parametrize(
    ("uid", "gid", "groups", "expected"),
    [
        (0, 0, (), True),  # root
        (1000, 1000, (), True),  # the daemon's own uid
        (2001, 2001, (), True),  # listed uid
        (3000, 500, (), True),  # listed primary gid
        (3000, 3000, (7, 500), True),  # listed supplementary group
        (3000, 3000, (7, 8), False),
        (3000, 3000, (), False),
    ],
)
def test_peer_allowed_policy(uid: int, gid: int, groups: tuple[int, ...], expected: bool) -> None:
    allowed = peer_allowed(
        uid, gid, groups, daemon_uid=1000, allowed_uids=(2001,), allowed_gids=(500,)
    )
    assert allowed is expected


def test_supplementary_groups_of_own_process() -> None:
    assert set(read_supplementary_groups(os.getpid())) == set(os.getgroups())


def test_supplementary_groups_of_missing_process() -> None:
    assert read_supplementary_groups(2**22 + 1) == ()


def test_default_policy_rejects_unlisted_peer() -> None:
    policy = default_peer_policy(daemon_uid=1000, allowed_uids=(), allowed_gids=())
    assert not policy(PeerCredentials(pid=os.getpid(), uid=65534, gid=65534))


async def test_rejected_peer_gets_permission_denied(sock_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        server = await start_server(nursery, sock_path, peer_policy=lambda peer: False)
        client = await RawClient.connect(sock_path)
        response = await client.receive()
        assert response["error"]["code"] == "permission_denied"
        assert f"uid {os.getuid()}" in response["error"]["message"]
        assert "[control] allowed_uids" in response["error"]["message"]
        assert await client.at_eof()
        assert server.statistics().peers_rejected == 1
        await client.aclose()
        nursery.cancel_scope.cancel()


# A client in another process under another user, so that the server's
# default policy checks real credentials of a foreign peer.  It uses only the
# standard library because that user may not be able to read this interpreter.
CLIENT_CODE = """
import socket, sys
client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
client.connect(sys.argv[1])
try:
    client.sendall(b'{"command": "echo"}\\n')
except BrokenPipeError:
    pass  # a rejected peer: the server closed after its response
sys.stdout.write(client.makefile("rb").readline().decode())
"""
NOBODY = 65534
SYSTEM_PYTHON = Path("/usr/bin/python3")


async def request_as_nobody(path: Path, *, extra_groups: list[int]) -> dict[str, Any]:
    if os.geteuid() != 0:
        pytest.skip("switching to another user needs root")
    if not await trio.Path(SYSTEM_PYTHON).exists():
        pytest.skip(f"{SYSTEM_PYTHON} is needed to run a client as another user")

    # The directory and socket must be reachable so that the peer check decides.
    await trio.Path(path.parent).chmod(0o755)
    await trio.Path(path).chmod(0o666)
    process = await trio.run_process(
        [os.fspath(SYSTEM_PYTHON), "-c", CLIENT_CODE, os.fspath(path)],
        user=NOBODY,
        group=NOBODY,
        extra_groups=extra_groups,
        capture_stdout=True,
        check=True,
    )
    response = json.loads(process.stdout)
    assert isinstance(response, dict)
    return response


async def test_unlisted_user_is_rejected(sock_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        await start_server(nursery, sock_path)
        response = await request_as_nobody(sock_path, extra_groups=[])
        nursery.cancel_scope.cancel()

    assert response["error"]["code"] == "permission_denied"
    assert f"uid {NOBODY}" in response["error"]["message"]


async def test_listed_uid_is_allowed(sock_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        await start_server(nursery, sock_path, allowed_uids=[NOBODY])
        response = await request_as_nobody(sock_path, extra_groups=[])
        nursery.cancel_scope.cancel()

    assert response["ok"] is True


async def test_supplementary_group_member_is_allowed(sock_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        await start_server(nursery, sock_path, allowed_gids=[4242])
        response = await request_as_nobody(sock_path, extra_groups=[4242])
        nursery.cancel_scope.cancel()

    assert response["ok"] is True


async def test_request_reports_permission_denied(sock_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        await start_server(nursery, sock_path, peer_policy=lambda peer: False)
        with pytest.raises(ControlResponseError) as caught:
            await request(sock_path, "echo")
        nursery.cancel_scope.cancel()

    assert caught.value.code == "permission_denied"


async def test_request_sync_reports_permission_denied(sock_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        await start_server(nursery, sock_path, peer_policy=lambda peer: False)
        with pytest.raises(ControlResponseError) as caught:
            await trio.to_thread.run_sync(lambda: request_sync(sock_path, "echo"))
        nursery.cancel_scope.cancel()

    assert caught.value.code == "permission_denied"


async def test_policy_sees_real_credentials(sock_path: Path) -> None:
    seen: list[PeerCredentials] = []

    def record(peer: PeerCredentials) -> bool:
        seen.append(peer)
        return True

    async with trio.open_nursery() as nursery:
        await start_server(nursery, sock_path, peer_policy=record)
        await request(sock_path, "echo")
        nursery.cancel_scope.cancel()

    assert seen == [PeerCredentials(pid=os.getpid(), uid=os.getuid(), gid=os.getgid())]


# -- requests -----------------------------------------------------------------


async def test_request_round_trip(sock_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        await start_server(nursery, sock_path)
        result = await request(sock_path, "echo", {"limit": 5})
        nursery.cancel_scope.cancel()

    assert result == {"command": "echo", "args": {"limit": 5}}


async def test_request_sync_round_trip(sock_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        await start_server(nursery, sock_path)
        result = await trio.to_thread.run_sync(lambda: request_sync(sock_path, "echo", {"a": [1]}))
        nursery.cancel_scope.cancel()

    assert result == {"command": "echo", "args": {"a": [1]}}


async def test_response_echoes_request_id(sock_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        await start_server(nursery, sock_path)
        client = await RawClient.connect(sock_path)
        await client.send(b'{"command": "echo", "id": "r-7"}\n')
        response = await client.receive()
        await client.aclose()
        nursery.cancel_scope.cancel()

    assert response == {"ok": True, "result": {"command": "echo", "args": {}}, "id": "r-7"}


async def test_several_requests_per_connection(sock_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        await start_server(nursery, sock_path)
        client = await RawClient.connect(sock_path)
        await client.send(b'{"command": "echo", "id": 1}\n\n{"command": "echo", "id": 2}\n')
        first = await client.receive()
        second = await client.receive()
        await client.aclose()
        nursery.cancel_scope.cancel()

    assert first["id"] == 1
    assert second["id"] == 2


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        (b"{not json\n", "not valid JSON"),
        (b"[1, 2]\n", "got array"),
        (b'{"args": {}}\n', 'no "command"'),
        (b'{"command": ""}\n', 'no "command"'),
        (b'{"command": "echo", "args": [1]}\n', '"args" must be a JSON object'),
        (b'{"command": "echo", "id": [1]}\n', '"id" must be'),
    ],
)
async def test_malformed_request_is_bad_request(
    sock_path: Path, line: bytes, fragment: str
) -> None:
    async with trio.open_nursery() as nursery:
        await start_server(nursery, sock_path)
        client = await RawClient.connect(sock_path)
        await client.send(line)
        response = await client.receive()
        await client.send(b'{"command": "echo", "id": "next"}\n')
        following = await client.receive()
        await client.aclose()
        nursery.cancel_scope.cancel()

    assert response["ok"] is False
    assert response["error"]["code"] == "bad_request"
    assert fragment in response["error"]["message"]
    assert following["ok"] is True
    assert following["id"] == "next"


async def test_oversize_line_is_bad_request(sock_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        await start_server(nursery, sock_path)
        client = await RawClient.connect(sock_path)
        padding = b"a" * MAX_REQUEST_LINE
        await client.send(b'{"command": "echo", "args": {"x": "' + padding + b'"}}\n')
        response = await client.receive()
        await client.send(b'{"command": "echo", "id": "after"}\n')
        following = await client.receive()
        await client.aclose()
        nursery.cancel_scope.cancel()

    assert response["error"]["code"] == "bad_request"
    assert str(MAX_REQUEST_LINE) in response["error"]["message"]
    assert following["id"] == "after"


@pytest.mark.parametrize(
    ("command", "code", "fragment"),
    [
        ("nope", "unknown_command", "unknown command 'nope'"),
        ("bad-arg", "invalid_argument", "must be an integer"),
        ("plaudit-error", "failed", "journal is read-only"),
        ("crash", "internal", "internal error while running 'crash'"),
        ("unencodable", "internal", "internal error while running 'unencodable'"),
    ],
)
async def test_handler_errors_map_to_codes(
    sock_path: Path, command: str, code: str, fragment: str
) -> None:
    async with trio.open_nursery() as nursery:
        await start_server(nursery, sock_path)
        with pytest.raises(ControlResponseError) as caught:
            await request(sock_path, command)
        nursery.cancel_scope.cancel()

    assert caught.value.code == code
    assert fragment in str(caught.value)


async def test_crash_logged_and_serving_continues(
    sock_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="plaudit.daemon.control")
    async with trio.open_nursery() as nursery:
        server = await start_server(nursery, sock_path)
        with pytest.raises(ControlResponseError):
            await request(sock_path, "crash")
        result = await request(sock_path, "echo")
        nursery.cancel_scope.cancel()

    assert result["command"] == "echo"
    crash_records = [
        record for record in caplog.records if record.getMessage() == "control.handler_crashed"
    ]
    assert len(crash_records) == 1
    assert crash_records[0].exc_info is not None
    assert server.statistics().errors == {"internal": 1}


async def test_crash_message_hides_exception_text(sock_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        await start_server(nursery, sock_path)
        with pytest.raises(ControlResponseError) as caught:
            await request(sock_path, "crash")
        nursery.cancel_scope.cancel()

    assert "boom" not in str(caught.value)


async def test_connections_run_concurrently(sock_path: Path) -> None:
    inside = 0
    all_inside = trio.Event()

    async def blocking_handler(command: str, args: dict[str, Any]) -> Any:
        nonlocal inside
        inside += 1
        if inside == 5:
            all_inside.set()
        # Every handler waits until all five run at once.
        await all_inside.wait()
        return inside

    results: list[Any] = []

    async def call() -> None:
        results.append(await request(sock_path, "wait"))

    async with trio.open_nursery() as nursery:
        await start_server(nursery, sock_path, blocking_handler)
        async with trio.open_nursery() as clients:
            for _ in range(5):
                clients.start_soon(call)
        nursery.cancel_scope.cancel()

    assert len(results) == 5


async def test_connection_limit_holds_extra_clients(sock_path: Path) -> None:
    inside = 0
    two_inside = trio.Event()
    release = trio.Event()

    async def blocking_handler(command: str, args: dict[str, Any]) -> Any:
        nonlocal inside
        inside += 1
        if inside == 2:
            two_inside.set()
        await release.wait()
        return "done"

    results: list[Any] = []

    async def call() -> None:
        results.append(await request(sock_path, "wait"))

    async with trio.open_nursery() as nursery:
        server = await start_server(nursery, sock_path, blocking_handler, max_connections=2)
        async with trio.open_nursery() as clients:
            for _ in range(3):
                clients.start_soon(call)
            await two_inside.wait()
            await trio.testing.wait_all_tasks_blocked()
            handlers_at_limit = inside
            open_at_limit = server.statistics().connections_open
            release.set()
        nursery.cancel_scope.cancel()

    assert handlers_at_limit == 2
    assert open_at_limit == 2
    assert results == ["done", "done", "done"]


async def test_idle_connection_is_closed(
    sock_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with trio.open_nursery() as nursery:
        await start_server(nursery, sock_path, idle_timeout=5.0, first_request_timeout=5.0)
        client = await RawClient.connect(sock_path)
        start = trio.current_time()
        closed = await client.at_eof()
        elapsed = trio.current_time() - start
        await client.aclose()
        nursery.cancel_scope.cancel()

    assert closed
    assert elapsed == pytest.approx(5.0)


# -- streaming ----------------------------------------------------------------


async def test_stream_sends_each_item(sock_path: Path) -> None:
    async def streaming_handler(command: str, args: dict[str, Any]) -> Any:
        async def items() -> AsyncIterator[int]:
            for number in range(3):
                yield number

        return items()

    async with trio.open_nursery() as nursery:
        await start_server(nursery, sock_path, streaming_handler)
        client = await RawClient.connect(sock_path)
        await client.send(b'{"command": "watch", "id": 9}\n')
        lines = [await client.receive() for _ in range(4)]
        streamed = [item async for item in request_stream(sock_path, "watch")]
        await client.aclose()
        nursery.cancel_scope.cancel()

    assert lines == [
        {"ok": True, "result": 0, "id": 9, "more": True},
        {"ok": True, "result": 1, "id": 9, "more": True},
        {"ok": True, "result": 2, "id": 9, "more": True},
        {"ok": True, "result": None, "id": 9, "more": False},
    ]
    assert streamed == [0, 1, 2]


async def test_stream_ends_when_client_disconnects(sock_path: Path) -> None:
    closed = trio.Event()

    async def endless_handler(command: str, args: dict[str, Any]) -> Any:
        async def items() -> AsyncIterator[int]:
            try:
                yield 1
                await trio.sleep_forever()
            finally:
                closed.set()

        return items()

    async with trio.open_nursery() as nursery:
        await start_server(nursery, sock_path, endless_handler)
        client = await RawClient.connect(sock_path)
        await client.send(b'{"command": "watch"}\n')
        first = await client.receive()
        await client.aclose()
        # A bound on a wait that completes at once, not a timing check.
        with trio.fail_after(5):
            await closed.wait()
        nursery.cancel_scope.cancel()

    assert first["result"] == 1


async def test_stream_error_ends_stream(sock_path: Path) -> None:
    async def failing_handler(command: str, args: dict[str, Any]) -> Any:
        async def items() -> AsyncIterator[int]:
            yield 1
            raise PlauditError("platform went away")

        return items()

    async with trio.open_nursery() as nursery:
        await start_server(nursery, sock_path, failing_handler)
        client = await RawClient.connect(sock_path)
        await client.send(b'{"command": "watch"}\n')
        first = await client.receive()
        error = await client.receive()
        await client.aclose()
        nursery.cancel_scope.cancel()

    assert first["more"] is True
    assert error["error"] == {"code": "failed", "message": "platform went away"}


async def test_request_rejects_streaming_command(sock_path: Path) -> None:
    async def streaming_handler(command: str, args: dict[str, Any]) -> Any:
        async def items() -> AsyncIterator[int]:
            yield 1

        return items()

    async with trio.open_nursery() as nursery:
        await start_server(nursery, sock_path, streaming_handler)
        with pytest.raises(ControlError, match="streams its results"):
            await request(sock_path, "watch")
        nursery.cancel_scope.cancel()


# -- binding ------------------------------------------------------------------


async def test_socket_mode_is_0660(sock_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        await start_server(nursery, sock_path)
        mode = stat.S_IMODE((await trio.Path(sock_path).stat()).st_mode)
        nursery.cancel_scope.cancel()

    assert mode == 0o660


async def test_socket_mode_is_configurable(sock_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        await start_server(nursery, sock_path, mode=0o600)
        mode = stat.S_IMODE((await trio.Path(sock_path).stat()).st_mode)
        nursery.cancel_scope.cancel()

    assert mode == 0o600


async def test_missing_parent_is_created(socket_dir: Path) -> None:
    path = socket_dir / "run" / "control.sock"
    async with trio.open_nursery() as nursery:
        await start_server(nursery, path)
        parent_mode = stat.S_IMODE((await trio.Path(path.parent).stat()).st_mode)
        nursery.cancel_scope.cancel()

    assert parent_mode == 0o750 & ~_umask()


async def test_socket_file_removed_on_exit(sock_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        await start_server(nursery, sock_path)
        nursery.cancel_scope.cancel()

    assert not await trio.Path(sock_path).exists()


async def test_stale_socket_is_replaced(sock_path: Path) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(os.fspath(sock_path))
    stale.close()
    assert await trio.Path(sock_path).is_socket()

    async with trio.open_nursery() as nursery:
        await start_server(nursery, sock_path)
        result = await request(sock_path, "echo")
        nursery.cancel_scope.cancel()

    assert result["command"] == "echo"


async def test_live_socket_is_in_use(sock_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        await start_server(nursery, sock_path)
        with pytest.raises(ControlError, match="in use by a running daemon"):
            await serve_control(sock_path, echo_handler)
        still_served = await request(sock_path, "echo")
        nursery.cancel_scope.cancel()

    assert still_served["command"] == "echo"


async def test_regular_file_is_not_replaced(sock_path: Path) -> None:
    await trio.Path(sock_path).write_text("keep me")
    with pytest.raises(ControlError, match="exists and is not a socket"):
        await serve_control(sock_path, echo_handler)
    assert await trio.Path(sock_path).read_text() == "keep me"


async def test_too_long_path_is_rejected(socket_dir: Path) -> None:
    path = socket_dir / ("x" * 120)
    with pytest.raises(ControlError, match="longer than 107 bytes"):
        await serve_control(path, echo_handler)


# -- clients ------------------------------------------------------------------


async def test_request_missing_socket_hint(sock_path: Path) -> None:
    with pytest.raises(ControlError, match=r"no daemon is listening on .*pass --socket"):
        await request(sock_path, "status")


def test_request_sync_missing_socket_hint(sock_path: Path) -> None:
    with pytest.raises(ControlError, match=r"no daemon is listening on .*pass --socket"):
        request_sync(sock_path, "status")


def test_request_sync_times_out(sock_path: Path) -> None:
    # The kernel queues the connection on a listening socket that never accepts it.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.bind(os.fspath(sock_path))
        silent.listen()
        with pytest.raises(ControlError, match=r"did not respond to 'status' within 0\.2 s"):
            request_sync(sock_path, "status", timeout=0.2)


async def test_request_times_out(sock_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.bind(os.fspath(sock_path))
        silent.listen()
        with pytest.raises(ControlError, match="did not respond to 'status' within 3 s"):
            await request(sock_path, "status", timeout=3)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
