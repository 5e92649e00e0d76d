"""DMARC aggregate reports (RFC 7489 appendix C XML, and the DMARCbis 2.0 namespace).

The XML is parsed with defusedxml and any DTD is rejected, so entity
expansion ("billion laughs") and external entities never reach the parser.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import final
from xml.etree import ElementTree

import defusedxml
import defusedxml.ElementTree as SafeElementTree
import msgspec

Element = ElementTree.Element


class AggregateError(ValueError):
    """The XML is unsafe, malformed, or not a DMARC aggregate report."""


@final
class ReportMetadata(msgspec.Struct, frozen=True, kw_only=True):
    """The report's sender and covered period (Unix seconds and ISO 8601 UTC)."""

    org_name: str | None
    email: str | None
    report_id: str | None
    begin: int | None
    end: int | None
    begin_utc: str | None
    end_utc: str | None


@final
class PolicyPublished(msgspec.Struct, frozen=True, kw_only=True):
    """The DMARC record of the domain as the reporter saw it."""

    domain: str | None
    adkim: str | None
    aspf: str | None
    p: str | None
    sp: str | None
    pct: str | None
    fo: str | None


@final
class AuthResult(msgspec.Struct, frozen=True, kw_only=True):
    """One raw DKIM or SPF result, before DMARC alignment."""

    method: str
    domain: str | None
    result: str | None
    selector: str | None = None
    scope: str | None = None


@final
class DmarcRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Messages from one source IP with one outcome, and whether they passed DMARC."""

    source_ip: str
    count: int
    disposition: str | None
    dkim: str | None
    spf: str | None
    header_from: str | None
    envelope_from: str | None
    envelope_to: str | None
    auth_results: tuple[AuthResult, ...]
    reasons: tuple[str, ...]
    dkim_aligned: bool
    spf_aligned: bool
    # DMARC passes when DKIM or SPF passes and is aligned with the header From.
    dmarc_pass: bool


@final
class SourceSummary(msgspec.Struct, frozen=True, kw_only=True):
    """Message counts per source IP over the whole report."""

    source_ip: str
    messages: int
    passed: int
    failed: int


@final
class AlignmentSummary(msgspec.Struct, frozen=True, kw_only=True):
    """Message counts by which aligned mechanisms passed."""

    dkim_and_spf: int = 0
    dkim_only: int = 0
    spf_only: int = 0
    neither: int = 0


@final
class AggregateReport(msgspec.Struct, frozen=True, kw_only=True):
    """A parsed aggregate report."""

    version: str | None
    metadata: ReportMetadata
    policy_published: PolicyPublished
    records: tuple[DmarcRecord, ...]
    sources: tuple[SourceSummary, ...]
    alignment: AlignmentSummary
    warnings: tuple[str, ...]


def parse_aggregate_xml(data: bytes) -> AggregateReport:
    """Parse aggregate-report XML, raising AggregateError with the reason it is rejected."""
    try:
        root = SafeElementTree.fromstring(data, forbid_dtd=True)
    except defusedxml.DTDForbidden as error:
        raise AggregateError("XML declares a DTD, which reports never need; rejected") from error
    except defusedxml.EntitiesForbidden as error:
        raise AggregateError("XML declares entities; rejected") from error
    except defusedxml.ExternalReferenceForbidden as error:
        raise AggregateError("XML references an external resource; rejected") from error
    except ElementTree.ParseError as error:
        raise AggregateError(f"XML is not well-formed: {error}") from error

    if _local(root.tag) != "feedback":
        raise AggregateError(f"root element is <{_local(root.tag)}>, expected <feedback>")

    warnings: list[str] = []
    records = [
        record
        for index, element in enumerate(_children(root, "record"))
        if (record := _record(element, index, warnings)) is not None
    ]
    return AggregateReport(
        version=_text(root, "version"),
        metadata=_metadata(_child(root, "report_metadata")),
        policy_published=_policy(_child(root, "policy_published")),
        records=tuple(records),
        sources=_summaries(records),
        alignment=_alignment(records),
        warnings=tuple(warnings),
    )


def _local(tag: object) -> str:
    return str(tag).rsplit("}", 1)[-1]


def _children(element: Element | None, name: str) -> list[Element]:
    if element is None:
        return []
    return [child for child in element if _local(child.tag) == name]


def _child(element: Element | None, name: str) -> Element | None:
    found = _children(element, name)
    return found[0] if found else None


def _text(element: Element | None, *path: str) -> str | None:
    for name in path:
        element = _child(element, name)
    if element is None or element.text is None:
        return None
    return element.text.strip() or None


def _lower(element: Element | None, *path: str) -> str | None:
    value = _text(element, *path)
    return value.lower() if value else None


def _epoch(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _iso(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return None


def _metadata(element: Element | None) -> ReportMetadata:
    begin = _epoch(_text(element, "date_range", "begin"))
    end = _epoch(_text(element, "date_range", "end"))
    return ReportMetadata(
        org_name=_text(element, "org_name"),
        email=_text(element, "email"),
        report_id=_text(element, "report_id"),
        begin=begin,
        end=end,
        begin_utc=_iso(begin),
        end_utc=_iso(end),
    )


def _policy(element: Element | None) -> PolicyPublished:
    return PolicyPublished(
        domain=_lower(element, "domain"),
        adkim=_lower(element, "adkim"),
        aspf=_lower(element, "aspf"),
        p=_lower(element, "p"),
        sp=_lower(element, "sp"),
        pct=_text(element, "pct"),
        fo=_text(element, "fo"),
    )


def _record(element: Element, index: int, warnings: list[str]) -> DmarcRecord | None:
    row = _child(element, "row")
    source_ip = _text(row, "source_ip")
    if source_ip is None:
        warnings.append(f"record {index} has no source_ip; skipped")
        return None

    count_text = _text(row, "count")
    count = _epoch(count_text)
    if count is None or count < 0:
        warnings.append(f"record {index} has invalid count {count_text!r}; counted as 0")
        count = 0

    evaluated = _child(row, "policy_evaluated")
    header_from = _lower(element, "identifiers", "header_from")
    results = _auth_results(_child(element, "auth_results"))
    dkim = _lower(evaluated, "dkim")
    spf = _lower(evaluated, "spf")
    dkim_aligned = dkim == "pass" if dkim else _any_aligned(results, "dkim", header_from)
    spf_aligned = spf == "pass" if spf else _any_aligned(results, "spf", header_from)
    reasons = tuple(
        " ".join(filter(None, (_lower(reason, "type"), _text(reason, "comment"))))
        for reason in _children(evaluated, "reason")
    )
    return DmarcRecord(
        source_ip=source_ip,
        count=count,
        disposition=_lower(evaluated, "disposition"),
        dkim=dkim,
        spf=spf,
        header_from=header_from,
        envelope_from=_lower(element, "identifiers", "envelope_from"),
        envelope_to=_lower(element, "identifiers", "envelope_to"),
        auth_results=results,
        reasons=tuple(reason for reason in reasons if reason),
        dkim_aligned=dkim_aligned,
        spf_aligned=spf_aligned,
        dmarc_pass=dkim_aligned or spf_aligned,
    )


def _auth_results(element: Element | None) -> tuple[AuthResult, ...]:
    results: list[AuthResult] = []
    for child in element if element is not None else []:
        method = _local(child.tag)
        if method not in {"dkim", "spf"}:
            continue
        results.append(
            AuthResult(
                method=method,
                domain=_lower(child, "domain"),
                result=_lower(child, "result"),
                selector=_text(child, "selector"),
                scope=_lower(child, "scope"),
            )
        )
    return tuple(results)


def _any_aligned(results: tuple[AuthResult, ...], method: str, header_from: str | None) -> bool:
    return any(
        result.method == method
        and result.result == "pass"
        and _relaxed_aligned(result.domain, header_from)
        for result in results
    )


def _relaxed_aligned(domain: str | None, header_from: str | None) -> bool:
    """Compare organizational domains, approximated as the last two labels.

    NOTE: without the Public Suffix List this over-aligns under multi-label
    suffixes such as co.uk.  It is used only when a report omits
    policy_evaluated, which RFC 7489 makes mandatory.
    """
    if not domain or not header_from:
        return False
    return domain.split(".")[-2:] == header_from.split(".")[-2:]


def _alignment(records: list[DmarcRecord]) -> AlignmentSummary:
    counts = {"dkim_and_spf": 0, "dkim_only": 0, "spf_only": 0, "neither": 0}
    for record in records:
        if record.dkim_aligned and record.spf_aligned:
            counts["dkim_and_spf"] += record.count
        elif record.dkim_aligned:
            counts["dkim_only"] += record.count
        elif record.spf_aligned:
            counts["spf_only"] += record.count
        else:
            counts["neither"] += record.count
    return AlignmentSummary(**counts)


def _summaries(records: list[DmarcRecord]) -> tuple[SourceSummary, ...]:
    totals: dict[str, list[int]] = {}
    for record in records:
        entry = totals.setdefault(record.source_ip, [0, 0])
        entry[0] += record.count
        if record.dmarc_pass:
            entry[1] += record.count

    summaries = [
        SourceSummary(source_ip=ip, messages=total, passed=passed, failed=total - passed)
        for ip, (total, passed) in totals.items()
    ]
    summaries.sort(key=lambda summary: (-summary.messages, summary.source_ip))
    return tuple(summaries)
