"""``plaudit report``: read a journal file and print or write the report.

The journal is opened read-only, so the report runs beside a live daemon
and never changes what it reads.  The configuration is optional: it names
the vendor, the review links and the campaigns' links.  Without ``--config``
the report reads ``plaudit.toml`` in the state directory when it is there,
as ``plaudit demo`` leaves it.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path
from typing import TextIO

import msgspec

from plaudit.config import load_config, resolve_paths
from plaudit.config.model import Config
from plaudit.errors import ConfigError, PlauditError
from plaudit.matching.service import report_context
from plaudit.reporting.figures import ReportContext, build_report
from plaudit.reporting.html import render_html
from plaudit.reporting.model import Report
from plaudit.reporting.render import render_text, to_json, write_csv

DEFAULT_STATE_DIR = "/var/lib/plaudit"
DEMO_CONFIG_NAME = "plaudit.toml"
DEFAULT_JOURNAL_NAME = "journal.sqlite3"


class ReportError(PlauditError):
    """The report could not read its journal or write its output."""


def report_main(
    *,
    state_dir: str | None,
    config_path: str | None,
    as_json: bool,
    csv_dir: str | None,
    html_file: str | None,
    out: TextIO = sys.stdout,
) -> int:
    """Build the report, print it as text or JSON, and write the requested files."""
    config = _config(state_dir, config_path)
    journal_path = _journal_path(state_dir, config)
    context = ReportContext()
    if config is not None:
        conversion_days = {
            campaign.name: campaign.personalisation.conversion_days for campaign in config.campaigns
        }
        context = msgspec.structs.replace(report_context(config), conversion_days=conversion_days)
    report = read_report(journal_path, context=context, now=time.time())

    if csv_dir is not None:
        try:
            write_csv(report, Path(csv_dir))
        except OSError as error:
            raise ReportError(f"cannot write CSV files to {csv_dir}: {error.strerror}") from error
    if html_file is not None:
        try:
            Path(html_file).write_text(render_html(report), encoding="utf-8")
        except OSError as error:
            raise ReportError(
                f"cannot write the HTML report {html_file}: {error.strerror}"
            ) from error
    out.write(to_json(report) + "\n" if as_json else render_text(report))
    return 0


def read_report(journal_path: Path, *, context: ReportContext, now: float) -> Report:
    """Open the journal read-only and build its report."""
    if not journal_path.is_file():
        raise ReportError(
            f"no journal at {journal_path}; pass the daemon's --state-dir or --config"
        )
    uri = journal_path.absolute().as_uri() + "?mode=ro"
    try:
        connection = sqlite3.connect(uri, uri=True)
        try:
            return build_report(connection, journal=str(journal_path), now=now, context=context)
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        raise ReportError(
            f"cannot read the journal {journal_path}: {error}; check that it is a Plaudit "
            "journal and that this user may read it"
        ) from error


def _config(state_dir: str | None, config_path: str | None) -> Config | None:
    if config_path is not None:
        return load_config(config_path)
    if state_dir is None:
        return None
    beside = Path(state_dir) / DEMO_CONFIG_NAME
    if not beside.is_file():
        return None
    try:
        return load_config(beside)
    except ConfigError:
        # Optional context only: the journal alone still gives every count.
        return None


def _journal_path(state_dir: str | None, config: Config | None) -> Path:
    if config is not None:
        return resolve_paths(config, state_dir=state_dir).journal_path
    return Path(state_dir or DEFAULT_STATE_DIR) / DEFAULT_JOURNAL_NAME
