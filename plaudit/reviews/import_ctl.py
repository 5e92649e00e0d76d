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
        "import", help="import a CSV or JSON file of reviews into the journal"
    )
    parser.add_argument("kind", choices=["reviews"], help="what the file contains")
    parser.add_argument("path", metavar="FILE", help="the CSV or JSON file; the daemon reads it")
    parser.add_argument(
        "--platform", required=True, help="the platform the reviews are from, such as hitched"
    )
    parser.add_argument(
        "--profile", help="put every row under this profile (default: each row's profile column)"
    )


def request_args(options: argparse.Namespace) -> dict[str, Any]:
    """Build the request's ``args``; the path is made absolute for the daemon."""
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


def render_import(result: dict[str, Any]) -> str:
    """Render an import report as a few lines of text."""
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
