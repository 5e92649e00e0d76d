"""SMTP TLS reports (RFC 8460): JSON, possibly gzip-compressed, or attached to an email."""

from __future__ import annotations

from typing import Any, final

import msgspec


@final
class TlsFailure(msgspec.Struct, frozen=True, kw_only=True):
    """One failure-details entry: why sessions to one MX failed, and how many."""

    result_type: str
    failed_sessions: int
    sending_mta_ip: str | None = None
    receiving_mx_hostname: str | None = None
    receiving_ip: str | None = None
    failure_reason_code: str | None = None


@final
class TlsPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Session counts for one policy (STS, TLSA or no policy) of one domain."""

    policy_type: str
    policy_domain: str
    mx_hosts: tuple[str, ...]
    successful_sessions: int
    failed_sessions: int
    failures: tuple[TlsFailure, ...]


@final
class TlsReport(msgspec.Struct, frozen=True, kw_only=True):
    """An SMTP TLS report from one sending organisation for one day."""

    organization_name: str | None
    report_id: str | None
    contact_info: str | None
    start: str | None
    end: str | None
    policies: tuple[TlsPolicy, ...]


class TlsReportError(ValueError):
    """The JSON is not an RFC 8460 report."""


def parse_tls_report(data: bytes) -> TlsReport:
    """Decode an RFC 8460 JSON report, raising TlsReportError naming the first problem."""
    try:
        document = msgspec.json.decode(data)
    except msgspec.DecodeError as error:
        raise TlsReportError(f"invalid JSON: {error}") from error

    if not isinstance(document, dict):
        raise TlsReportError("TLS report must be a JSON object")
    policies = document.get("policies")
    if not isinstance(policies, list):
        raise TlsReportError('TLS report has no "policies" list')

    date_range = _object(document.get("date-range"))
    return TlsReport(
        organization_name=_string(document.get("organization-name")),
        report_id=_string(document.get("report-id")),
        contact_info=_string(document.get("contact-info")),
        start=_string(date_range.get("start-datetime")),
        end=_string(date_range.get("end-datetime")),
        policies=tuple(_policy(_object(entry)) for entry in policies),
    )


def _policy(entry: dict[str, Any]) -> TlsPolicy:
    policy = _object(entry.get("policy"))
    summary = _object(entry.get("summary"))
    hosts = policy.get("mx-host")
    return TlsPolicy(
        policy_type=_string(policy.get("policy-type")) or "unknown",
        policy_domain=_string(policy.get("policy-domain")) or "",
        mx_hosts=tuple(str(host) for host in hosts) if isinstance(hosts, list) else (),
        successful_sessions=_count(summary.get("total-successful-session-count")),
        failed_sessions=_count(summary.get("total-failure-session-count")),
        failures=tuple(_failure(_object(item)) for item in _list(entry.get("failure-details"))),
    )


def _failure(item: dict[str, Any]) -> TlsFailure:
    return TlsFailure(
        result_type=_string(item.get("result-type")) or "unknown",
        failed_sessions=_count(item.get("failed-session-count")),
        sending_mta_ip=_string(item.get("sending-mta-ip")),
        receiving_mx_hostname=_string(item.get("receiving-mx-hostname")),
        receiving_ip=_string(item.get("receiving-ip")),
        failure_reason_code=_string(item.get("failure-reason-code")),
    )


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _string(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
