"""Serving the sandbox on loopback with Hypercorn's Trio worker, and its CLI.

The sandbox binds only to loopback addresses: it serves fake credentials and
scripted data, and nothing outside this host should ever reach it.
"""

from __future__ import annotations

import argparse
import functools
import ipaddress
import logging
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Annotated, Final, cast

import msgspec
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from hypercorn.typing import ASGIFramework

from plaudit.errors import PlauditError
from plaudit.sandbox.app import ConnectionResetFault, SandboxApp
from plaudit.sandbox.channel_standins import serve_channel_stand_ins
from plaudit.sandbox.faults import FaultInjector, FaultSettings
from plaudit.sandbox.notices import NoticeScript
from plaudit.sandbox.smtp import SmtpSink
from plaudit.sandbox.smtp_options import add_sink_options, serve_sink_until, sink_from
from plaudit.sandbox.world import (
    DEFAULT_EPOCH,
    GoogleWorld,
    ScriptedReview,
    WorldOptions,
    hour_epoch,
)

log = logging.getLogger(__name__)


class _ScriptedResetFilter(logging.Filter):
    """Drops Hypercorn's traceback for a scripted connection reset, which is no error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ConnectionResetFault))


# Hypercorn logs through this logger (config.errorlog), with the exception attached.
log.addFilter(_ScriptedResetFilter())

DEFAULT_PORT: Final = 8931
# Seconds that open connections get to finish when the sandbox stops.
GRACEFUL_TIMEOUT: Final = 2.0


class SandboxError(PlauditError):
    """The sandbox could not start: a non-loopback host or a port that is taken."""


class SandboxOptions(FaultSettings, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Sandbox settings: the listening address, the world and the initial faults.

    The fault fields are those of :class:`FaultSettings`.  ``POST
    /_sandbox/faults`` changes them while the sandbox runs.
    """

    # A loopback address, or "localhost".
    host: str = "127.0.0.1"
    # 0 picks a free port.  ``plaudit sandbox`` uses DEFAULT_PORT unless --port is given.
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0
    # Fixes the world, the script and the fault decisions.
    seed: int = 1
    # Locations after 2001 and 2002.
    extra_locations: Annotated[int, msgspec.Meta(ge=0)] = 0
    # Scripted events come every 1 to 2 s until this many seconds after start.
    script_seconds: Annotated[float, msgspec.Meta(ge=0)] = 20.0
    # A Maildir that receives scripted "new review" notices over script_seconds
    # (plaudit.sandbox.notices); "" writes none.
    maildir: str = ""
    # Unix time of sandbox time 0 in every platform's world and the notices.
    # The fixed default keeps one seed's timestamps identical between runs,
    # and the demo sets the current UTC hour.
    epoch: float = DEFAULT_EPOCH
    # Google reviews written at set times on top of the random script.
    scripted_reviews: tuple[ScriptedReview, ...] = ()
    # Start with the Google world's script held until POST /_sandbox/script
    # {"held": false}, so a test can read the initial reviews first.
    hold_script: bool = False

    def world_options(self) -> WorldOptions:
        """Return the options of the world this sandbox serves."""
        return WorldOptions(
            seed=self.seed,
            extra_locations=self.extra_locations,
            script_seconds=self.script_seconds,
            epoch=self.epoch,
            scripted_reviews=self.scripted_reviews,
        )


def loopback_address(host: str) -> str:
    """Return the loopback IP address to bind for ``host``, or raise SandboxError.

    Only literal loopback addresses (127.0.0.0/8, ::1) and "localhost" are
    accepted; a name other than "localhost" is rejected rather than resolved,
    because resolution could point anywhere.
    """
    if host == "localhost":
        return "127.0.0.1"

    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None

    if address is None or not address.is_loopback:
        raise SandboxError(
            f"invalid sandbox host {host!r}: the sandbox serves on loopback only; "
            "use 127.0.0.1, ::1 or localhost"
        )

    return str(address)


def _bind(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
    except OSError as error:
        sock.close()
        raise SandboxError(
            f"could not bind the sandbox to {address} port {port}: {error.strerror}; "
            "choose another --port, or 0 for any free port"
        ) from error

    return sock


async def serve_sandbox(
    options: SandboxOptions | None = None,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the sandbox until ``shutdown_trigger`` returns or the task is cancelled.

    ``task_status.started`` receives the base URL, such as
    ``http://127.0.0.1:40123``, with the port actually bound.  Raises
    SandboxError for a non-loopback host or a port that cannot be bound.
    """
    options = _validated(options or SandboxOptions())
    address = loopback_address(options.host)
    faults = FaultInjector(options, seed=options.seed)
    try:
        world = GoogleWorld(options.world_options())
    except ValueError as error:
        raise SandboxError(f"invalid sandbox world: {error}") from error
    app = SandboxApp(world, faults, script_held=options.hold_script)
    sock = _bind(address, options.port)
    literal = f"[{address}]" if ":" in address else address
    base_url = f"http://{literal}:{sock.getsockname()[1]}"

    config = HypercornConfig()
    # Hypercorn takes over the already bound socket, so a bind error surfaces
    # above as a SandboxError instead of inside Hypercorn's task tree.
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = None
    config.errorlog = log
    config.graceful_timeout = GRACEFUL_TIMEOUT

    async with trio.open_nursery() as nursery:
        # The app reads scopes as plain dicts, which Hypercorn's TypedDicts are.
        framework = cast("ASGIFramework", app)
        hypercorn_task = functools.partial(
            serve, framework, config, shutdown_trigger=shutdown_trigger
        )
        await nursery.start(hypercorn_task)
        if options.maildir:
            notices = NoticeScript(
                Path(options.maildir),
                seed=options.seed,
                script_seconds=options.script_seconds,
                epoch=options.epoch,
            )
            await nursery.start(_run_notices, notices)
        log.info("sandbox.started", extra={"base_url": base_url, "seed": options.seed})
        task_status.started(base_url)


async def _run_notices(
    notices: NoticeScript, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    try:
        await notices.run(task_status=task_status)
    except OSError as error:
        raise SandboxError(
            f"cannot write notices into the Maildir {notices.maildir}: {error.strerror}; "
            "choose a writable --maildir"
        ) from error


def _validated(options: SandboxOptions) -> SandboxOptions:
    """Check the field limits, which msgspec enforces only when decoding."""
    try:
        # to_builtins, not asdict, so that nested scripted reviews are checked too.
        return msgspec.convert(msgspec.to_builtins(options), SandboxOptions)
    except msgspec.ValidationError as error:
        raise SandboxError(
            f"invalid sandbox option: {error}; rates go from 0 to 1, "
            "seconds are 0 or more and ports go from 0 to 65535"
        ) from error


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: use a whole number, 0 or more")

    return int(text)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``plaudit sandbox``'s options."""
    parser = argparse.ArgumentParser(
        prog="plaudit sandbox",
        description="Serve stand-ins for the review platforms on loopback, for demos and tests.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"TCP port (default {DEFAULT_PORT}); 0 picks a free port",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the world and the faults")
    parser.add_argument(
        "--extra-locations", type=_count, default=0, help="locations to add after 2001 and 2002"
    )
    parser.add_argument(
        "--script-seconds",
        type=float,
        default=20.0,
        help="seconds after start during which scripted review events happen",
    )
    parser.add_argument(
        "--epoch",
        type=float,
        default=None,
        help="Unix time of sandbox time 0, which dates the reviews; default: the start of "
        "the current UTC hour, so the newest reviews are recent",
    )
    parser.add_argument(
        "--maildir",
        default="",
        help="Maildir to receive scripted 'new review' e-mails of a Zola profile over "
        "--script-seconds, for the marketplace mailbox mode",
    )

    _add_fault_options(parser)
    add_sink_options(parser)
    return parser


def _add_fault_options(parser: argparse.ArgumentParser) -> None:
    rates = {
        "--error-rate": "share of API requests that get a 500 response (0-1)",
        "--rate-limit-rate": "share of API requests that get a 429 response (0-1)",
        "--malformed-rate": "share of API responses with a malformed field (0-1)",
        "--duplicate-rate": "share of review pages that repeat a review (0-1)",
        "--reset-rate": "share of API requests whose connection closes mid-response (0-1)",
    }
    for option, help_text in rates.items():
        parser.add_argument(option, type=float, default=0.0, help=help_text)

    parser.add_argument(
        "--retry-after", type=float, default=1.0, help="Retry-After of each 429, in seconds"
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, help="delay added to each API response, in seconds"
    )


def sandbox_options(arguments: argparse.Namespace) -> SandboxOptions:
    """Return the validated options that parsed command-line ``arguments`` describe."""
    # The option names match the field names; next_statuses has no option.
    names = [name for name in SandboxOptions.__struct_fields__ if hasattr(arguments, name)]
    fields = {name: getattr(arguments, name) for name in names}
    if fields.get("epoch") is None:
        fields["epoch"] = hour_epoch(time.time())
    return _validated(SandboxOptions(**fields))


async def _serve_until_signal(options: SandboxOptions, sink: SmtpSink, smtp_port: int) -> None:
    stop = trio.Event()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            serving = functools.partial(serve_sandbox, options, shutdown_trigger=stop.wait)
            base_url = await nursery.start(serving)
            print(f"Plaudit sandbox serving on {base_url}", flush=True)
            print(f"  Google API base:  {base_url}/google/v4", flush=True)
            print(f"  Google token URL: {base_url}/google/oauth2/token", flush=True)
            print(f"  Ground truth:     {base_url}/_sandbox/truth", flush=True)
            if options.maildir:
                print(f"  Review notices:   {options.maildir}", flush=True)
            channels = await nursery.start(serve_channel_stand_ins, stop.wait)
            for line in channels.lines():
                print(line, flush=True)
            address = loopback_address(options.host)
            try:
                serving_sink = functools.partial(
                    serve_sink_until, sink, stop.wait, host=address, port=smtp_port
                )
                bound = await nursery.start(serving_sink)
            except* OSError as group:
                # The sink binds inside its own nursery, so the error arrives in a group.
                error = _first_os_error(group)
                raise SandboxError(
                    f"could not bind the SMTP sink to {address} port {smtp_port}: "
                    f"{error.strerror or error}; choose another --smtp-port, "
                    "or 0 for any free port"
                ) from error
            print(f"  SMTP sink ([smtp] host, port): {address} {bound}", flush=True)
            print('  SMTP security:    "none" (the sink speaks plain SMTP, no TLS)', flush=True)
            async for received in signals:
                log.info("sandbox.stopping", extra={"signal": signal.Signals(received).name})
                stop.set()
                break


def _first_os_error(group: BaseExceptionGroup[OSError]) -> OSError:
    first = group.exceptions[0]
    return _first_os_error(first) if isinstance(first, BaseExceptionGroup) else first


def sandbox_main(argv: Sequence[str] | None = None) -> int:
    """Run ``plaudit sandbox`` until SIGINT or SIGTERM; return the exit status."""
    arguments = build_parser().parse_args(argv)
    try:
        options = sandbox_options(arguments)
        loopback_address(options.host)
        sink = sink_from(arguments)
    except (SandboxError, ValueError) as error:
        print(f"plaudit sandbox: {error}", file=sys.stderr)
        return 2

    status = 0
    try:
        trio.run(_serve_until_signal, options, sink, arguments.smtp_port)
    except* SandboxError as group:
        # Trio's nurseries wrap errors in exception groups.
        for failure in group.exceptions:
            print(f"plaudit sandbox: {failure}", file=sys.stderr)
        status = 2

    return status
