"""What an operator meets first: the README's by-hand run, ctl output, check-config, demos.

The daemon, sandbox and demo tests run real processes in real time; each
wait states its limit, generous because the machine may be busy.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

from plaudit.cli import build_parser
from plaudit.config import load_config
from plaudit.config.check import check_config
from plaudit.daemon.ctl_text import WRAP_WIDTH, wrap_field
from plaudit.demo_dirs import demo_dirs, without_removed_files
from plaudit.journal import Journal
from plaudit.messaging.couples import store_couples
from plaudit.messaging.request_ctl import render_request
from plaudit.personalisation.ctl import render_explain, render_lift
from plaudit.personalisation.lift import measure_lift
from plaudit.sandbox import sandbox_main
from plaudit.sandbox.smtp import SmtpSink
from plaudit.sandbox.smtp_options import DEFAULT_SMTP_PORT, add_sink_options
from tests.support import (
    REPOSITORY,
    DaemonDirs,
    ctl,
    open_daemon,
    plaudit_env,
    query,
    start_sandbox,
    stop_daemon,
    wait_for,
)
from tests.test_personalisation_lift import DAY, SENT, add_sent
from tests.test_personalisation_lift import Clock as LiftClock
from tests.test_personalisation_lift import couple as lift_couple

README = REPOSITORY / "README.md"
EXAMPLE = REPOSITORY / "config" / "plaudit.example.toml"
LONG_REASON = (
    "the step's send window had passed when it ran, so it is sent at once instead of "
    "waiting a day for the hour this couple's clicks favour; the next step keeps its own time"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def readme_sandbox_edits() -> list[tuple[str, str]]:
    """Return the (pattern, replacement) pairs of the README's ``sed`` line for the sandbox."""
    lines = README.read_text(encoding="utf-8").splitlines()
    sed_lines = [line for line in lines if line.startswith("sed -i ")]
    assert len(sed_lines) == 1, sed_lines
    edits = []
    for expression in re.findall(r"-e '([^']*)'", sed_lines[0]):
        _, pattern, replacement, _ = expression.split("/")
        edits.append((pattern, replacement))
    return edits


def sandbox_copy_of_example() -> str:
    """Return the example configuration with the README's edits for the sandbox applied."""
    text = EXAMPLE.read_text(encoding="utf-8")
    for pattern, replacement in readme_sandbox_edits():
        text, count = re.subn(f"(?m){pattern}", replacement, text)
        assert count == 1, pattern
    return text


def checked(path: Path) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    status = check_config(str(path), out=out, err=err)
    return status, err.getvalue()


# --- the sandbox's SMTP sink, the README's by-hand run and send errors ---


def test_sandbox_smtp_port_default_is_fixed() -> None:
    parser = argparse.ArgumentParser()
    add_sink_options(parser)

    assert parser.parse_args([]).smtp_port == DEFAULT_SMTP_PORT == 2525
    assert parser.parse_args(["--smtp-port", "0"]).smtp_port == 0


def test_sandbox_rejects_smtp_port_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    status = sandbox_main(["--port", "0", "--smtp-port", "70000"])

    assert status == 2
    assert "invalid --smtp-port 70000" in capsys.readouterr().err


def test_sandbox_names_taken_smtp_port(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        status = sandbox_main(["--port", "0", "--smtp-port", str(port)])

    error = capsys.readouterr().err
    assert status == 2
    assert f"could not bind the SMTP sink to 127.0.0.1 port {port}" in error
    assert "choose another --smtp-port, or 0 for any free port" in error


def test_readme_edits_point_example_at_sink(tmp_path: Path) -> None:
    path = tmp_path / "plaudit.toml"
    path.write_text(sandbox_copy_of_example(), encoding="utf-8")

    config = load_config(path)

    assert config.smtp is not None
    assert config.smtp.port == DEFAULT_SMTP_PORT
    assert config.smtp.security == "none"
    assert checked(path) == (0, "")


def test_example_smtp_comment_names_sandbox_values() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    smtp_table = text.split("\n[smtp]\n", 1)[1].split("\n[", 1)[0]

    assert "port = 2525" in smtp_table
    assert 'security = "none"' in smtp_table
    assert re.search(r"(?m)^port = 587$", smtp_table)


def hand_run_config(base_url: str, smtp_port: int) -> str:
    """Return the README's sandbox copy of the example, moved to ports this test owns."""
    text = sandbox_copy_of_example().replace("http://127.0.0.1:8931", base_url)
    text, count = re.subn(rf"(?m)^port = {DEFAULT_SMTP_PORT}$", f"port = {smtp_port}", text)
    assert count == 1
    # Metrics and the inbound listener: any free port, clear of the documented ones.
    text = re.sub(r"(?m)^port = (9464|8465)$", "port = 0", text)
    # Job retries within seconds, so the send is retried soon after the sink starts.
    text = re.sub(r"(?m)^retry_initial = .*$", "retry_initial = 1.0", text)
    return re.sub(r"(?m)^retry_max = .*$", "retry_max = 3.0", text)


def send_job(dirs: DaemonDirs) -> tuple[Any, ...] | None:
    rows = query(dirs.journal, "SELECT state, last_error FROM jobs WHERE key = 'request:1'")
    return rows[0] if rows else None


def request_state(dirs: DaemonDirs) -> str | None:
    rows = query(dirs.journal, "SELECT state FROM requests WHERE id = 1")
    return str(rows[0][0]) if rows else None


@pytest.mark.slow
async def test_hand_run_shows_send_error_then_sends(tmp_path: Path) -> None:
    """The README's copy of the example: a refused SMTP connection shows in ctl, then a send."""
    dirs = DaemonDirs(tmp_path)
    smtp_port = free_port()
    sink = SmtpSink()
    async with trio.open_nursery() as nursery:
        base_url = await start_sandbox(nursery)
        dirs.config.write_text(hand_run_config(base_url, smtp_port), encoding="utf-8")
        process = await open_daemon(dirs)
        try:
            await wait_for(dirs.socket.exists, timeout=60, what="the control socket")
            added = await trio.to_thread.run_sync(
                functools.partial(
                    ctl,
                    dirs,
                    "request",
                    "add",
                    "--name",
                    "Ana Lima",
                    "--email",
                    "ana@example.com",
                    "--wedding-date",
                    "2026-06-13",
                )
            )
            # Nothing listens on smtp_port yet, so the first attempt fails to connect.
            await wait_for(
                lambda: (send_job(dirs) or ("", None))[1] is not None,
                timeout=120,
                what="a failed send attempt",
            )
            failing_list = await trio.to_thread.run_sync(ctl, dirs, "request", "list")
            failing_json = await trio.to_thread.run_sync(ctl, dirs, "--json", "request", "list")
            failing_show = await trio.to_thread.run_sync(ctl, dirs, "request", "show", "1")

            await nursery.start(functools.partial(sink.serve, port=smtp_port))
            await wait_for(lambda: request_state(dirs) == "sent", timeout=180, what="the send")
            sent_json = await trio.to_thread.run_sync(ctl, dirs, "--json", "request", "list")
        finally:
            code = await stop_daemon(process)
        nursery.cancel_scope.cancel()

    assert code == 0
    assert added.returncode == 0, added.stderr
    assert failing_list.returncode == 0, failing_list.stderr
    assert "Connect call failed" in failing_list.stdout
    assert str(smtp_port) in failing_list.stdout
    assert failing_show.returncode == 0, failing_show.stderr
    assert "send error: " in failing_show.stdout
    assert "Connect call failed" in failing_show.stdout

    failing = json.loads(failing_json.stdout)["requests"]
    first = next(request for request in failing if request["id"] == 1)
    assert first["step"] == 1
    assert "Connect call failed" in first["send_error"]
    assert first["send_attempts"] >= 1

    sent = {request["id"]: request for request in json.loads(sent_json.stdout)["requests"]}
    assert sent[1]["state"] == "sent"
    assert sent[1]["step"] == 1
    assert sent[1]["send_error"] is None
    assert [request["step"] for request in sent.values() if request["id"] != 1] == [2]
    assert len(sink.messages) == 1


def test_request_list_shows_send_error() -> None:
    result = {
        "action": "list",
        "requests": [
            {
                "id": 4,
                "couple_id": 2,
                "names": ["Ana Lima"],
                "campaign": "after-wedding",
                "step": 1,
                "channel": "email",
                "state": "sending",
                "last_error": None,
                "send_error": "Connect call failed ('127.0.0.1', 587)",
            }
        ],
    }

    table = render_request(result)
    cells = re.split(r"\s{2,}", table.splitlines()[1].strip())

    assert cells[4] == "1"
    assert cells[-1] == "Connect call failed ('127.0.0.1', 587)"


def test_request_list_prefers_final_error() -> None:
    request = {"id": 4, "step": 1, "last_error": "hard_bounce", "send_error": "old attempt"}

    table = render_request({"action": "list", "requests": [request]})

    assert "hard_bounce" in table
    assert "old attempt" not in table


def test_request_show_prints_whole_send_error() -> None:
    error = "SMTP 421 from 127.0.0.1:2525: " + "service not available, closing channel " * 4
    result: dict[str, Any] = {
        "action": "show",
        "request": {"id": 1, "campaign": "c", "step": 1, "state": "sending", "send_error": error},
        "couple": {"names": ["Ana Lima"], "emails": ["ana@example.com"]},
        "steps": [],
        "messages": [],
        "consent": [],
        "personalisation": None,
        "job": {"id": 9, "state": "failed", "attempts": 2, "last_error": error},
    }

    shown = render_request(result)
    lines = [line for line in shown.splitlines() if line.startswith(("send error: ", "      "))]

    assert " ".join(" ".join(line.split()) for line in lines) == "send error: " + " ".join(
        error.split()
    )
    assert "..." not in shown


# --- reasons in full ---


def test_explain_prints_whole_reason() -> None:
    explanation = {
        "request": 1,
        "arm": "treatment",
        "variant": "base",
        "due_at": "2026-10-20T15:00:00+00:00",
        "send_at": "2026-12-05T02:47:01+00:00",
        "window_end": "2026-10-21T15:00:00+00:00",
        "local_time": "Fri 2026-12-04 20:47",
        "timezone": "America/Chicago",
        "reason": LONG_REASON,
        "evidence": {},
        "draft": {"state": "off"},
        "outcome": "pending",
        "channel": {"chosen": "email", "allowed": ["email", "sms"], "reason": LONG_REASON},
    }

    shown = render_explain(explanation)

    assert "..." not in shown
    why = shown.split("why      ", 1)[1].split("evidence ", 1)[0]
    assert " ".join(why.split()) == LONG_REASON
    channel = shown.split("channel  ", 1)[1].split("due      ", 1)[0]
    assert " ".join(channel.split()) == f"email of email, sms: {LONG_REASON}"
    assert all(len(line) <= WRAP_WIDTH for line in shown.splitlines() if "why" in line)


def test_lift_counts_steps_from_one(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "journal.sqlite3", clock=LiftClock(SENT + 30 * DAY))
    with journal.transaction() as tx:
        store_couples(tx, [lift_couple(1)], vendor="Willow")
        add_sent(tx, 1, "treatment", variant="warm")
        report = measure_lift(tx, conversion_days={"after-wedding": 14})

    shown = render_lift({"action": "lift", **msgspec.to_builtins(report)})
    row = next(line for line in shown.splitlines() if "after-wedding" in line)

    assert [variant.step for variant in report.variants] == [1]
    assert row.split()[:4] == ["after-wedding", "1", "treatment", "warm"]


def test_wrap_field_keeps_long_words() -> None:
    url = "https://example.com/" + "a" * 120

    lines = wrap_field("link ", f"see {url}")

    assert lines == ["link see", f"     {url}"]


def test_wrap_field_shows_missing_as_dash() -> None:
    assert wrap_field("why      ", None) == ["why      -"]
    assert wrap_field("why      ", "") == ["why      -"]


# --- check-config and the state directory ---


def write_example(tmp_path: Path, *replacements: tuple[str, str]) -> Path:
    text = EXAMPLE.read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "plaudit.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_check_config_rejects_smtp_port_zero(tmp_path: Path) -> None:
    path = write_example(tmp_path, ('security = "starttls"', 'security = "none"'))
    text = re.sub(r"(?m)^port = 587$", "port = 0", path.read_text(encoding="utf-8"))
    path.write_text(text, encoding="utf-8")

    status, errors = checked(path)

    assert status == 1
    assert "smtp.port: expected an integer from 1 to 65535, got integer 0" in errors


def test_check_config_rejects_backoff_below_initial(tmp_path: Path) -> None:
    path = write_example(
        tmp_path,
        ("backoff_initial = 1.0\nbackoff_max = 5.0", "backoff_initial = 0.5\nbackoff_max = 0.1"),
    )

    status, errors = checked(path)

    assert status == 1
    assert errors.count("\n") == 1, errors
    assert "smtp.retry: backoff_initial (0.5 s) is greater than backoff_max (0.1 s)" in errors
    assert "lower smtp.retry.backoff_initial or raise smtp.retry.backoff_max" in errors


def test_check_config_rejects_breaker_open_range(tmp_path: Path) -> None:
    path = write_example(
        tmp_path,
        ("open_initial = 30.0\nopen_max = 600.0", "open_initial = 900.0\nopen_max = 600.0"),
    )

    status, errors = checked(path)

    assert status == 1
    assert "platforms.google.breaker: open_initial (900 s) is greater than open_max" in errors


def test_check_config_skips_range_with_invalid_key(tmp_path: Path) -> None:
    path = write_example(tmp_path, ("backoff_max = 5.0", "backoff_max = -1.0"))

    status, errors = checked(path)

    assert status == 1
    assert "smtp.retry.backoff_max" in errors
    assert "is greater than" not in errors


def test_check_config_reports_yelp_link_once(tmp_path: Path) -> None:
    yelp = "https://www.yelp.com/writeareview/biz/blush-and-bloom-florist"
    path = write_example(
        tmp_path,
        (
            'review_links = { google = "http://127.0.0.1:8931/google/review" }',
            f'review_links = {{ google = "http://127.0.0.1:8931/google/review", yelp = "{yelp}" }}',
        ),
    )

    status, errors = checked(path)

    assert status == 1
    assert errors.count("vendor.review_links.yelp") == 1, errors
    assert yelp in errors


def test_check_config_rejects_yelp_key_once(tmp_path: Path) -> None:
    path = write_example(
        tmp_path,
        (
            'review_links = { google = "http://127.0.0.1:8931/google/review" }',
            'review_links = { yelp = "http://127.0.0.1:8931/yelp/review" }',
        ),
    )

    status, errors = checked(path)

    assert status == 1
    assert errors.count("vendor.review_links.yelp") == 1, errors
    assert "Yelp forbids asking for reviews" in errors


@pytest.mark.parametrize("below", [False, True])
def test_run_state_dir_file_says_so(tmp_path: Path, below: bool) -> None:
    blocking = tmp_path / "state"
    blocking.write_text("", encoding="utf-8")
    state_dir = blocking / "inner" if below else blocking
    config = tmp_path / "plaudit.toml"
    # Any free port, in case the daemon started after all.
    text = re.sub(r"(?m)^port = (9464|8465)$", "port = 0", EXAMPLE.read_text(encoding="utf-8"))
    config.write_text(text, encoding="utf-8")
    command = [
        sys.executable, "-m", "plaudit", "run", "--config", str(config),
        "--state-dir", str(state_dir), "--runtime-dir", str(tmp_path / "run"),
    ]  # fmt: skip

    result = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env=plaudit_env(), check=False
    )

    assert result.returncode == 1
    assert f"{blocking} is a file, not a directory" in result.stderr
    assert "--state-dir" in result.stderr
    assert "File exists" not in result.stderr
    assert "Traceback" not in result.stderr


def test_run_runtime_dir_file_says_so(tmp_path: Path) -> None:
    blocking = tmp_path / "run"
    blocking.write_text("", encoding="utf-8")
    config = tmp_path / "plaudit.toml"
    text = re.sub(r"(?m)^port = (9464|8465)$", "port = 0", EXAMPLE.read_text(encoding="utf-8"))
    config.write_text(text, encoding="utf-8")
    command = [
        sys.executable, "-m", "plaudit", "run", "--config", str(config),
        "--state-dir", str(tmp_path / "state"), "--runtime-dir", str(blocking),
    ]  # fmt: skip

    result = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env=plaudit_env(), check=False
    )

    assert result.returncode == 1
    assert f"{blocking} is a file, not a directory" in result.stderr
    assert "--runtime-dir" in result.stderr
    assert "Traceback" not in result.stderr
    # It stopped before the journal was opened.
    assert not (tmp_path / "state" / "journal.sqlite3").exists()


# --- demo directories ---


def test_demo_dirs_removes_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)

    with demo_dirs(None, prefix="plaudit-demo-", keep=False) as dirs:
        (dirs.state / "journal.sqlite3").write_bytes(b"x")
        runtime = dirs.runtime
        kept = dirs.kept

    assert kept is False
    assert list(tmp_path.iterdir()) == []
    assert not runtime.exists()


def test_demo_dirs_keep_leaves_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)

    with demo_dirs(None, prefix="plaudit-demo-", keep=True) as dirs:
        (dirs.state / "journal.sqlite3").write_bytes(b"x")
        runtime = dirs.runtime

    assert dirs.kept is True
    assert (dirs.state / "journal.sqlite3").exists()
    assert dirs.state.parent == tmp_path.resolve()
    assert not runtime.exists()


def test_demo_dirs_never_removes_named_state(tmp_path: Path) -> None:
    named = tmp_path / "named"

    with demo_dirs(str(named), prefix="plaudit-demo-", keep=False) as dirs:
        (dirs.state / "journal.sqlite3").write_bytes(b"x")

    assert dirs.kept is True
    assert (named / "journal.sqlite3").exists()


def test_demo_dirs_keep_state_of_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)

    with (
        pytest.raises(RuntimeError),
        demo_dirs(None, prefix="plaudit-demo-", keep=False) as dirs,
    ):
        raise RuntimeError("the sandbox failed")

    assert dirs.state.exists()
    assert str(dirs.state.name) in capsys.readouterr().err
    assert not dirs.runtime.exists()


def test_summary_names_files_only_when_kept(tmp_path: Path) -> None:
    summary = {"journal": "/x/journal.sqlite3", "daemon_log": "/x/daemon.log", "seed": 1}

    with demo_dirs(str(tmp_path), prefix="p-", keep=False) as named:
        kept_summary = without_removed_files(summary, named)
    with demo_dirs(None, prefix="p-", keep=False) as temporary:
        removed_summary = without_removed_files(summary, temporary)

    assert kept_summary == summary
    assert removed_summary == {"seed": 1}


@pytest.mark.slow
def test_demo_leaves_no_state_dir(tmp_path: Path) -> None:
    """Real ``plaudit demo``; at most 30 s of demo, and 240 s in all on a busy machine."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    command = [sys.executable, "-m", "plaudit", "demo", "--seconds", "30", "--json"]

    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=240,
        env=plaudit_env(TMPDIR=str(temporary)),
        check=False,
    )

    assert result.stdout.strip(), result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert "journal" not in summary
    assert "daemon_log" not in summary
    assert "reviews_synced" in summary
    assert list(temporary.iterdir()) == []


# --- help and README wording ---


def test_inspect_help_names_every_kind() -> None:
    text = " ".join(build_parser().format_help().split())
    inspect_help = text.split("inspect ", 1)[1].split(" check-sender", 1)[0]

    for kind in ("bounce", "complaint", "DMARC", "storefront", "notification"):
        assert kind in inspect_help, kind
    assert "platform-json" in inspect_help
    assert "webhook" in inspect_help


def test_readme_states_demo_seconds_as_maximum() -> None:
    text = " ".join(README.read_text(encoding="utf-8").split())

    assert "for at most 30 seconds" in text
    assert "runs the daemon for 30 seconds" not in text
    assert "`--seconds` is a maximum" in text


def test_readme_says_when_check_config_fails() -> None:
    text = " ".join(README.read_text(encoding="utf-8").split())

    assert "exits 0 when it is valid" in text
    assert "line and column, and exits 1 |" not in text


def test_readme_cli_sandbox_port_matches_default() -> None:
    text = README.read_text(encoding="utf-8")

    assert f"port {DEFAULT_SMTP_PORT} (`--smtp-port`" in text
