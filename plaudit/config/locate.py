"""Line and column of every key in a TOML document, for error messages.

tomllib returns plain dicts without positions, so this module scans the source
text a second time.  It understands table headers (``[a.b]``), arrays of tables
(``[[a.b]]``, whose entries get an index: ``a.b[1]``), dotted keys and
``key = value`` lines, and skips over multi-line strings and arrays.  Keys
inside inline tables and array items are not indexed: ``find_position`` falls
back to the nearest enclosing key that is.

The scanner expects text that tomllib parsed.  On invalid TOML it returns
what it found and does not raise.
"""

from __future__ import annotations

import json
import re

KeyPath = tuple[str | int, ...]
# 1-based line and column.
Position = tuple[int, int]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_MULTILINE_QUOTES = ('"""', "'''")


def format_key_path(path: KeyPath) -> str:
    """Format a key path the way TOML spells it, such as ``platforms.google.locations[1]``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
            continue

        key = part if _BARE_KEY.fullmatch(part) else json.dumps(part)
        text = f"{text}.{key}" if text else key
    return text


def find_position(index: dict[KeyPath, Position], path: KeyPath) -> Position | None:
    """Return the position of ``path``, or of its nearest ancestor found in ``index``."""
    for length in range(len(path), 0, -1):
        position = index.get(path[:length])
        if position is not None:
            return position
    return None


def index_keys(text: str) -> dict[KeyPath, Position]:
    """Map each key path defined in ``text`` to the position of its key."""
    scanner = _Scanner()
    for number, line in enumerate(text.splitlines(), start=1):
        scanner.feed(number, line)
    return scanner.positions


class _Scanner:
    """Line-by-line TOML key scanner whose state carries across multi-line values."""

    def __init__(self) -> None:
        self.positions: dict[KeyPath, Position] = {}
        self._table: KeyPath = ()
        # Number of entries seen so far in each array of tables.
        self._array_lengths: dict[KeyPath, int] = {}
        # Open brackets and the open multi-line string quote of a value that
        # continues on the next line.
        self._depth = 0
        self._quote: str | None = None

    def feed(self, number: int, line: str) -> None:
        if self._depth or self._quote:
            self._scan_value(line, 0)
            return

        start = len(line) - len(line.lstrip())
        if start == len(line) or line[start] == "#":
            return

        if line.startswith("[[", start):
            self._read_array_header(number, line, start + 2)
        elif line[start] == "[":
            self._read_table_header(number, line, start + 1)
        else:
            self._read_key_value(number, line, start)

    def _read_table_header(self, number: int, line: str, start: int) -> None:
        keys, _ = _parse_keys(line, start)
        if not keys:
            return

        path = self._resolve([key for key, _ in keys])
        self._record_prefixes(number, keys, path)
        self.positions[path] = (number, keys[-1][1])
        self._table = path

    def _read_array_header(self, number: int, line: str, start: int) -> None:
        keys, _ = _parse_keys(line, start)
        if not keys:
            return

        array = (*self._resolve([key for key, _ in keys[:-1]]), keys[-1][0])
        self._record_prefixes(number, keys, array)
        length = self._array_lengths.get(array, 0) + 1
        self._array_lengths[array] = length
        self._table = (*array, length - 1)
        self.positions[self._table] = (number, keys[-1][1])

    def _read_key_value(self, number: int, line: str, start: int) -> None:
        keys, end = _parse_keys(line, start)
        if not keys or not line.startswith("=", end):
            return

        for count, (_, column) in enumerate(keys, start=1):
            path = self._table + tuple(key for key, _ in keys[:count])
            self.positions.setdefault(path, (number, column))
        self._scan_value(line, end + 1)

    def _record_prefixes(self, number: int, keys: list[tuple[str, int]], path: KeyPath) -> None:
        # A header such as [a.b] also defines the table a.  Keep the first place
        # where each such prefix was named.
        resolved: KeyPath = ()
        for key, column in keys[:-1]:
            resolved = self._resolve_step(resolved, key)
            self.positions.setdefault(resolved, (number, column))
        self.positions.setdefault(path, (number, keys[-1][1]))

    def _resolve(self, keys: list[str]) -> KeyPath:
        resolved: KeyPath = ()
        for key in keys:
            resolved = self._resolve_step(resolved, key)
        return resolved

    def _resolve_step(self, resolved: KeyPath, key: str) -> KeyPath:
        # A header that passes through an array of tables refers to its last
        # entry, as in [[a]] followed by [a.b].
        path = (*resolved, key)
        length = self._array_lengths.get(path)
        return path if length is None else (*path, length - 1)

    def _scan_value(self, line: str, start: int) -> None:
        position = start
        while position < len(line):
            if self._quote is not None:
                position = self._close_multiline(line, position, self._quote)
                continue

            char = line[position]
            if char == "#":
                return
            if line.startswith(_MULTILINE_QUOTES, position):
                self._quote = line[position : position + 3]
                position += 3
            elif char in "\"'":
                position = _skip_string(line, position)
            else:
                self._depth += (char in "[{") - (char in "]}")
                position += 1

    def _close_multiline(self, line: str, position: int, quote: str) -> int:
        while position < len(line):
            if quote == '"""' and line[position] == "\\":
                position += 2
            elif line.startswith(quote, position):
                self._quote = None
                return position + 3
            else:
                position += 1
        return position


def _parse_keys(line: str, start: int) -> tuple[list[tuple[str, int]], int]:
    """Parse a dotted key at ``start``.

    Return each part with its 1-based column, and the index after the key.
    """
    keys: list[tuple[str, int]] = []
    position = start
    while True:
        position = _skip_spaces(line, position)
        key, end = _parse_simple_key(line, position)
        if key is None:
            return keys, position

        keys.append((key, position + 1))
        position = _skip_spaces(line, end)
        if not line.startswith(".", position):
            return keys, position
        position += 1


def _parse_simple_key(line: str, position: int) -> tuple[str | None, int]:
    if line.startswith(('"', "'"), position):
        end = _skip_string(line, position)
        # NOTE: escapes in quoted keys are kept as written, so such a key is
        # not found and its position falls back to the enclosing table.
        return line[position + 1 : end - 1], end

    match = _BARE_KEY.match(line, position)
    if match is None:
        return None, position
    return match.group(), match.end()


def _skip_string(line: str, position: int) -> int:
    """Return the index just past the one-line string that starts at ``position``."""
    quote = line[position]
    position += 1
    while position < len(line):
        if quote == '"' and line[position] == "\\":
            position += 2
            continue
        if line[position] == quote:
            return position + 1
        position += 1
    return position


def _skip_spaces(line: str, position: int) -> int:
    while position < len(line) and line[position] in " \t":
        position += 1
    return position
