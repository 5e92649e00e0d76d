"""The base of every config table and the constrained value types the tables share."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

# Upper bounds keep values finite and within what SQLite's 64-bit integers and
# Trio's clock handle; a year is far beyond any sensible interval.
YEAR_SECONDS = 365 * 24 * 3600.0
Seconds = Annotated[float, msgspec.Meta(gt=0, le=YEAR_SECONDS)]
NonNegativeSeconds = Annotated[float, msgspec.Meta(ge=0, le=YEAR_SECONDS)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
# A server the daemon connects to: port 0 means "any free port" only when
# listening, so it is no address to connect to.
ServerPort = Annotated[int, msgspec.Meta(ge=1, le=65535)]
PosixId = Annotated[int, msgspec.Meta(ge=0)]


def is_loopback_host(host: str) -> bool:
    """Return whether ``host`` names this machine, where a clear-text login is safe."""
    return host in ("localhost", "::1") or host.startswith("127.")


class Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Base for every config table: unknown keys are rejected.

    Subclasses inherit forbid_unknown_fields.  Each subclass repeats kw_only,
    which msgspec applies to a class's own fields only, and frozen, which
    mypy otherwise assumes is off.
    """

    # Fields that repr() shows as '***' when set, so a logged config shows no secret.
    secret_fields: ClassVar[frozenset[str]] = frozenset()

    def __repr__(self) -> str:
        fields = []
        for name in self.__struct_fields__:
            value = getattr(self, name)
            text = "'***'" if name in self.secret_fields and value else repr(value)
            fields.append(f"{name}={text}")
        return f"{type(self).__name__}({', '.join(fields)})"
