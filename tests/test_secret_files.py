"""Inbound credential files and Google secret files: run and check-config agree."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from plaudit.config import load_config
from plaudit.config.check import check_config
from plaudit.config.credential_files import require_inbound_files
from plaudit.config.model import (
    InboundConfig,
    InboundFacebook,
    InboundMailgun,
    InboundPostmark,
    InboundResend,
    InboundSendgrid,
    InboundTwilio,
)
from plaudit.errors import ConfigError
from plaudit.inbound.providers import CredentialError, Verifiers

GOOGLE = """\
[platforms.google]
api_base = "http://127.0.0.1:8931/google/v4"
token_url = "http://127.0.0.1:8931/google/oauth2/token"
client_id = "plaudit-sandbox"
client_secret_file = "{secret}"
refresh_token = "sandbox-refresh-token"

[[platforms.google.locations]]
account = "accounts/1001"
location = "locations/2001"
"""


def secret_file(folder: Path, name: str, text: str, *, mode: int = 0o600) -> Path:
    path = folder / name
    path.write_text(text)
    path.chmod(mode)
    return path


def inbound_with(provider: str, path: str) -> InboundConfig:
    tables = {
        "mailgun": lambda: InboundConfig(mailgun=InboundMailgun(signing_key_file=path)),
        "postmark": lambda: InboundConfig(
            postmark=InboundPostmark(username="pm", password_file=path)
        ),
        "twilio": lambda: InboundConfig(
            twilio=InboundTwilio(auth_token_file=path, public_url="https://hooks.example.com")
        ),
        "resend": lambda: InboundConfig(resend=InboundResend(secret_file=path)),
        "facebook": lambda: InboundConfig(facebook=InboundFacebook(app_secret_file=path)),
    }
    return tables[provider]()


KEYS = {
    "mailgun": "inbound.mailgun.signing_key_file",
    "postmark": "inbound.postmark.password_file",
    "twilio": "inbound.twilio.auth_token_file",
    "resend": "inbound.resend.secret_file",
    "facebook": "inbound.facebook.app_secret_file",
}


def run_check(path: Path) -> tuple[int, str, str]:
    out = io.StringIO()
    err = io.StringIO()
    status = check_config(str(path), out=out, err=err)
    return status, out.getvalue(), err.getvalue()


def inbound_toml(table: str, key: str, value: str) -> str:
    return f'[inbound]\nport = 0\n\n[inbound.{table}]\n{key} = "{value}"\n'


@pytest.mark.parametrize("provider", sorted(KEYS))
@pytest.mark.parametrize("content", ["", "  \n\t\n"])
def test_empty_secret_rejected_by_verifiers(tmp_path: Path, provider: str, content: str) -> None:
    path = secret_file(tmp_path, "secret", content)
    with pytest.raises(CredentialError) as caught:
        Verifiers(inbound_with(provider, str(path)))
    message = str(caught.value)
    assert str(path) in message
    assert KEYS[provider] in message
    assert "empty or only whitespace; write the secret in it" in message


def test_empty_verify_token_rejected(tmp_path: Path) -> None:
    secret = secret_file(tmp_path, "app", "fb-secret")
    token = secret_file(tmp_path, "token", "\n")
    facebook = InboundFacebook(app_secret_file=str(secret), verify_token_file=str(token))
    expected = r"inbound\.facebook\.verify_token_file: the file is empty"
    with pytest.raises(CredentialError, match=expected):
        Verifiers(InboundConfig(facebook=facebook))


def test_empty_sendgrid_key_rejected(tmp_path: Path) -> None:
    path = secret_file(tmp_path, "sendgrid.pem", "")
    config = InboundConfig(sendgrid=InboundSendgrid(public_key_file=str(path)))
    with pytest.raises(CredentialError) as caught:
        Verifiers(config)
    assert "inbound.sendgrid.public_key_file: the file is empty" in str(caught.value)


def test_secret_with_newline_still_read(tmp_path: Path) -> None:
    path = secret_file(tmp_path, "mailgun.key", "key-1\n")
    verifiers = Verifiers(inbound_with("mailgun", str(path)))
    assert sorted(verifiers.checks) == ["mailgun"]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("empty", "the file is empty or only whitespace"),
        ("missing", "file not found; check the path"),
        ("directory", "is a directory; give the path of a file"),
    ],
)
def test_check_config_reports_unusable_secret(tmp_path: Path, case: str, expected: str) -> None:
    target = tmp_path / "mailgun.key"
    if case == "empty":
        secret_file(tmp_path, "mailgun.key", " \n")
    elif case == "directory":
        target.mkdir()
    config = tmp_path / "plaudit.toml"
    config.write_text(inbound_toml("mailgun", "signing_key_file", str(target)))
    status, out, err = run_check(config)
    assert status == 1
    assert out == ""
    assert f"{target}: inbound.mailgun.signing_key_file: {expected}" in err


def test_check_config_rejects_relative_path(tmp_path: Path) -> None:
    config = tmp_path / "plaudit.toml"
    config.write_text(inbound_toml("twilio", "auth_token_file", "secrets/twilio.token"))
    config.write_text(config.read_text() + 'public_url = "https://hooks.example.com"\n')
    status, _, err = run_check(config)
    assert status == 1
    assert "inbound.twilio.auth_token_file" in err
    assert 'relative path "secrets/twilio.token"; use an absolute path' in err


def test_check_config_lists_every_bad_file(tmp_path: Path) -> None:
    empty = secret_file(tmp_path, "resend", "")
    absent = tmp_path / "absent"
    config = tmp_path / "plaudit.toml"
    config.write_text(
        "[inbound]\nport = 0\n\n"
        f'[inbound.resend]\nsecret_file = "{empty}"\n\n'
        f'[inbound.postmark]\nusername = "pm"\npassword_file = "{absent}"\n'
    )
    status, _, err = run_check(config)
    assert status == 1
    assert "inbound.resend.secret_file" in err
    assert "inbound.postmark.password_file" in err


def test_check_config_warns_world_readable_inbound(tmp_path: Path) -> None:
    path = secret_file(tmp_path, "mailgun.key", "key-1", mode=0o644)
    config = tmp_path / "plaudit.toml"
    config.write_text(inbound_toml("mailgun", "signing_key_file", str(path)))
    status, out, err = run_check(config)
    assert status == 0
    assert "OK" in out
    assert f"warning: {path}: inbound.mailgun.signing_key_file: other users can read" in err
    assert f"chmod 600 {path}" in err


def test_check_config_warns_world_readable_google(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = secret_file(tmp_path, "client.secret", "s3cret", mode=0o644)
    config = tmp_path / "plaudit.toml"
    config.write_text(GOOGLE.format(secret=path))
    status, _, err = run_check(config)
    assert status == 0
    assert f"{path}: platforms.google.client_secret_file: other users can read" in err
    # The log record without the key or path is no longer printed on its own.
    assert "config.secret_file_readable_by_others" not in capfd.readouterr().err


def test_check_config_empty_google_secret(tmp_path: Path) -> None:
    path = secret_file(tmp_path, "client.secret", "\n")
    config = tmp_path / "plaudit.toml"
    config.write_text(GOOGLE.format(secret=path))
    status, _, err = run_check(config)
    assert status == 1
    assert f"{path}: platforms.google.client_secret_file: the file is empty" in err


def test_run_check_rejects_before_journal(tmp_path: Path) -> None:
    path = secret_file(tmp_path, "mailgun.key", "")
    config_path = tmp_path / "plaudit.toml"
    config_path.write_text(inbound_toml("mailgun", "signing_key_file", str(path)))
    config = load_config(config_path)
    with pytest.raises(ConfigError) as caught:
        require_inbound_files(config, str(config_path))
    assert caught.value.problems == [
        f"{path}: inbound.mailgun.signing_key_file: the file is empty or only whitespace; "
        "write the secret in it"
    ]


def test_good_files_pass_check(tmp_path: Path) -> None:
    path = secret_file(tmp_path, "mailgun.key", "key-1\n")
    config = tmp_path / "plaudit.toml"
    config.write_text(inbound_toml("mailgun", "signing_key_file", str(path)))
    status, out, err = run_check(config)
    assert status == 0
    assert out.startswith(f"{config}: OK")
    assert "inbound" not in err


def test_check_config_rejects_invalid_resend_secret(tmp_path: Path) -> None:
    path = secret_file(tmp_path, "resend", "not-a-whsec-secret\n")
    config = tmp_path / "plaudit.toml"
    config.write_text(inbound_toml("resend", "secret_file", str(path)))
    status, out, err = run_check(config)
    assert status == 1
    assert out == ""
    assert f"{path}: inbound.resend.secret_file: " in err


def test_check_config_rejects_invalid_sendgrid_key(tmp_path: Path) -> None:
    path = secret_file(tmp_path, "sendgrid.key", "not base64 !!\n")
    config = tmp_path / "plaudit.toml"
    config.write_text(inbound_toml("sendgrid", "public_key_file", str(path)))
    status, _, err = run_check(config)
    assert status == 1
    assert f"{path}: inbound.sendgrid.public_key_file: " in err
    assert "Event Webhook settings" in err


def test_check_config_warns_once_for_verifiers(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = secret_file(tmp_path, "mailgun.key", "key-1", mode=0o644)
    config = tmp_path / "plaudit.toml"
    config.write_text(inbound_toml("mailgun", "signing_key_file", str(path)))
    status, _, err = run_check(config)
    assert status == 0
    assert err.count("other users can read") == 1
    assert "config.secret_file_readable_by_others" not in capfd.readouterr().err
