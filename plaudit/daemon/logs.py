"""Log set-up: one line per event, a stable event name and its fields.

Code logs ``log.info("job.failed", extra={"job": 7, ...})``; the formatters
here print the event name followed by the fields, as ``key=value`` text for
journald readers or as one JSON object per line for log shippers.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

# Attributes every LogRecord has; anything else came from ``extra=``.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in record.__dict__.items() if key not in _STANDARD}


def _quote(value: object) -> str:
    text = str(value)
    if not text or any(char in text for char in ' ="\n'):
        return json.dumps(text)
    return text


class TextFormatter(logging.Formatter):
    """``2026-01-31T09:00:00Z INFO job.failed job=7 error="timed out"``."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        parts = [stamp, record.levelname, record.getMessage()]
        parts += [f"{key}={_quote(value)}" for key, value in fields_of(record).items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event and the fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        entry.update(fields_of(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str, log_format: str) -> None:
    """Send Plaudit's logs to stderr, where systemd's journal collects them."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request at INFO; the platform actors log what matters.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("hypercorn").setLevel(logging.WARNING)
