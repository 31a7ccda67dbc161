"""What a failed outgoing call raises."""

from __future__ import annotations


class OutboundError(Exception):
    """An outgoing call failed.

    ``str()`` says what was called and what happened (never a header value). ``retryable`` tells whether
    making the same call again later might succeed; ``status`` is the last HTTP status seen, if any.
    """

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status

    def __str__(self) -> str:
        return self.message


class BlockedDestination(OutboundError):
    """The destination guard refused the URL (bad scheme, or an address the policy does not allow)."""


class CallStopped(OutboundError):
    """``should_stop`` returned True, so the call was abandoned."""


class Transient(Exception):
    """An attempt failed in a way that another attempt may fix (internal: never escapes ``call``)."""

    def __init__(self, reason: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after
