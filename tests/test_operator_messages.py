"""Messages and README facts an operator meets on a first run: ports, socket path, Ctrl-C."""

from __future__ import annotations

import argparse
import socket
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from plaudit import cli
from plaudit.daemon.ctl import ctl_main, socket_path_problem
from plaudit.errors import PlauditError
from plaudit.sandbox.server import DEFAULT_PORT
from plaudit.sandbox.server import build_parser as build_sandbox_parser
from plaudit.sandbox.smtp_options import DEFAULT_SMTP_PORT

REPOSITORY = Path(__file__).resolve().parents[1]


def test_ctl_rejects_directory_as_socket(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = ctl_main(["--socket", str(tmp_path), "status"])

    err = capsys.readouterr().err
    assert status == 1
    assert f"control socket path {tmp_path} is a directory" in err
    assert "control.sock in its --runtime-dir" in err


def test_ctl_names_socket_inside_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "control.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(path))
        status = ctl_main(["--socket", str(tmp_path), "status"])
    finally:
        listener.close()

    err = capsys.readouterr().err
    assert status == 1
    assert f"control socket path {tmp_path} is a directory" in err
    assert f"pass the socket file in it: --socket {path}" in err


def test_ctl_rejects_config_file_as_socket(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "plaudit.toml"
    config.write_text("[daemon]\n", encoding="utf-8")

    status = ctl_main(["--socket", str(config), "status"])

    err = capsys.readouterr().err
    assert status == 1
    assert f"control socket path {config} is a file but not a socket" in err
    assert "--runtime-dir" in err


def test_ctl_checks_socket_from_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLAUDIT_SOCKET", str(tmp_path))

    status = ctl_main(["status"])

    assert status == 1
    assert f"control socket path {tmp_path} is a directory" in capsys.readouterr().err


def test_socket_path_problem_accepts_socket(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(path))
        assert socket_path_problem(path) is None
    finally:
        listener.close()


def test_socket_path_problem_leaves_missing_path(tmp_path: Path) -> None:
    assert socket_path_problem(tmp_path / "control.sock") is None


def test_ctl_missing_socket_keeps_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "control.sock"

    status = ctl_main(["--socket", str(path), "status"])

    err = capsys.readouterr().err
    assert status == 1
    assert f"no daemon is listening on {path}" in err


def _raise_group(*errors: BaseException) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        raise BaseExceptionGroup("from a nursery", list(errors))

    return command


def test_interrupt_in_group_exits_130(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(cli.PASSTHROUGH, "ctl", _raise_group(KeyboardInterrupt()))

    status = cli.main(["ctl"])

    assert status == 130
    assert capsys.readouterr().err == "plaudit: interrupted\n"


def test_interrupt_beside_operator_error_exits_130(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    errors = (KeyboardInterrupt(), PlauditError("the daemon exited early with status 0"))
    monkeypatch.setitem(cli.PASSTHROUGH, "ctl", _raise_group(*errors))

    status = cli.main(["ctl"])

    assert status == 130
    assert capsys.readouterr().err == "plaudit: interrupted\n"


def test_interrupt_beside_bug_keeps_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    errors = (KeyboardInterrupt(), ValueError("bug"))
    monkeypatch.setitem(cli.PASSTHROUGH, "ctl", _raise_group(*errors))

    with pytest.raises(BaseExceptionGroup) as raised:
        cli.main(["ctl"])

    assert raised.group_contains(ValueError)


def test_operator_errors_in_group_exit_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(cli.PASSTHROUGH, "ctl", _raise_group(PlauditError("no such profile")))

    status = cli.main(["ctl"])

    assert status == 1
    assert capsys.readouterr().err == "plaudit: no such profile\n"


def test_run_without_config_names_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    default = tmp_path / "etc" / "plaudit.toml"
    monkeypatch.setattr(cli, "DEFAULT_CONFIG", str(default))

    status = cli.main(["run"])

    err = capsys.readouterr().err
    assert status == 1
    assert f"{default}: file not found; pass --config PATH" in err
    assert "config/plaudit.example.toml" in err


def test_run_with_missing_config_names_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plaudit.toml"

    status = cli.main(["run", "--config", str(path)])

    err = capsys.readouterr().err
    assert status == 1
    assert f"{path}: file not found; check the path" in err


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("run", "SIGHUP reloads the configuration"),
        ("check-config", "Exit 0 when it is valid"),
    ],
)
def test_help_describes_command(
    command: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.build_parser().parse_args([command, "--help"])

    assert exited.value.code == 0
    assert expected in " ".join(capsys.readouterr().out.split())


def test_readme_port_list_matches_defaults() -> None:
    text = " ".join((REPOSITORY / "README.md").read_text(encoding="utf-8").split())
    example = (REPOSITORY / "config" / "plaudit.example.toml").read_text(encoding="utf-8")
    config = tomllib.loads(example)

    assert f"ports {DEFAULT_PORT} and {DEFAULT_SMTP_PORT} (sandbox)" in text
    assert f"{config['metrics']['port']} (`[metrics]`)" in text
    assert f"{config['inbound']['port']} (`[inbound]`)" in text
    assert f":{config['inbound']['port']}/" in config["vendor"]["unsubscribe_url"]


def test_sandbox_help_names_default_port(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_sandbox_parser().parse_args(["--help"])

    assert exited.value.code == 0
    assert f"TCP port (default {DEFAULT_PORT})" in " ".join(capsys.readouterr().out.split())
