"""The SMTP sink served by ``plaudit sandbox``: its options and a real process."""

from __future__ import annotations

import argparse
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from plaudit.config.model import SmtpConfig, VendorConfig
from plaudit.messaging.email import SendError, SmtpSender, build_message, message_id_for
from plaudit.messaging.templates import RenderedMessage
from plaudit.sandbox import sandbox_main
from plaudit.sandbox.smtp_options import add_sink_options, parse_refusal, parse_script, sink_from

VENDOR = VendorConfig(
    name="Willow Studio",
    postal_address="12 Elm Street, Springfield, IL 62701",
    from_address="hello@willow.example",
    unsubscribe_url="https://willow.example/unsubscribe",
)


def sink_arguments(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_sink_options(parser)
    return parser.parse_args(argv)


def test_script_parsed_in_order() -> None:
    assert parse_script("temporary, reject_data,ok") == ["temporary", "reject_data", "ok"]


def test_unknown_outcome_rejected() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="invalid SMTP outcome 'bounce'"):
        parse_script("ok,bounce")


@pytest.mark.parametrize("text", ["ben@example.com", "=550 5.1.1", "ben@example.com=250 ok"])
def test_bad_refusal_rejected(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="use ADDRESS=REPLY"):
        parse_refusal(text)


def test_sink_from_options() -> None:
    arguments = sink_arguments(
        "--smtp-script",
        "policy_rcpt,disconnect",
        "--smtp-refuse",
        "Ben@Example.com=550 5.1.1 no such user",
        "--smtp-slow-seconds",
        "0.5",
    )
    sink = sink_from(arguments)

    assert sink.script == ["policy_rcpt", "disconnect"]
    assert sink.refusals == {"ben@example.com": "550 5.1.1 no such user"}
    assert sink.slow_seconds == 0.5


def test_data_reply_must_be_permanent() -> None:
    status = sandbox_main(["--port", "0", "--smtp-data-reply", "451 later"])

    assert status == 2


def read_line_with(process: subprocess.Popen[str], prefix: str, *, seconds: float) -> str:
    """Return the first stdout line that contains ``prefix``, or "" after ``seconds``."""
    assert process.stdout is not None
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([process.stdout], [], [], left)
        if not readable:
            break
        line = process.stdout.readline()
        if not line:
            break
        if prefix in line:
            return line
    return ""


async def send_one(port: int) -> SendError | None:
    message = build_message(
        RenderedMessage(subject="Thank you", text="Dear Ana", html=""),
        vendor=VENDOR,
        to=["ana@example.com"],
        message_id=message_id_for(1, domain="willow.example"),
        unsubscribe_token="token",
    )
    sender = SmtpSender(SmtpConfig(host="127.0.0.1", port=port, security="none", timeout=30))
    try:
        await sender.send(message)
    except SendError as error:
        return error
    return None


@pytest.mark.slow
def test_cli_serves_scripted_sink() -> None:
    """Real process; waits at most 120 s for start-up and 60 s for the exit (a loaded machine)."""
    program = (
        "import sys; from plaudit.sandbox import sandbox_main; sys.exit(sandbox_main(sys.argv[1:]))"
    )
    options = ["--port", "0", "--smtp-port", "0", "--smtp-script", "reject_data"]
    repository = str(Path(__file__).resolve().parents[1])
    environment = {**os.environ, "PYTHONPATH": repository}
    command = [sys.executable, "-c", program, *options]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=environment) as process:
        try:
            line = read_line_with(process, "SMTP sink", seconds=120.0)
            port = int(line.split()[-1]) if line else 0
            rejected = trio.run(send_one, port) if port else None
            accepted = trio.run(send_one, port) if port else None
        finally:
            process.send_signal(signal.SIGTERM)
            status = process.wait(timeout=60)

    expected = "  SMTP sink ([smtp] host, port): 127.0.0.1 "
    assert line.startswith(expected), f"no SMTP sink line within 120 s; exit status {status}"
    assert rejected is not None
    assert rejected.permanent is True
    assert rejected.status == "5.7.1"
    assert accepted is None
    assert status == 0
