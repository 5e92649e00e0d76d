"""Configuration loading, validation messages, check-config and the example file."""

from __future__ import annotations

import io
import logging
import re
import typing
from pathlib import Path

import msgspec
import pytest

from plaudit.config import (
    Config,
    GoogleConfig,
    Paths,
    check_config,
    load_config,
    read_secret,
    resolve_paths,
)
from plaudit.config.locate import index_keys
from plaudit.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "plaudit.example.toml"

GOOGLE = """\
[platforms.google]
api_base = "http://127.0.0.1:8931/google/v4"
token_url = "http://127.0.0.1:8931/google/oauth2/token"
client_id = "plaudit-sandbox"
client_secret = "sandbox-secret"
refresh_token = "sandbox-refresh-token"

[[platforms.google.locations]]
account = "accounts/1001"
location = "locations/2001"
"""
# The [platforms.google] table without locations.
GOOGLE_HEAD = GOOGLE.split("[[", maxsplit=1)[0]


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plaudit.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path | str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value.problems


def location_entry(*lines: str) -> str:
    return "\n[[platforms.google.locations]]\n" + "".join(f"{line}\n" for line in lines)


def google_config(**replacements: str) -> str:
    """Return GOOGLE with each ``key = ...`` line replaced; an empty text removes the line."""
    text = GOOGLE
    for key, line in replacements.items():
        text = re.sub(rf"^{key} = .*\n", f"{line}\n" if line else "", text, flags=re.MULTILINE)
    return text


# --- the example file -------------------------------------------------------------------


def test_example_config_loads() -> None:
    config = load_config(EXAMPLE)

    google = config.platforms.google
    assert google is not None
    assert google.api_base == "http://127.0.0.1:8931/google/v4"
    assert google.token_url == "http://127.0.0.1:8931/google/oauth2/token"
    assert [(item.account, item.location) for item in google.locations] == [
        ("accounts/1001", "locations/2001"),
        ("accounts/1001", "locations/2002"),
    ]
    assert google.locations[1].name == "Willow & Vine Photography (Studio)"
    assert (config.metrics.host, config.metrics.port) == ("127.0.0.1", 9464)
    assert config.daemon.state_dir == "/var/lib/plaudit"
    assert config.daemon.runtime_dir == "/run/plaudit"


def test_example_config_check_passes() -> None:
    out, err = io.StringIO(), io.StringIO()

    status = check_config(str(EXAMPLE), out=out, err=err)

    assert status == 0
    assert out.getvalue().splitlines() == [
        f"{EXAMPLE}: OK",
        "5 platforms enabled: google (2 locations), facebook (1 Page), "
        "trustpilot (1 business unit), yelp (1 business), marketplace (1 profile)",
    ]
    assert err.getvalue() == ""


def _struct_keys(struct: type[msgspec.Struct]) -> set[str]:
    keys: set[str] = set()
    for field in msgspec.structs.fields(struct):
        keys.add(field.encode_name)
        for candidate in (field.type, *typing.get_args(field.type)):
            if isinstance(candidate, type) and issubclass(candidate, msgspec.Struct):
                keys |= _struct_keys(candidate)
    return keys


def test_example_documents_every_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    keys = _struct_keys(Config)

    # A key set in the file, shown commented out (the *_file alternatives), or
    # a part of a table header, which may be commented out too (optional
    # tables whose files an operator must supply first).
    missing = sorted(
        key
        for key in keys
        if not re.search(rf"^(# )?{key} = |^(# )?\[\[?([\w-]+\.)*{key}[.\]]", text, re.MULTILINE)
    )

    assert "locations" in keys
    assert missing == []


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    assert load_config(write_config(tmp_path, "")) == Config()


def test_byte_order_mark_accepted(tmp_path: Path) -> None:
    path = tmp_path / "plaudit.toml"
    path.write_bytes(b"\xef\xbb\xbf[metrics]\nport = 9000\n")

    assert load_config(path).metrics.port == 9000


# --- schema problems --------------------------------------------------------------------


def test_unknown_key_located_with_suggestion(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[metrics]\nenabled = true\n  prot = 9464\n")

    assert problems_of(path) == [f"{path}:3:3: metrics.prot: unknown key; did you mean 'port'?"]


def test_unknown_key_lists_known_keys(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[metrics]\nwhatever = 1\n")

    assert problems_of(path) == [
        f"{path}:2:1: metrics.whatever: unknown key; remove it or use one of: enabled, host, port"
    ]


def test_unknown_table_named_as_table(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[platforms.gogle]\nenabled = true\n")

    assert problems_of(path) == [
        f"{path}:1:12: platforms.gogle: unknown table; did you mean 'google'?"
    ]


def test_dotted_key_located(tmp_path: Path) -> None:
    path = write_config(tmp_path, "daemon.state_dir = '/srv'\nmetrics.prot = 1\n")

    assert problems_of(path) == [f"{path}:2:9: metrics.prot: unknown key; did you mean 'port'?"]


def test_wrong_type_reports_path_and_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[daemon]\n\nshutdown_timeout = "soon"\n')

    assert problems_of(path) == [
        f"{path}:3:1: daemon.shutdown_timeout: expected a number greater than 0 and at most "
        '31536000, got string "soon"; set daemon.shutdown_timeout to a number greater than 0 '
        "and at most 31536000"
    ]


def test_out_of_range_reports_bounds(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[metrics]\nport = 70000\n")

    assert problems_of(path) == [
        f"{path}:2:1: metrics.port: expected an integer from 0 to 65535, got integer 70000; "
        "set metrics.port to an integer from 0 to 65535"
    ]


def test_literal_reports_choices(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[daemon]\nlog_level = "verbose"\n')

    [problem] = problems_of(path)

    assert 'expected one of "debug", "info", "warning", "error", got string "verbose"' in problem


def test_quoted_number_suggests_unquoting(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[metrics]\nport = "9464"\n')

    [problem] = problems_of(path)

    assert problem.endswith("; remove the quotes around the value")


def test_secret_value_never_shown(tmp_path: Path) -> None:
    path = write_config(tmp_path, google_config(client_secret="client_secret = 982451653"))

    [problem] = problems_of(path)

    assert problem.startswith(f"{path}:5:1: platforms.google.client_secret: expected a quoted")
    assert "982451653" not in problem


def test_array_entry_index_in_path(tmp_path: Path) -> None:
    text = GOOGLE + location_entry("account = 1001", 'location = "locations/2"')
    path = write_config(tmp_path, text)

    assert problems_of(path) == [
        f"{path}:13:1: platforms.google.locations[1].account: expected a quoted string, "
        "got integer 1001; set platforms.google.locations[1].account to a quoted string"
    ]


def test_inline_table_falls_back_to_key(tmp_path: Path) -> None:
    text = (
        "[platforms]\n"
        'google = { api_base = "http://127.0.0.1:8931/g", token_url = "http://127.0.0.1:8931/t", '
        'client_id = "c", client_secret = "s", refresh_token = "r", enabeld = true, '
        'locations = [{ account = "accounts/1", location = "locations/2" }] }\n'
    )
    path = write_config(tmp_path, text)

    assert problems_of(path) == [
        f"{path}:2:1: platforms.google.enabeld: unknown key; did you mean 'enabled'?"
    ]


def test_missing_required_key_points_to_table(tmp_path: Path) -> None:
    path = write_config(tmp_path, google_config(token_url=""))

    assert problems_of(path) == [
        f"{path}:1:12: platforms.google.token_url: missing required key; "
        "add token_url = <a quoted string> to [platforms.google]"
    ]


def test_missing_key_in_array_entry(tmp_path: Path) -> None:
    path = write_config(tmp_path, GOOGLE + location_entry('account = "accounts/1"'))

    assert problems_of(path) == [
        f"{path}:12:20: platforms.google.locations[1].location: missing required key; "
        "add location = <a quoted string> to entry 1 of [[platforms.google.locations]]"
    ]


def test_several_problems_reported_together(tmp_path: Path) -> None:
    text = '[daemon]\nlog_level = "loud"\n\n[metrics]\nhots = "127.0.0.1"\nport = -1\n'
    path = write_config(tmp_path, text)

    problems = problems_of(path)

    assert len(problems) == 3
    assert problems[0].startswith(f"{path}:2:1: daemon.log_level: ")
    assert problems[1].startswith(f"{path}:5:1: metrics.hots: unknown key; did you mean 'host'?")
    assert problems[2].startswith(f"{path}:6:1: metrics.port: ")


def test_schema_and_rule_problems_together(tmp_path: Path) -> None:
    text = '[metrics]\nport = "x"\nhost = "localhost"\n'
    path = write_config(tmp_path, text)

    problems = problems_of(path)

    assert len(problems) == 2
    assert problems[0].startswith(f"{path}:2:1: metrics.port: ")
    assert problems[1].startswith(f"{path}:3:1: metrics.host: ")


def test_invalid_value_skips_dependent_rule(tmp_path: Path) -> None:
    # The default retry_initial (5 s) that stands in for "x" exceeds retry_max,
    # but no rule may judge a stand-in.
    path = write_config(tmp_path, '[journal]\nretry_initial = "x"\nretry_max = 1.0\n')

    problems = problems_of(path)

    assert len(problems) == 1
    assert problems[0].startswith(f"{path}:2:1: journal.retry_initial: expected a number")


def test_invalid_entry_keeps_other_indexes(tmp_path: Path) -> None:
    text = (
        GOOGLE
        + location_entry("account = 5", 'location = "locations/9"')
        + location_entry('account = "accounts/1001"', 'location = "locations/2001"')
    )
    path = write_config(tmp_path, text)

    problems = problems_of(path)

    assert len(problems) == 2
    assert problems[0].startswith(f"{path}:13:1: platforms.google.locations[1].account: ")
    assert problems[1].startswith(f"{path}:16:20: platforms.google.locations[2]: duplicate of")


# --- file and syntax problems ----------------------------------------------------------


def test_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[metrics]\nenabled = yes\n")

    assert problems_of(path) == [
        f"{path}:2:11: invalid TOML: invalid value; "
        "quote strings and check numbers, true/false and brackets"
    ]


def test_syntax_error_at_end_of_document(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[metrics]\nport = ")

    [problem] = problems_of(path)

    assert problem.startswith(f"{path}:2:8: invalid TOML: invalid value; ")


def test_missing_file_reported(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"

    assert problems_of(path) == [f"{path}: file not found; check the path"]


def test_directory_reported(tmp_path: Path) -> None:
    assert problems_of(tmp_path) == [f"{tmp_path}: is a directory; give the path of a file"]


def test_device_file_reported() -> None:
    assert problems_of("/dev/null") == ["/dev/null: not a regular file; give the path of a file"]


def test_non_utf8_reported_with_position(tmp_path: Path) -> None:
    path = tmp_path / "plaudit.toml"
    # "é" is two bytes in UTF-8 but one column.
    path.write_bytes(b"[daemon]\n# caf\xc3\xa9 \xff\n")

    assert problems_of(path) == [f"{path}:2:8: invalid UTF-8 byte 0xff; save the file as UTF-8"]


def test_oversized_file_rejected(tmp_path: Path) -> None:
    path = write_config(tmp_path, "#" * (1024 * 1024 + 1))

    [problem] = problems_of(path)

    assert problem.startswith(f"{path}: the file is larger than 1048576 bytes; ")


# --- semantic rules ----------------------------------------------------------------------

SEMANTIC_CASES = {
    "secret and file": (
        google_config(client_secret='client_secret = "s"\nclient_secret_file = "/etc/s"'),
        "6:1: platforms.google.client_secret_file: both client_secret and client_secret_file",
    ),
    "neither secret nor file": (
        google_config(refresh_token=""),
        "1:12: platforms.google.refresh_token: missing; set refresh_token or refresh_token_file",
    ),
    "relative secret file": (
        google_config(refresh_token='refresh_token_file = "token.txt"'),
        '6:1: platforms.google.refresh_token_file: relative path "token.txt"; use an absolute',
    ),
    "empty client id": (
        google_config(client_id='client_id = ""'),
        "4:1: platforms.google.client_id: empty; ",
    ),
    "non-http api base": (
        google_config(api_base='api_base = "ftp://127.0.0.1/v4"'),
        '2:1: platforms.google.api_base: "ftp://127.0.0.1/v4" is not an http(s) URL',
    ),
    "token url with query": (
        google_config(token_url='token_url = "http://127.0.0.1:8931/token?x=1"'),
        "3:1: platforms.google.token_url: ",
    ),
    "account without prefix": (
        google_config(account='account = "1001"'),
        '9:1: platforms.google.locations[0].account: invalid resource name "1001"',
    ),
    "location with account": (
        google_config(location='location = "accounts/1001/locations/2001"'),
        "10:1: platforms.google.locations[0].location: invalid resource name",
    ),
    "duplicate locations": (
        GOOGLE + location_entry('account = "accounts/1001"', 'location = "locations/2001"'),
        "12:20: platforms.google.locations[1]: duplicate of locations[0] "
        "(accounts/1001, locations/2001); remove one",
    ),
    "enabled without locations": (
        GOOGLE_HEAD,
        "1:12: platforms.google.locations: no locations configured; ",
    ),
    "non-octal mode": (
        '[control]\nmode = "rw-rw----"\n',
        '2:1: control.mode: invalid file mode "rw-rw----"; write it in octal',
    ),
    "world-writable mode": (
        '[control]\nmode = "0666"\n',
        "2:1: control.mode: file mode 0666 lets every local user write",
    ),
    "setuid mode": (
        '[control]\nmode = "4660"\n',
        "2:1: control.mode: file mode 4660 sets setuid, setgid or sticky bits",
    ),
    "hostname as metrics host": (
        '[metrics]\nhost = "localhost"\n',
        '2:1: metrics.host: "localhost" is not an IP address; use an address such as',
    ),
    "backoff initial above max": (
        "[supervisor]\nbackoff_initial = 60.0\n",
        "2:1: supervisor.backoff_initial: 60 s is greater than supervisor.backoff_max (30 s)",
    ),
    "retry initial above max": (
        "[journal]\nretry_initial = 10.0\nretry_max = 2.5\n",
        "2:1: journal.retry_initial: 10 s is greater than journal.retry_max (2.5 s)",
    ),
    "relative state dir": (
        '[daemon]\nstate_dir = "state"\n',
        '2:1: daemon.state_dir: relative path "state"; use an absolute path',
    ),
    "empty journal path": (
        '[journal]\npath = ""\n',
        "2:1: journal.path: empty; ",
    ),
    "socket path too long": (
        f'[daemon]\nruntime_dir = "/run/{"x" * 100}"\n',
        "2:1: daemon.runtime_dir: control socket path /run/",
    ),
}


@pytest.mark.parametrize(("text", "expected"), SEMANTIC_CASES.values(), ids=SEMANTIC_CASES)
def test_rule_violation_reported(tmp_path: Path, text: str, expected: str) -> None:
    path = write_config(tmp_path, text)

    problems = problems_of(path)

    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}:{expected}")


def test_disabled_google_needs_no_locations(tmp_path: Path) -> None:
    text = GOOGLE_HEAD + "enabled = false\n"

    config = load_config(write_config(tmp_path, text))

    assert config.platforms.google is not None
    assert config.platforms.google.enabled is False


def test_ipv6_metrics_host_accepted(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, '[metrics]\nhost = "::1"\n'))

    assert config.metrics.host == "::1"


# --- check-config ------------------------------------------------------------------------


def test_check_config_prints_problems(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[metrics]\nprot = 1\nhost = "localhost"\n')
    out, err = io.StringIO(), io.StringIO()

    status = check_config(str(path), out=out, err=err)

    lines = err.getvalue().splitlines()
    assert status == 1
    assert out.getvalue() == ""
    assert lines == problems_of(path)
    assert len(lines) == 2
    assert "Traceback" not in err.getvalue()


def test_check_config_missing_file(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()

    status = check_config(str(tmp_path / "absent.toml"), out=out, err=err)

    assert status == 1
    assert err.getvalue() == f"{tmp_path / 'absent.toml'}: file not found; check the path\n"


def test_check_config_reads_secret_files(tmp_path: Path) -> None:
    secret = tmp_path / "client-secret"
    secret.write_text("s3cret\n", encoding="utf-8")
    # Other users may not read it, so check-config prints no warning.
    secret.chmod(0o600)
    text = google_config(client_secret=f'client_secret_file = "{secret}"')
    out, err = io.StringIO(), io.StringIO()

    status = check_config(str(write_config(tmp_path, text)), out=out, err=err)

    assert status == 0
    assert err.getvalue() == ""


def test_check_config_reports_missing_secret_file(tmp_path: Path) -> None:
    absent = tmp_path / "absent-token"
    text = google_config(refresh_token=f'refresh_token_file = "{absent}"')
    out, err = io.StringIO(), io.StringIO()

    config_path = write_config(tmp_path, text)
    status = check_config(str(config_path), out=out, err=err)

    assert status == 1
    # Located at the key's line in the config file, then the secret file's path.
    line = next(
        number
        for number, content in enumerate(text.splitlines(), start=1)
        if content.startswith("refresh_token_file")
    )
    assert err.getvalue() == (
        f"{config_path}:{line}:1: "
        f"{absent}: platforms.google.refresh_token_file: file not found; check the path\n"
    )


def test_check_config_summary_without_platforms(tmp_path: Path) -> None:
    out = io.StringIO()

    check_config(str(write_config(tmp_path, "")), out=out, err=io.StringIO())

    assert out.getvalue().splitlines()[1] == "0 platforms enabled"


def test_check_config_summary_disabled_platform(tmp_path: Path) -> None:
    out = io.StringIO()
    text = GOOGLE_HEAD + "enabled = false\n"

    check_config(str(write_config(tmp_path, text)), out=out, err=io.StringIO())

    assert out.getvalue().splitlines()[1] == "0 platforms enabled; disabled: google"


# --- resolve_paths and read_secret ----------------------------------------------------------


def test_resolve_paths_from_config() -> None:
    paths = resolve_paths(Config())

    assert paths == Paths(
        state_dir=Path("/var/lib/plaudit"),
        runtime_dir=Path("/run/plaudit"),
        journal_path=Path("/var/lib/plaudit/journal.sqlite3"),
        control_socket=Path("/run/plaudit/control.sock"),
        lock_path=Path("/var/lib/plaudit/journal.sqlite3.lock"),
    )


def test_resolve_paths_overrides_win(tmp_path: Path) -> None:
    paths = resolve_paths(
        Config(), state_dir=str(tmp_path / "state"), runtime_dir=str(tmp_path / "run")
    )

    assert paths.state_dir == tmp_path / "state"
    assert paths.journal_path == tmp_path / "state" / "journal.sqlite3"
    assert paths.lock_path == tmp_path / "state" / "journal.sqlite3.lock"
    assert paths.runtime_dir == tmp_path / "run"
    assert paths.control_socket == tmp_path / "run" / "control.sock"


def test_resolve_paths_keeps_absolute_files(tmp_path: Path) -> None:
    text = '[journal]\npath = "/srv/journal.db"\n\n[control]\nsocket = "/srv/plaudit.sock"\n'
    config = load_config(write_config(tmp_path, text))

    paths = resolve_paths(config, state_dir="/tmp/state", runtime_dir="/tmp/run")

    assert paths.journal_path == Path("/srv/journal.db")
    assert paths.control_socket == Path("/srv/plaudit.sock")


def test_resolve_paths_relative_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    paths = resolve_paths(Config(), state_dir="state")

    assert paths.state_dir == tmp_path / "state"


def test_read_secret_returns_value() -> None:
    assert read_secret("inline", "", key="platforms.google.client_secret") == "inline"


def test_read_secret_strips_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("  from-file\r\n", encoding="utf-8")
    secret.chmod(0o600)

    assert read_secret("", str(secret), key="platforms.google.client_secret") == "from-file"


def test_read_secret_missing_file(tmp_path: Path) -> None:
    absent = str(tmp_path / "absent")

    with pytest.raises(ConfigError) as caught:
        read_secret("", absent, key="platforms.google.client_secret")

    assert caught.value.path == absent
    assert caught.value.problems == [
        f"{absent}: platforms.google.client_secret_file: file not found; check the path"
    ]


def test_read_secret_empty_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("\n", encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        read_secret("", str(secret), key="platforms.google.refresh_token")

    assert caught.value.problems == [
        f"{secret}: platforms.google.refresh_token_file: the file is empty; write the secret in it"
    ]


def test_read_secret_both_set() -> None:
    with pytest.raises(ConfigError) as caught:
        read_secret("inline", "/etc/secret", key="platforms.google.client_secret")

    assert "both platforms.google.client_secret and" in caught.value.problems[0]


def test_read_secret_neither_set() -> None:
    with pytest.raises(ConfigError) as caught:
        read_secret("", "", key="platforms.google.client_secret")

    assert caught.value.problems == [
        "platforms.google.client_secret: missing; "
        "set platforms.google.client_secret or platforms.google.client_secret_file"
    ]


def test_read_secret_warns_when_world_readable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("value", encoding="utf-8")
    secret.chmod(0o644)

    with caplog.at_level(logging.WARNING, logger="plaudit.config.paths"):
        read_secret("", str(secret), key="platforms.google.client_secret")

    assert [record.getMessage() for record in caplog.records] == [
        "config.secret_file_readable_by_others"
    ]
    assert "value" not in caplog.text


# --- model and locator details ---------------------------------------------------------------


def test_repr_hides_secrets() -> None:
    google = GoogleConfig(
        api_base="http://127.0.0.1:8931/google/v4",
        token_url="http://127.0.0.1:8931/google/oauth2/token",
        client_id="plaudit-sandbox",
        client_secret="sandbox-secret",
        refresh_token="sandbox-refresh-token",
    )

    text = repr(google)

    assert "sandbox-secret" not in text
    assert "sandbox-refresh-token" not in text
    assert "client_secret='***'" in text
    assert "client_secret_file=''" in text


def test_locator_skips_multiline_values() -> None:
    lines = ['a = """', "[fake]", "b = 1", '"""', "c = [", "  1, # ]", "  [2],", "]", "[real]"]
    text = "\n".join([*lines, "d = 'x'"])

    index = index_keys(text)

    assert ("fake",) not in index
    assert ("b",) not in index
    assert index[("c",)] == (5, 1)
    assert index[("real",)] == (9, 2)
    assert index[("real", "d")] == (10, 1)


def test_locator_nested_arrays_of_tables() -> None:
    text = "[[a]]\n[[a.b]]\nx = 1\n[[a]]\n[[a.b]]\n[[a.b]]\ny = 2\n[a.c]\nz = 3\n"

    index = index_keys(text)

    assert index[("a", 0, "b", 0, "x")] == (3, 1)
    assert index[("a", 1, "b", 1, "y")] == (7, 1)
    assert index[("a", 1, "c", "z")] == (9, 1)


def test_locator_quoted_keys() -> None:
    index = index_keys('[ "tab le" . inner ]\n"odd key" = 1\n')

    assert index[("tab le", "inner", "odd key")] == (2, 1)


def mailbox_config(host: str, security: str) -> str:
    return (
        "[deliverability.mailbox]\n"
        f'imap_host = "{host}"\n'
        'imap_user = "bounces"\n'
        'imap_password_file = "imap-password"\n'
        f'imap_security = "{security}"\n'
    )


def test_remote_clear_text_imap_rejected(tmp_path: Path) -> None:
    path = write_config(tmp_path, mailbox_config("imap.example.com", "none"))
    problems = problems_of(path)
    assert len(problems) == 1
    assert "imap.example.com" in problems[0]
    assert "loopback hosts only" in problems[0]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.0.2", "localhost", "::1"])
def test_clear_text_imap_allowed_on_loopback(tmp_path: Path, host: str) -> None:
    config = load_config(write_config(tmp_path, mailbox_config(host, "none")))
    assert config.deliverability.mailbox.imap_host == host
    assert config.deliverability.mailbox.imap_security == "none"


def marketplace_imap_config(host: str) -> str:
    return (
        "[platforms.marketplace]\n"
        'contact = "reviews@example.com"\n'
        "[[platforms.marketplace.profiles]]\n"
        'site = "hitched"\n'
        'profile_id = "willow-barn"\n'
        'vendor_name = "The Willow Barn"\n'
        'modes = ["mailbox"]\n'
        f'imap_host = "{host}"\n'
        'imap_user = "reviews"\n'
        'imap_password_file = "/etc/plaudit/imap-password"\n'
        'imap_security = "none"\n'
    )


def test_marketplace_remote_clear_imap_rejected(tmp_path: Path) -> None:
    problems = problems_of(write_config(tmp_path, marketplace_imap_config("imap.example.com")))
    clear_text = [problem for problem in problems if "clear text" in problem]
    assert len(clear_text) == 1, problems
    assert "imap_security" in clear_text[0]
    assert "imap.example.com" in clear_text[0]


def test_marketplace_loopback_clear_imap_allowed(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, marketplace_imap_config("127.0.0.1")))
    assert config.platforms.marketplace is not None
    assert config.platforms.marketplace.profiles[0].imap_security == "none"
