"""``plaudit ctl review reply``: the operator's side.

``review reply REVIEW --text TEXT`` (or ``--file FILE``) queues the vendor's
reply; ``review reply --status REVIEW`` shows the stored reply and the reply
jobs.  The file is read here, so the daemon never opens operator paths.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Final

from plaudit.errors import ControlError

# Above every platform's reply limit (Facebook's 8000 characters are at most
# 32,000 bytes of UTF-8), so the daemon's check names the platform's own limit.
MAX_FILE_BYTES: Final = 64 * 1024


def add_reply_parser(actions: Any) -> None:
    """Add ``reply`` to the ``review`` subcommands."""
    reply = actions.add_parser(
        "reply", help="post the vendor's reply to a review, or show the reply's state"
    )
    reply.add_argument("review", metavar="REVIEW", help="PLATFORM:ID, or an id on one platform")
    source = reply.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="the reply text")
    source.add_argument("--file", type=Path, help="a UTF-8 file that contains the reply text")
    source.add_argument(
        "--status", action="store_true", help="show the stored reply and the reply jobs"
    )


def request_args(options: argparse.Namespace) -> dict[str, Any]:
    """Build the request's ``args``; raises ControlError when the file cannot be read."""
    args: dict[str, Any] = {"subcommand": "reply", "review": options.review}
    if options.status:
        return args

    args["text"] = options.text if options.text is not None else read_reply_file(options.file)
    return args


def read_reply_file(path: Path) -> str:
    try:
        data = path.read_bytes()[: MAX_FILE_BYTES + 1]
    except OSError as error:
        raise ControlError(
            f"failed to read reply file {str(path)!r}: {error.strerror}; check the path"
        ) from error

    if len(data) > MAX_FILE_BYTES:
        raise ControlError(
            f"reply file {str(path)!r} is over {MAX_FILE_BYTES} bytes, more than any platform "
            "accepts; shorten the reply"
        )

    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ControlError(
            f"reply file {str(path)!r} is not valid UTF-8 at byte {error.start}; save it as UTF-8"
        ) from error


def render_reply(result: dict[str, Any]) -> str:
    """Render a queued reply, a dashboard link or a reply status as text."""
    name = _plain(f"{result.get('platform')}:{result.get('review')}")
    state = result.get("state")
    if state == "dashboard":
        return _plain(result.get("message")) + "\n"

    if state == "queued":
        return f"reply to {name} queued as job {result.get('job')}\n"

    if state == "already_queued":
        return f"the same reply to {name} is already job {result.get('job')}\n"

    lines = [f"review {name}"]
    if result.get("deleted_at"):
        lines.append(f"  deleted on the platform at {result.get('deleted_at')}")
    reply = result.get("reply_text")
    if reply is None:
        lines.append("  no reply stored")
    else:
        lines.append(f"  reply of {result.get('reply_updated_at')}: {_plain(reply)}")
    for job in result.get("jobs") or []:
        error = f"  {_plain(job.get('last_error'))}" if job.get("last_error") else ""
        lines.append(
            f"  job {job.get('job')}  {job.get('state')}  attempts {job.get('attempts')}{error}"
        )
    return "\n".join(lines) + "\n"


def _plain(value: Any) -> str:
    # Review ids and texts come from platforms: keep escape sequences off the terminal.
    text = str(value)
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")
