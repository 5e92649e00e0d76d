"""Read any DMARC-related input: aggregate reports, failure reports, SMTP TLS reports.

The input may be raw XML or JSON, gzip or zip data, or an email carrying one
of those as an attachment, or an ARF failure report.  The kind is decided
from the content, never from a file name, because reporters name files
inconsistently.
"""

from __future__ import annotations

import logging
import re
from typing import Literal, final

import msgspec

from plaudit.messaging.deliverability.aggregate import (
    AggregateError,
    AggregateReport,
    AlignmentSummary,
    DmarcRecord,
    PolicyPublished,
    ReportMetadata,
    SourceSummary,
    parse_aggregate_xml,
)
from plaudit.messaging.deliverability.archive import (
    ArchiveError,
    ArchiveLimits,
    gunzip,
    is_gzip,
    is_zip,
    unzip_first,
)
from plaudit.messaging.deliverability.arf import feedback_report_part, parse_arf_message
from plaudit.messaging.deliverability.mime import (
    MAX_MESSAGE_BYTES,
    Message,
    header_text,
    load_message,
    part_bytes,
    walk,
)
from plaudit.messaging.deliverability.model import FeedbackReport
from plaudit.messaging.deliverability.tlsrpt import TlsReport, TlsReportError, parse_tls_report

log = logging.getLogger(__name__)

DmarcKind = Literal["dmarc_aggregate", "dmarc_failure", "smtp_tls", "invalid"]

_REPORT_SUFFIXES = (".xml", ".json")
_ATTACHMENT_TYPES = frozenset(
    {
        "application/zip",
        "application/x-zip",
        "application/x-zip-compressed",
        "application/gzip",
        "application/x-gzip",
        "application/xml",
        "text/xml",
        "application/tlsrpt+gzip",
        "application/tlsrpt+json",
        "application/json",
    }
)
_ATTACHMENT_NAME = re.compile(r"\.(xml|gz|zip|json)$", re.IGNORECASE)
_FAILURE_SUBJECT = re.compile(r"dmarc (failure|forensic)|forensic report", re.IGNORECASE)


@final
class DmarcReport(msgspec.Struct, frozen=True, kw_only=True):
    """The result of reading one DMARC-related input; exactly one payload is set."""

    kind: DmarcKind
    reason: str
    version: str | None = None
    metadata: ReportMetadata | None = None
    policy_published: PolicyPublished | None = None
    records: tuple[DmarcRecord, ...] = ()
    sources: tuple[SourceSummary, ...] = ()
    alignment: AlignmentSummary | None = None
    warnings: tuple[str, ...] = ()
    failure: FeedbackReport | None = None
    tls: TlsReport | None = None


def parse_dmarc(data: bytes, *, limits: ArchiveLimits | None = None) -> DmarcReport:
    """Read one DMARC-related input; never raises on malformed or hostile input."""
    limits = limits or ArchiveLimits()
    if len(data) > MAX_MESSAGE_BYTES:
        return _invalid(f"input is {len(data)} bytes, over the {MAX_MESSAGE_BYTES}-byte limit")

    try:
        return _parse(data, limits, in_email=False)
    except ArchiveError as error:
        return _invalid(str(error))
    except RecursionError:
        return _invalid("input is nested too deeply to read")
    except Exception as error:
        # As for bounces: a parser bug on one hostile report is logged, not raised.
        log.warning("dmarc.unreadable", extra={"error": repr(error)})
        return _invalid(f"input could not be read: {error.__class__.__name__}: {error}")


def _invalid(reason: str) -> DmarcReport:
    return DmarcReport(kind="invalid", reason=reason)


def _parse(data: bytes, limits: ArchiveLimits, *, in_email: bool) -> DmarcReport:
    if is_gzip(data):
        return _parse_document(gunzip(data, limits), "gzip data")
    if is_zip(data):
        return _parse_document(unzip_first(data, limits, suffixes=_REPORT_SUFFIXES), "zip member")

    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head in {b"<", b"{"}:
        return _parse_document(data, "input")
    if in_email:
        return _invalid("attachment is neither XML, JSON, gzip nor zip")
    if not data.strip():
        return _invalid("input is empty")
    return _from_email(load_message(data), limits)


def _parse_document(data: bytes, origin: str) -> DmarcReport:
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head == b"{":
        try:
            tls = parse_tls_report(data)
        except TlsReportError as error:
            return _invalid(f"{origin} is not an SMTP TLS report: {error}")
        return DmarcReport(kind="smtp_tls", reason="SMTP TLS report (RFC 8460)", tls=tls)

    if head != b"<":
        return _invalid(f"{origin} is neither XML nor JSON")

    try:
        report = parse_aggregate_xml(data)
    except AggregateError as error:
        return _invalid(f"{origin} is not a valid aggregate report: {error}")
    return _aggregate(report)


def _aggregate(report: AggregateReport) -> DmarcReport:
    return DmarcReport(
        kind="dmarc_aggregate",
        reason=f"aggregate report with {len(report.records)} records",
        version=report.version,
        metadata=report.metadata,
        policy_published=report.policy_published,
        records=report.records,
        sources=report.sources,
        alignment=report.alignment,
        warnings=report.warnings,
    )


def _from_email(message: Message, limits: ArchiveLimits) -> DmarcReport:
    if feedback_report_part(message) is not None:
        report = parse_arf_message(message)
        if report.kind == "dmarc_failure":
            return DmarcReport(kind="dmarc_failure", reason=report.reason, failure=report)
        return _invalid(f"feedback report of type {report.feedback_type!r}, not a DMARC report")

    problems: list[str] = []
    for attachment in _attachments(message):
        result = _parse(part_bytes(attachment), limits, in_email=True)
        if result.kind != "invalid":
            return result
        problems.append(result.reason)

    subject = header_text(message, "Subject") or ""
    if _FAILURE_SUBJECT.search(subject):
        failure = FeedbackReport(
            kind="dmarc_failure",
            reason="DMARC failure report without an ARF part",
            source="plain",
            feedback_type="auth-failure",
        )
        return DmarcReport(kind="dmarc_failure", reason=failure.reason, failure=failure)

    if problems:
        return _invalid("; ".join(problems))
    return _invalid("email carries no report attachment and no failure report")


def _attachments(message: Message) -> list[Message]:
    found: list[Message] = []
    for _depth, part in walk(message):
        if part.is_multipart():
            continue
        name = part.get_filename() or part.get_param("name") or ""
        if part.get_content_type() in _ATTACHMENT_TYPES or (
            isinstance(name, str) and _ATTACHMENT_NAME.search(name)
        ):
            found.append(part)
    return found
