"""Loading a TOML configuration file into ``Config``, reporting every problem.

Each problem is one line, ``FILE:LINE:COL: KEY.PATH: what is wrong; what to
do``.  Line and column are left out when the key is not in the file, and the
key path when the problem concerns the whole file.
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from typing import Any, Final

import msgspec

from plaudit.config.locate import Position, find_position, format_key_path, index_keys
from plaudit.config.model import Config
from plaudit.config.paths import describe_read_error, read_bounded
from plaudit.config.rules import check_rules
from plaudit.config.validate import Problem, validate_document
from plaudit.errors import ConfigError

logger = logging.getLogger(__name__)

# A Plaudit configuration is a few kilobytes, so a larger file is the wrong file.
MAX_CONFIG_BYTES: Final = 1024 * 1024
_UTF8_BOM: Final = b"\xef\xbb\xbf"
_TOML_POSITION = re.compile(r" \(at (?:line (\d+), column (\d+)|end of document)\)$")
_MSGSPEC_PATH = re.compile(r" - at `\$(.*)`$")
# Fixes for tomllib's error messages (Python 3.11), by message prefix.
_SYNTAX_FIXES: Final = (
    ("Invalid value", "quote strings and check numbers, true/false and brackets"),
    ("Cannot overwrite a value", "remove the key that is set twice"),
    ("Cannot declare", "merge the tables that are declared twice"),
    ("Unterminated string", "close the string with its opening quote"),
    ("Unclosed", "close the array or inline table"),
    ("Expected '=' after a key", "quote keys with spaces, and put = between key and value"),
    ("Expected newline or end of document", "put each key on its own line and quote strings"),
)


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read, parse and validate the configuration file at ``path``.

    Raises ConfigError listing every problem found: unreadable file, TOML
    syntax, unknown or missing keys, wrong types and values, and rule
    violations.
    """
    file = os.fspath(path)
    text = _read_text(file)
    document = _parse_toml(file, text)
    # Imported here because plaudit.messaging imports the config model.
    from plaudit.messaging.campaigns import fill_default_delays, with_default_campaign

    fill_default_delays(document)

    validation = validate_document(document)
    problems = validation.problems
    config = _decode(validation.cleaned, problems)
    if config is not None:
        config = with_default_campaign(config, campaigns_key="campaigns" in document)
        problems += check_rules(config, invalid=validation.replaced)

    if problems or config is None:
        raise ConfigError(file, _format_problems(file, text, problems))

    logger.debug("config.loaded", extra={"config_path": file})
    return config


def _read_text(file: str) -> str:
    try:
        data = read_bounded(file, MAX_CONFIG_BYTES)
    except OSError as exc:
        raise ConfigError(file, [f"{file}: {describe_read_error(exc)}"]) from exc

    # Editors on Windows may start a UTF-8 file with a byte order mark.
    data = data.removeprefix(_UTF8_BOM)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _byte_position(data, exc.start)
        raise ConfigError(
            file,
            [
                f"{file}:{line}:{column}: invalid UTF-8 byte 0x{data[exc.start]:02x}; "
                "save the file as UTF-8"
            ],
        ) from exc


def _byte_position(data: bytes, offset: int) -> Position:
    line_start = data.rfind(b"\n", 0, offset) + 1
    # The bytes before offset decoded fine, so the column counts characters.
    column = len(data[line_start:offset].decode("utf-8")) + 1
    return data.count(b"\n", 0, offset) + 1, column


def _parse_toml(file: str, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, [_format_syntax_error(file, text, str(exc))]) from exc
    except RecursionError as exc:
        problem = f"{file}: arrays or tables nest too deeply to parse; flatten the value"
        raise ConfigError(file, [problem]) from exc


def _format_syntax_error(file: str, text: str, message: str) -> str:
    match = _TOML_POSITION.search(message)
    reason = message[: match.start()] if match else message
    fix = next(
        (fix for prefix, fix in _SYNTAX_FIXES if reason.startswith(prefix)),
        "correct the TOML syntax here",
    )
    location = file
    if match and match.group(1):
        location = f"{file}:{match.group(1)}:{match.group(2)}"
    elif match:
        # "end of document": point just past the last character.
        lines = text.split("\n")
        location = f"{file}:{len(lines)}:{len(lines[-1]) + 1}"
    return f"{location}: invalid TOML: {reason[:1].lower()}{reason[1:]}; {fix}"


def _decode(cleaned: dict[str, Any], problems: list[Problem]) -> Config | None:
    """Decode the valid part of the document, with defaults in place of invalid values."""
    try:
        return msgspec.convert(cleaned, type=Config)
    except msgspec.ValidationError as exc:
        # NOTE: validate_document should leave nothing that msgspec rejects.
        # This keeps any mismatch between the two a reported problem, not a crash.
        message = str(exc)
        match = _MSGSPEC_PATH.search(message)
        reason = message[: match.start()] if match else message
        problems.append(
            Problem(
                _parse_msgspec_path(match.group(1) if match else ""), f"{reason}; correct the value"
            )
        )
        return None


def _parse_msgspec_path(text: str) -> tuple[str | int, ...]:
    parts: list[str | int] = []
    for name, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", text):
        parts.append(int(index) if index else name)
    return tuple(parts)


def _format_problems(file: str, text: str, problems: list[Problem]) -> list[str]:
    index = index_keys(text)
    located = [(find_position(index, problem.path), problem) for problem in problems]
    # Top to bottom through the file; problems without a position last.
    located.sort(key=lambda item: (item[0] is None, item[0] or (0, 0)))
    return [_format_problem(file, position, problem) for position, problem in located]


def _format_problem(file: str, position: Position | None, problem: Problem) -> str:
    prefix = file if position is None else f"{file}:{position[0]}:{position[1]}"
    if not problem.path:
        return f"{prefix}: {problem.message}"
    return f"{prefix}: {format_key_path(problem.path)}: {problem.message}"
