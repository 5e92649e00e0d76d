"""Schema check of a parsed TOML document against the config structs.

msgspec stops at the first error it meets.  To report every problem at once,
this module walks the struct fields itself.  It checks each table for unknown
and missing keys, and converts each scalar value on its own with msgspec.  So
msgspec's constraints (types, bounds, literals) stay the single definition of
what is valid.  It also returns a cleaned copy of the document, so the loader
can still decode the valid values and run the semantic rules on them.
"""

from __future__ import annotations

import datetime
import difflib
import json
import re
import tomllib
import types
import typing
from dataclasses import dataclass
from typing import Any, Final, final

import msgspec
import msgspec.inspect as schema

from plaudit.config.locate import KeyPath, format_key_path
from plaudit.config.model import Config, Strict

# Values longer than this are cut short in messages.
_MAX_SHOWN_CHARS = 60
# Strings that may be a number, boolean or date written in quotes by mistake.
_UNQUOTED_SCALAR = re.compile(r"[\w.+:-]+")


@final
@dataclass(frozen=True, slots=True)
class Problem:
    """One invalid setting: its key path and "what is wrong; what to do"."""

    path: KeyPath
    message: str
    unknown_key: bool = False


@final
class _Dropped:
    """Marker for a value left out of the cleaned document because it is invalid."""


_DROPPED: Final = _Dropped()


@final
@dataclass(frozen=True, slots=True)
class Validation:
    """The outcome of ``validate_document``."""

    problems: list[Problem]
    # The document without unknown keys, without invalid optional values (so
    # their defaults apply), and with stand-ins for invalid required values.
    cleaned: dict[str, Any]
    # Paths of the values that were left out or replaced in ``cleaned``.
    replaced: list[KeyPath]


def validate_document(document: dict[str, Any]) -> Validation:
    """Check ``document`` against ``Config`` and collect every problem."""
    problems: list[Problem] = []
    cleaned = _check_table(Config, document, (), problems)
    replaced = [problem.path for problem in problems if not problem.unknown_key]
    return Validation(problems, {} if isinstance(cleaned, _Dropped) else cleaned, replaced)


def _check_table(
    struct: type[Strict], table: dict[str, Any], path: KeyPath, problems: list[Problem]
) -> dict[str, Any] | _Dropped:
    fields = {field.encode_name: field for field in msgspec.structs.fields(struct)}
    for key, value in table.items():
        if key not in fields:
            problems.append(_unknown_key(key, value, list(fields), path))

    cleaned: dict[str, Any] = {}
    for name, field in fields.items():
        if name in table:
            # A secret's value never appears in a message, even when its type is wrong.
            secret = name in struct.secret_fields
            value = _check_value(field.type, table[name], (*path, name), problems, secret=secret)
        elif field.required:
            problems.append(_missing_key(name, field.type, path))
            value = _DROPPED
        else:
            continue

        if isinstance(value, _Dropped) and field.required:
            value = _placeholder(field.type)
            if isinstance(value, _Dropped):
                return _DROPPED
        if not isinstance(value, _Dropped):
            cleaned[name] = value
    return cleaned


def _check_value(
    annotation: Any, value: Any, path: KeyPath, problems: list[Problem], *, secret: bool = False
) -> Any | _Dropped:
    annotation = _strip_optional(annotation)
    if _is_struct(annotation):
        if isinstance(value, dict):
            return _check_table(annotation, value, path, problems)
        problems.append(_wrong_value(annotation, value, path, secret=secret))
        return _DROPPED

    item_annotation = _list_item(annotation)
    if item_annotation is not None:
        return _check_list(annotation, item_annotation, value, path, problems)

    try:
        msgspec.convert(value, type=annotation)
    except msgspec.ValidationError:
        problems.append(_wrong_value(annotation, value, path, secret=secret))
        return _DROPPED
    return value


def _check_list(
    annotation: Any, item_annotation: Any, value: Any, path: KeyPath, problems: list[Problem]
) -> list[Any] | _Dropped:
    if not isinstance(value, list):
        problems.append(_wrong_value(annotation, value, path, secret=False))
        return _DROPPED

    # An invalid entry is replaced rather than removed, so that the indexes
    # in later messages still match the file.
    items = []
    for index, item in enumerate(value):
        checked = _check_value(item_annotation, item, (*path, index), problems)
        if isinstance(checked, _Dropped):
            checked = _placeholder(item_annotation)
        if isinstance(checked, _Dropped):
            return _DROPPED
        items.append(checked)
    return items


def _placeholder(annotation: Any) -> Any | _Dropped:
    """Return a valid stand-in for a required value that is missing or invalid.

    The stand-in lets the rest of the table decode.  The value's path is
    already among the problems, so no rule reads the stand-in.  Returns
    _DROPPED when no simple value fits the type.
    """
    for candidate in ("", 0, 0.0, False):
        try:
            msgspec.convert(candidate, type=annotation)
        except msgspec.ValidationError:
            continue
        return candidate
    return _DROPPED


def _strip_optional(annotation: Any) -> Any:
    # TOML has no null, so ``X | None`` accepts exactly what X accepts.
    if typing.get_origin(annotation) not in (types.UnionType, typing.Union):
        return annotation

    members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    return members[0] if len(members) == 1 else annotation


def _is_struct(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, msgspec.Struct)


def _list_item(annotation: Any) -> Any | None:
    if typing.get_origin(annotation) is not list:
        return None
    return typing.get_args(annotation)[0]


def _unknown_key(key: str, value: Any, known: list[str], path: KeyPath) -> Problem:
    kind = "table" if isinstance(value, dict) else "key"
    matches = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if matches:
        message = f"unknown {kind}; did you mean '{matches[0]}'?"
    else:
        message = f"unknown {kind}; remove it or use one of: {', '.join(known)}"
    return Problem((*path, key), message, unknown_key=True)


def _missing_key(name: str, annotation: Any, path: KeyPath) -> Problem:
    expected = describe_type(annotation)
    return Problem(
        (*path, name),
        f"missing required key; add {name} = <{expected}> to {_table_label(path)}",
    )


def _wrong_value(annotation: Any, value: Any, path: KeyPath, *, secret: bool) -> Problem:
    expected = describe_type(annotation)
    actual = _describe_value(value, secret=secret)
    if _is_quoted_literal(annotation, value):
        fix = "remove the quotes around the value"
    else:
        fix = f"set {format_key_path(path)} to {expected}"
    return Problem(path, f"expected {expected}, got {actual}; {fix}")


def _is_quoted_literal(annotation: Any, value: Any) -> bool:
    """Return True when ``value`` is a string that would be valid without its quotes."""
    if not isinstance(value, str) or not _UNQUOTED_SCALAR.fullmatch(value):
        return False

    try:
        unquoted = tomllib.loads(f"value = {value}")["value"]
        msgspec.convert(unquoted, type=annotation)
    except (tomllib.TOMLDecodeError, msgspec.ValidationError):
        return False
    return not isinstance(unquoted, str)


def _table_label(path: KeyPath) -> str:
    if not path:
        return "the top level of the file"
    if isinstance(path[-1], int):
        return f"entry {path[-1]} of [[{format_key_path(path[:-1])}]]"
    return f"[{format_key_path(path)}]"


def describe_type(annotation: Any) -> str:
    """Describe the values ``annotation`` accepts, such as "an integer from 0 to 65535"."""
    annotation = _strip_optional(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        # type_info sorts the choices, but the declared order reads better.
        return "one of " + ", ".join(json.dumps(value) for value in typing.get_args(annotation))
    return _describe_info(schema.type_info(annotation))


def _describe_info(info: schema.Type) -> str:
    if isinstance(info, schema.BoolType):
        return "true or false"
    if isinstance(info, schema.IntType):
        return "an integer" + _describe_bounds(info)
    if isinstance(info, schema.FloatType):
        return "a number" + _describe_bounds(info)
    if isinstance(info, schema.StrType):
        return "a quoted string"
    if isinstance(info, schema.LiteralType):
        return "one of " + ", ".join(json.dumps(value) for value in info.values)
    if isinstance(info, schema.ListType):
        return "an array of " + _describe_items(info.item_type)
    if isinstance(info, schema.StructType):
        return "a table"
    return "a value of type " + type(info).__name__


def _describe_bounds(info: schema.IntType | schema.FloatType) -> str:
    if info.ge is not None and info.le is not None:
        return f" from {_format_number(info.ge)} to {_format_number(info.le)}"

    bounds = []
    for value, words in (
        (info.gt, "greater than"),
        (info.ge, "of at least"),
        (info.lt, "less than"),
        (info.le, "of at most"),
    ):
        if value is not None:
            bounds.append(f"{words} {_format_number(value)}")
    if len(bounds) == 2:
        # "greater than 0 and at most 10" reads better without the second "of".
        bounds[1] = bounds[1].removeprefix("of ")
    return " " + " and ".join(bounds) if bounds else ""


def _format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _describe_items(info: schema.Type) -> str:
    if isinstance(info, schema.IntType):
        return "integers" + _describe_bounds(info)
    if isinstance(info, schema.FloatType):
        return "numbers" + _describe_bounds(info)
    if isinstance(info, schema.StrType):
        return "quoted strings"
    if isinstance(info, schema.StructType):
        return "tables"
    return "values"


def _describe_value(value: Any, *, secret: bool) -> str:
    """Name the TOML type of ``value`` and, unless it is secret or a container, show it."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"

    kind = _toml_type_name(value)
    if secret:
        article = "an" if kind[0] in "aeiou" else "a"
        return f"{article} {kind}"

    literal = _show_scalar(value)
    if len(literal) > _MAX_SHOWN_CHARS:
        literal = literal[: _MAX_SHOWN_CHARS - 3] + "..."
    return f"{kind} {literal}"


def _toml_type_name(value: Any) -> str:
    # bool before int: bool is a subclass of int.  datetime before date: the
    # same reason.
    for python_type, name in (
        (bool, "boolean"),
        (int, "integer"),
        (float, "float"),
        (str, "string"),
        (datetime.datetime, "date-time"),
        (datetime.date, "date"),
        (datetime.time, "time"),
    ):
        if isinstance(value, python_type):
            return name
    return type(value).__name__


def _show_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return repr(value)
