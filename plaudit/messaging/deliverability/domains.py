"""Organizational domains (RFC 7489 section 3.2) for DMARC policy discovery."""

from __future__ import annotations

from typing import Final

# Public suffixes of two labels that organizational_domain recognises; for
# any other domain the last label is the public suffix.
# NOTE: a short hand-picked list, not the full Public Suffix List, so a
# domain under another multi-label suffix (such as a city.state.us name)
# gets an organizational domain that is too short.
MULTI_LABEL_SUFFIXES: Final = frozenset(
    {
        "co.uk", "org.uk", "me.uk", "ltd.uk", "plc.uk", "ac.uk", "gov.uk",
        "com.au", "net.au", "org.au", "id.au",
        "co.nz", "org.nz", "net.nz",
        "co.za", "org.za",
        "co.in", "net.in", "org.in", "firm.in",
        "com.br", "net.br", "org.br",
        "com.mx", "org.mx",
        "co.jp", "or.jp", "ne.jp",
        "com.ar", "com.co", "com.pe", "com.tr", "com.sg", "com.my", "com.hk",
        "co.kr", "co.il", "com.cn",
    }
)  # fmt: skip


def organizational_domain(domain: str) -> str:
    """Return the public suffix of ``domain`` plus one label (RFC 7489 section 3.2).

    Known suffixes are those of :data:`MULTI_LABEL_SUFFIXES` and every last label.
    """
    labels = domain.lower().split(".")
    suffix_labels = 2 if ".".join(labels[-2:]) in MULTI_LABEL_SUFFIXES else 1
    return ".".join(labels[-(suffix_labels + 1) :])
