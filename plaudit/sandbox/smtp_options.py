"""The SMTP sink as ``plaudit sandbox`` serves it: command-line options and lifetime.

``--smtp-script`` lists the outcomes of the next transactions in order, then
every transaction is accepted; ``--smtp-refuse`` rejects one address at RCPT
whatever the script lists.  The outcomes are those of plaudit.sandbox.smtp.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Awaitable, Callable
from typing import Final, cast

import trio

from plaudit.sandbox.smtp import OUTCOMES, Outcome, SmtpSink

# The sink's port unless --smtp-port is given.  It is fixed so that a copy of
# the example configuration can name it, and 2525 is unprivileged and clear of
# the standard SMTP ports 25, 465 and 587.  The sink speaks plain SMTP only, so
# that copy also needs [smtp] security = "none".
DEFAULT_SMTP_PORT: Final = 2525


def parse_script(text: str) -> list[Outcome]:
    """Parse comma-separated outcomes such as ``temporary,disconnect,ok``."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        if name not in OUTCOMES:
            raise argparse.ArgumentTypeError(
                f"invalid SMTP outcome {name!r}: use one of {', '.join(OUTCOMES)}"
            )
    return [cast("Outcome", name) for name in names]


def parse_refusal(text: str) -> tuple[str, str]:
    """Parse ``ADDRESS=REPLY`` such as ``ben@example.com=550 5.1.1 no such user``."""
    address, _, reply = text.partition("=")
    code = reply[:3]
    if not address.strip() or "@" not in address or not (code.isdigit() and code[0] in "45"):
        raise argparse.ArgumentTypeError(
            f"invalid refusal {text!r}: use ADDRESS=REPLY with a 4xx or 5xx reply, "
            "such as ben@example.com=550 5.1.1 no such user"
        )
    return address.strip(), reply.strip()


def add_sink_options(parser: argparse.ArgumentParser) -> None:
    """Add the ``--smtp-*`` options of the SMTP sink to ``parser``."""
    parser.add_argument(
        "--smtp-port",
        type=int,
        default=DEFAULT_SMTP_PORT,
        help=f"TCP port of the SMTP sink (default {DEFAULT_SMTP_PORT}); 0 picks a free port",
    )
    parser.add_argument(
        "--smtp-script",
        type=parse_script,
        default=[],
        help=f"comma-separated outcomes of the next SMTP transactions: {', '.join(OUTCOMES)}",
    )
    parser.add_argument(
        "--smtp-refuse",
        type=parse_refusal,
        action="append",
        default=[],
        metavar="ADDRESS=REPLY",
        help="refuse one address at RCPT with this reply; repeat for more addresses",
    )
    parser.add_argument(
        "--smtp-slow-seconds",
        type=float,
        default=5.0,
        help="seconds a 'slow' transaction waits before its reply",
    )
    parser.add_argument(
        "--smtp-data-reply",
        default="554 5.7.1 message content rejected",
        help="the 5xx reply of a 'reject_data' transaction",
    )


def sink_from(arguments: argparse.Namespace) -> SmtpSink:
    """Return the SMTP sink that the parsed ``--smtp-*`` options describe."""
    if not 0 <= arguments.smtp_port <= 65535:
        raise ValueError(
            f"invalid --smtp-port {arguments.smtp_port}: use 1 to 65535, or 0 for any free port"
        )
    if arguments.smtp_slow_seconds < 0:
        raise ValueError(
            f"invalid --smtp-slow-seconds {arguments.smtp_slow_seconds}: use 0 or more"
        )
    if not arguments.smtp_data_reply.startswith("5"):
        raise ValueError(
            f"invalid --smtp-data-reply {arguments.smtp_data_reply!r}: use a 5xx reply"
        )
    return SmtpSink(
        script=arguments.smtp_script,
        slow_seconds=arguments.smtp_slow_seconds,
        refusals=dict(arguments.smtp_refuse),
        data_reply=arguments.smtp_data_reply,
    )


async def serve_sink_until(
    sink: SmtpSink,
    stop: Callable[[], Awaitable[object]],
    *,
    host: str,
    port: int,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``sink`` on ``host`` and ``port`` until ``stop`` returns; report the bound port."""
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(functools.partial(sink.serve, host=host, port=port))
        task_status.started(bound)
        await stop()
        nursery.cancel_scope.cancel()
