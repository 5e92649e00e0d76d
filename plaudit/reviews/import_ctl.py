"""``plaudit ctl import reviews FILE``: the operator's side of the import command."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any, Final

COMMANDS: Final = ("import",)
# Row errors and duplicates printed by the text renderer; the JSON output has all.
SHOWN_PROBLEMS: Final = 20


def add_parsers(commands: Any) -> None:
    """Add ``import`` to ``plaudit ctl``'s subparsers."""
    parser = commands.add_parser(
        "import", help="import a CSV or JSON file of reviews, or a CSV of couples, into the journal"
    )
    parser.add_argument("kind", choices=["reviews", "couples"], help="what the file contains")
    parser.add_argument("path", metavar="FILE", help="the CSV or JSON file; the daemon reads it")
    parser.add_argument(
        "--platform",
        help="the platform the reviews are from, such as hitched, with a profile in the "
        "configuration (reviews only)",
    )
    parser.add_argument(
        "--profile",
        help="put every row under this configured profile id or name (default: each row's "
        "profile or venue column)",
    )


def request_args(options: argparse.Namespace) -> dict[str, Any]:
    """Build the request's ``args``; the path is made absolute for the daemon."""
    if options.kind == "couples":
        return {"kind": "couples", "path": os.path.abspath(options.path)}
    args = {
        "kind": options.kind,
        "path": os.path.abspath(options.path),
        "platform": options.platform,
    }
    if options.profile is not None:
        args["profile"] = options.profile
    return args


def renderers() -> dict[str, Callable[[dict[str, Any]], str]]:
    return {"import": render_import}


def failure_message(result: Any) -> str | None:
    """Return the error line of an import that reported row errors, or None when it had none.

    ``plaudit ctl`` prints it and exits 1, so a script notices rows that were
    not stored.
    """
    errors = result.get("errors") if isinstance(result, dict) else None
    if not isinstance(errors, list) or not errors:
        return None

    if result.get("kind") == "couples":
        return (
            f"{len(errors)} of {result.get('rows')} rows are invalid, so no couple was stored; "
            "correct them and import the file again"
        )
    return (
        f"{len(errors)} of {result.get('rows')} rows were not stored; correct them and import "
        "the file again (reviews already stored are not stored twice)"
    )


def render_import(result: dict[str, Any]) -> str:
    """Render an import report as a few lines of text."""
    if result.get("kind") == "couples":
        return render_couples_import(result)
    duplicates = result.get("duplicates") or []
    errors = result.get("errors") or []
    lines = [
        f"imported {result.get('file')} ({result.get('format')}, {result.get('encoding')})",
        f"rows {result.get('rows')}, accepted {result.get('accepted')}, "
        f"duplicates {len(duplicates)}, errors {len(errors)}",
        f"created {result.get('created')}, updated {result.get('updated')}, "
        f"unchanged {result.get('unchanged')}",
    ]
    for error in errors[:SHOWN_PROBLEMS]:
        lines.append(f"  error {error.get('location')}: {error.get('message')}")
    for duplicate in duplicates[:SHOWN_PROBLEMS]:
        lines.append(f"  duplicate {duplicate.get('location')} of {duplicate.get('first')}")
    if len(errors) > SHOWN_PROBLEMS or len(duplicates) > SHOWN_PROBLEMS:
        lines.append("  (more in --json output)")
    return "\n".join(lines) + "\n"


def render_couples_import(result: dict[str, Any]) -> str:
    """Render a couples import: counts, then each invalid cell with its row number."""
    errors = result.get("errors") or []
    stored = "nothing stored; correct the file and import it again"
    if not errors:
        stored = (
            f"created {result.get('created')}, updated {result.get('updated')}, "
            f"first steps scheduled {result.get('scheduled')}"
        )
    lines = [f"couples from {result.get('file')}: rows {result.get('rows')}, {stored}"]
    for error in errors[:SHOWN_PROBLEMS]:
        lines.append(
            f"  row {error.get('row')} column {error.get('column')!r} "
            f"value {error.get('value')!r}: {error.get('message')}"
        )
    if len(errors) > SHOWN_PROBLEMS:
        lines.append("  (more in --json output)")
    return "\n".join(lines) + "\n"
