"""The exception hierarchy shared by every part of Plaudit.

Foreign exceptions (sqlite3, httpx, OSError) are translated into these at the
boundary where they happen, with ``raise ... from``.  Each message names the
value that was wrong and what the operator can do about it.
"""

from __future__ import annotations


class PlauditError(Exception):
    """Base class of every error Plaudit raises on purpose."""


class ConfigError(PlauditError):
    """The configuration file is missing, unreadable or invalid."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        joined = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(f"invalid configuration {path}:\n{joined}")


class JournalError(PlauditError):
    """The journal could not be opened, migrated or written."""


class JobNotFoundError(JournalError):
    """A job id named by a caller does not exist in the journal."""


class IllegalTransitionError(PlauditError):
    """A lifecycle object was asked to move to a state it cannot reach."""


class ControlError(PlauditError):
    """A control-socket request failed or the socket could not be used."""


class PlatformError(PlauditError):
    """A review platform call failed.

    ``retryable`` is true when the same call may succeed later (timeouts,
    connection errors, 408, 429, 5xx) and false otherwise (other 4xx).
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


class ReconnectRequiredError(PlatformError):
    """The platform revoked the credentials; an operator must reconnect."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)
