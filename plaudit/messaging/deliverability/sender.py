"""``plaudit check-sender``: is a sending domain ready for DMARC-aligned mail?

Reads three kinds of TXT record through one resolver the operator names:

- SPF (RFC 7208) at the domain: its mechanisms, the ``all`` qualifier and the
  DNS lookups an evaluation costs, which must stay at 10 or fewer;
- DKIM (RFC 6376) at ``SELECTOR._domainkey.DOMAIN`` for each selector: the
  key type and the public key's length in bits;
- DMARC (RFC 7489) at ``_dmarc.DOMAIN``: p, sp, pct, rua, adkim and aspf.
  Without a record there, the organizational domain's record applies, with
  its ``sp`` policy when it has one (RFC 7489 section 6.6.3).

The resolver is never a default public one: the caller passes an address,
or requests the system configuration (``/etc/resolv.conf``) explicitly.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Callable
from typing import Final, TextIO, final

import dns.exception
import dns.name
import dns.resolver
import msgspec
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from plaudit.errors import PlauditError
from plaudit.messaging.deliverability.domains import organizational_domain

# RFC 7208 section 4.6.4: an SPF evaluation may cause at most 10 DNS lookups.
MAX_SPF_LOOKUPS: Final = 10
# Keys under 1024 bits are rejected by verifiers (RFC 8301); 2048 is the usual advice.
MIN_DKIM_BITS: Final = 1024
# Seconds one query may take in total, retries included.
QUERY_TIMEOUT: Final = 5.0
# Exit status of check-sender when the records were read but the domain is not ready.
NOT_READY: Final = 3
_LOOKUP_MECHANISMS = frozenset({"include", "a", "mx", "ptr", "exists"})

TxtLookup = Callable[[str], list[str]]


class SenderCheckError(PlauditError):
    """The sender check could not run: an invalid domain or resolver, or DNS failed."""


@final
class SpfReport(msgspec.Struct, frozen=True, kw_only=True):
    """The domain's SPF record and what an evaluation of it costs."""

    record: str | None
    mechanisms: tuple[str, ...] = ()
    # The qualifier of the final "all" ("-", "~", "?", "+"), or None without one.
    all_qualifier: str | None = None
    redirect: str | None = None
    # DNS lookups of the whole evaluation, includes and redirects followed.
    # Includes are no longer followed once the count passes 10, so a count
    # over 10 is a lower bound.
    lookups: int = 0
    problems: tuple[str, ...] = ()


@final
class DkimReport(msgspec.Struct, frozen=True, kw_only=True):
    """One DKIM selector's key record."""

    selector: str
    record: str | None
    key_type: str | None = None
    key_bits: int | None = None
    problems: tuple[str, ...] = ()


@final
class DmarcReport(msgspec.Struct, frozen=True, kw_only=True):
    """The domain's DMARC policy."""

    record: str | None
    # The domain whose _dmarc record was read: the checked domain, or its
    # organizational domain when the checked domain publishes none.
    record_domain: str | None = None
    policy: str | None = None
    subdomain_policy: str | None = None
    # The policy receivers apply to the checked domain: sp (else p) of an
    # organizational domain's record, p of the domain's own record.
    applied_policy: str | None = None
    pct: int = 100
    rua: tuple[str, ...] = ()
    adkim: str = "r"
    aspf: str = "r"
    problems: tuple[str, ...] = ()


@final
class SenderReport(msgspec.Struct, frozen=True, kw_only=True):
    """Everything ``check-sender`` found, and whether aligned mail can pass DMARC."""

    domain: str
    resolver: str
    spf: SpfReport
    dkim: tuple[DkimReport, ...]
    dmarc: DmarcReport
    spf_ready: bool
    dkim_ready: bool
    # DMARC passes when SPF or DKIM passes aligned, so one of them is enough.
    ready: bool
    problems: tuple[str, ...]


def parse_resolver(text: str) -> tuple[str, int]:
    """Split "IP", "IP:PORT", "[IPv6]:PORT" or a bare IPv6 address into address and port."""
    value = text.strip()
    host, port_text = value, "53"
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port_text = rest.removeprefix(":") or "53"
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    try:
        address = ipaddress.ip_address(host)
        port = int(port_text)
    except ValueError:
        raise SenderCheckError(
            f"resolver {text!r} is invalid: give an IP address, optionally with a port, "
            "such as 127.0.0.1:5353 or [::1]:5353"
        ) from None
    if not 1 <= port <= 65535:
        raise SenderCheckError(f"resolver port {port} is invalid: use 1 to 65535")
    return str(address), port


def dns_lookup(resolver: dns.resolver.Resolver) -> TxtLookup:
    """Return a TXT lookup on ``resolver``: the record strings, or [] when there are none."""

    def lookup(name: str) -> list[str]:
        try:
            answer = resolver.resolve(name, "TXT", search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as error:
            nameservers = ", ".join(str(server) for server in resolver.nameservers)
            raise SenderCheckError(
                f"TXT lookup of {name} through {nameservers} failed: {error}; "
                "check that the resolver is reachable and answers for the domain"
            ) from error
        return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer]

    return lookup


def make_resolver(address: str | None) -> dns.resolver.Resolver:
    """Build a resolver for "IP[:PORT]", or from the system configuration when None."""
    if address is None:
        resolver = dns.resolver.Resolver(configure=True)
    else:
        host, port = parse_resolver(address)
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [host]
        resolver.port = port
    resolver.lifetime = QUERY_TIMEOUT
    return resolver


# Selectors that Google Workspace, Microsoft 365, SendGrid, Mailchimp, Mailgun,
# Resend and common self-hosted set-ups publish by default.
COMMON_SELECTORS: Final = (
    "google",
    "selector1",
    "selector2",
    "s1",
    "s2",
    "k1",
    "mx",
    "smtp",
    "resend",
    "default",
    "dkim",
    "mail",
)


def check_sender(
    domain: str, selectors: list[str], lookup: TxtLookup, *, resolver: str
) -> SenderReport:
    """Check the SPF, DKIM and DMARC records of ``domain``."""
    name = normalize_domain(domain)
    spf = check_spf(name, lookup)
    if selectors:
        dkim = tuple(check_dkim(name, selector, lookup) for selector in selectors)
    else:
        # DKIM has no discovery: try the selectors common providers publish
        # and keep the ones that exist.
        probed = (check_dkim(name, selector, lookup) for selector in COMMON_SELECTORS)
        dkim = tuple(report for report in probed if report.record is not None)
    dmarc = check_dmarc(name, lookup)

    spf_ready = spf.record is not None and not spf.problems
    dkim_ready = any(report.key_bits is not None and not report.problems for report in dkim)
    problems = [*spf.problems, *(p for report in dkim for p in report.problems), *dmarc.problems]
    if not selectors and not dkim:
        problems.append(
            "no DKIM key at the common selectors (" + ", ".join(COMMON_SELECTORS) + "): "
            "pass --selector for each selector the mail uses"
        )
    ready = dmarc.record is not None and not dmarc.problems and (spf_ready or dkim_ready)
    return SenderReport(
        domain=name,
        resolver=resolver,
        spf=spf,
        dkim=dkim,
        dmarc=dmarc,
        spf_ready=spf_ready,
        dkim_ready=dkim_ready,
        ready=ready,
        problems=tuple(problems),
    )


def normalize_domain(domain: str) -> str:
    """Return the domain lower-cased without a final dot; raise SenderCheckError when invalid."""
    try:
        name = dns.name.from_text(domain.strip())
    except dns.exception.DNSException as error:
        raise SenderCheckError(f"domain {domain!r} is invalid: {error}") from error
    text = name.to_text(omit_final_dot=True).lower()
    if not text or "." not in text:
        raise SenderCheckError(
            f"domain {domain!r} is invalid: give the sending domain, such as example.com"
        )
    return text


def _records(lookup: TxtLookup, name: str, prefix: str) -> list[str]:
    return [
        record
        for record in lookup(name)
        if record.lower() == prefix
        or record.lower().startswith(prefix + " ")
        or record.lower().startswith(prefix + ";")
    ]


def check_spf(domain: str, lookup: TxtLookup) -> SpfReport:
    """Read the domain's SPF record and count the lookups of its evaluation."""
    records = _records(lookup, domain, "v=spf1")
    if not records:
        return SpfReport(record=None, problems=(f"no SPF record (v=spf1) at {domain}",))
    if len(records) > 1:
        return SpfReport(
            record=records[0],
            problems=(f"{len(records)} SPF records at {domain}: publish exactly one",),
        )

    record = records[0]
    mechanisms, all_qualifier, redirect = parse_spf(record)
    problems: list[str] = []
    lookups = count_lookups(domain, lookup, seen=set(), problems=problems)
    if lookups > MAX_SPF_LOOKUPS:
        problems.append(
            f"SPF needs {lookups} DNS lookups, over the limit of {MAX_SPF_LOOKUPS}: "
            "flatten includes or remove mechanisms"
        )
    if all_qualifier is None and redirect is None:
        problems.append("SPF has no 'all' mechanism: end it with -all or ~all")
    elif all_qualifier in ("+", "?"):
        problems.append(
            f"SPF ends with {all_qualifier}all, which lets any host pass: use -all or ~all"
        )
    return SpfReport(
        record=record,
        mechanisms=tuple(mechanisms),
        all_qualifier=all_qualifier,
        redirect=redirect,
        lookups=lookups,
        problems=tuple(problems),
    )


def parse_spf(record: str) -> tuple[list[str], str | None, str | None]:
    """Split an SPF record into its mechanisms, the qualifier of "all" and the redirect target."""
    mechanisms: list[str] = []
    all_qualifier = None
    redirect = None
    for term in record.split()[1:]:
        lowered = term.lower()
        if lowered.startswith("redirect="):
            redirect = term.partition("=")[2]
            continue
        if "=" in lowered.partition(":")[0]:
            # Another modifier (exp=...); it causes no lookup during evaluation.
            continue
        mechanisms.append(term)
        qualifier = term[0] if term[0] in "+-~?" else "+"
        if lowered.lstrip("+-~?") == "all":
            all_qualifier = qualifier
    return mechanisms, all_qualifier, redirect


def count_lookups(domain: str, lookup: TxtLookup, *, seen: set[str], problems: list[str]) -> int:
    """Count the DNS lookups of evaluating ``domain``'s SPF record, nested records included."""
    if domain in seen:
        problems.append(f"SPF include loop through {domain}")
        return 0
    seen.add(domain)
    records = _records(lookup, domain, "v=spf1")
    if len(records) != 1:
        # The top domain has exactly one record here, so this is a nested target.
        problems.append(f"SPF include target {domain} has {len(records)} SPF records, not 1")
        return 0

    mechanisms, _all, redirect = parse_spf(records[0])
    count = 0
    for mechanism in mechanisms:
        name, _, target = mechanism.lstrip("+-~?").partition(":")
        name = name.partition("/")[0].lower()
        if name not in _LOOKUP_MECHANISMS:
            continue
        count += 1
        if name == "include" and target and count <= MAX_SPF_LOOKUPS:
            count += count_lookups(target.lower(), lookup, seen=seen, problems=problems)
    if redirect:
        count += 1 + count_lookups(redirect.lower(), lookup, seen=seen, problems=problems)
    return count


def parse_tags(record: str) -> dict[str, str]:
    """Split a DKIM or DMARC record into its tag=value pairs (tags lower-cased)."""
    tags = {}
    for item in record.split(";"):
        tag, separator, value = item.partition("=")
        if separator:
            tags[tag.strip().lower()] = "".join(value.split())
    return tags


def check_dkim(domain: str, selector: str, lookup: TxtLookup) -> DkimReport:
    """Read one selector's key record and measure its key."""
    name = f"{selector}._domainkey.{domain}"
    records = [record for record in lookup(name) if "p=" in record]
    if not records:
        return DkimReport(
            selector=selector, record=None, problems=(f"no DKIM key record at {name}",)
        )

    record = records[0]
    tags = parse_tags(record)
    key_type = tags.get("k", "rsa").lower()
    key = tags.get("p", "")
    if not key:
        return DkimReport(
            selector=selector,
            record=record,
            key_type=key_type,
            problems=(f"DKIM key at {name} is revoked (empty p=): publish a new key",),
        )

    bits, problem = key_length(key, key_type)
    problems = () if problem is None else (f"DKIM key at {name}: {problem}",)
    if bits is not None and key_type == "rsa" and bits < MIN_DKIM_BITS:
        problems = (f"DKIM key at {name} has {bits} bits: use 2048-bit RSA",)
    return DkimReport(
        selector=selector, record=record, key_type=key_type, key_bits=bits, problems=problems
    )


def key_length(encoded: str, key_type: str) -> tuple[int | None, str | None]:
    """Return the key's length in bits, or None with the reason it cannot be read."""
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None, "p= is not valid base64"

    if key_type == "ed25519":
        # RFC 8463 publishes the bare 32-byte key, not a DER structure.
        return (256, None) if len(data) == 32 else (None, "ed25519 key is not 32 bytes")
    try:
        public = load_der_public_key(data)
    except (ValueError, TypeError):
        return None, "p= is not a DER public key"
    if isinstance(public, rsa.RSAPublicKey):
        return public.key_size, None
    if isinstance(public, ed25519.Ed25519PublicKey):
        return 256, None
    return None, f"key of type {type(public).__name__} is not usable for DKIM"


def check_dmarc(domain: str, lookup: TxtLookup) -> DmarcReport:
    """Read the DMARC record that applies to ``domain``, as receivers discover it.

    Receivers read ``_dmarc.DOMAIN`` and, only when it contains no DMARC record
    at all, the organizational domain's record, whose ``sp`` (else ``p``)
    then applies (RFC 7489 section 6.6.3).
    """
    name = f"_dmarc.{domain}"
    records = _records(lookup, name, "v=dmarc1")
    organizational = organizational_domain(domain)
    if not records and organizational != domain:
        inherited = _read_dmarc(organizational, lookup)
        if inherited.record is not None:
            return msgspec.structs.replace(
                inherited, applied_policy=inherited.subdomain_policy or inherited.policy
            )
        return DmarcReport(
            record=None,
            problems=(
                f"no DMARC record (v=DMARC1) at {name} or at its organizational domain's "
                f"_dmarc.{organizational}: publish at least p=none with rua= at either",
            ),
        )
    return _read_dmarc(domain, lookup)


def _read_dmarc(domain: str, lookup: TxtLookup) -> DmarcReport:
    name = f"_dmarc.{domain}"
    records = _records(lookup, name, "v=dmarc1")
    if not records:
        return DmarcReport(
            record=None,
            problems=(f"no DMARC record (v=DMARC1) at {name}: publish at least p=none with rua=",),
        )
    if len(records) > 1:
        # Receivers then apply no DMARC policy at all, and look no further.
        return DmarcReport(
            record=records[0],
            record_domain=domain,
            problems=(f"{len(records)} DMARC records at {name}: publish exactly one",),
        )

    record = records[0]
    tags = parse_tags(record)
    problems = []
    policy = tags.get("p", "").lower() or None
    if policy not in ("none", "quarantine", "reject"):
        problems.append(f"DMARC p={policy!r} at {name} is invalid: use none, quarantine or reject")
    try:
        pct = int(tags.get("pct", "100"))
    except ValueError:
        pct = 100
        problems.append(f"DMARC pct={tags['pct']!r} at {name} is not a number from 0 to 100")
    rua = tuple(uri for uri in tags.get("rua", "").split(",") if uri)
    if not rua:
        problems.append(f"DMARC at {name} has no rua=: aggregate reports go nowhere")
    return DmarcReport(
        record=record,
        record_domain=domain,
        policy=policy,
        applied_policy=policy,
        subdomain_policy=tags.get("sp", "").lower() or None,
        pct=pct,
        rua=rua,
        adkim=tags.get("adkim", "r").lower(),
        aspf=tags.get("aspf", "r").lower(),
        problems=tuple(problems),
    )


def render_report(report: SenderReport) -> str:
    """Render the report as text for an operator."""
    spf = report.spf
    lines = [f"sender check of {report.domain} through {report.resolver}", ""]
    lines.append(f"SPF:   {spf.record or 'missing'}")
    if spf.record is not None:
        lines.append(
            f"       all qualifier {spf.all_qualifier or '-'}, "
            f"{spf.lookups} of {MAX_SPF_LOOKUPS} DNS lookups"
        )
    for key in report.dkim:
        bits = f"{key.key_type} {key.key_bits} bits" if key.key_bits else "no usable key"
        lines.append(f"DKIM:  {key.selector}: {bits if key.record else 'missing'}")
    dmarc = report.dmarc
    lines.append(f"DMARC: {dmarc.record or 'missing'}")
    if dmarc.record is not None and dmarc.record_domain != report.domain:
        lines.append(
            f"       inherited from the organizational domain {dmarc.record_domain}: "
            f"{report.domain} gets p={dmarc.applied_policy}"
        )
    if dmarc.record is not None:
        lines.append(
            f"       p={dmarc.policy} sp={dmarc.subdomain_policy or dmarc.policy} "
            f"pct={dmarc.pct} adkim={dmarc.adkim} aspf={dmarc.aspf} "
            f"rua={','.join(dmarc.rua) or '-'}"
        )
    lines += ["", f"aligned SPF ready: {_yes(report.spf_ready)}"]
    lines.append(f"aligned DKIM ready: {_yes(report.dkim_ready)}")
    lines.append(f"ready for DMARC: {_yes(report.ready)}")
    lines += [f"problem: {problem}" for problem in report.problems]
    return "\n".join(lines) + "\n"


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def check_sender_main(
    domain: str,
    *,
    resolver: str | None,
    system_resolver: bool,
    selectors: list[str],
    as_json: bool,
    out: TextIO,
) -> int:
    """Run ``plaudit check-sender``: 0 when the domain is ready, 3 when it is not.

    Raises SenderCheckError (exit status 1) when no resolver is given or DNS fails.
    """
    if resolver is None and not system_resolver:
        raise SenderCheckError(
            "no DNS resolver given: pass --resolver IP[:PORT], set [deliverability] resolver "
            "with --config, or pass --system-resolver to use /etc/resolv.conf"
        )
    if resolver is not None and system_resolver:
        raise SenderCheckError("pass either --resolver or --system-resolver, not both")

    dns_resolver = make_resolver(resolver)
    label = resolver or "the system resolver"
    report = check_sender(domain, selectors, dns_lookup(dns_resolver), resolver=label)
    if as_json:
        out.write(msgspec.json.encode(report).decode() + "\n")
    else:
        out.write(render_report(report))
    return 0 if report.ready else NOT_READY
