"""What a call is given (its policy) and what it gives back (the answer)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from stepwise.outbound.display import display_call
from stepwise.outbound.errors import OutboundError


@dataclass(frozen=True)
class CallPolicy:
    """How one outgoing call behaves: timeouts, retries, size limit, destinations and redirects.

    ``timeout_seconds`` bounds connecting, each read, and the whole of one attempt (including reading the
    body). ``max_attempts`` counts the first try. ``backoff_seconds`` is the base of the exponential
    backoff between attempts. ``allow_private`` permits private networks (10/8, 172.16/12, 192.168/16,
    127/8, ::1, fc00::/7, 100.64/10 and other non-public ranges); link-local, metadata, unspecified,
    multicast and reserved addresses are refused regardless.
    """

    timeout_seconds: float = 30.0
    max_attempts: int = 3
    backoff_seconds: float = 1.0
    max_response_bytes: int = 1_048_576
    allow_private: bool = False
    max_redirects: int = 3


@dataclass(frozen=True)
class HttpAnswer:
    """What the far end answered.

    ``headers`` keeps the header names as the server sent them (use :meth:`header` for a
    case-insensitive lookup). ``attempts`` is how many attempts the call took; ``elapsed_ms`` is the wall
    time of the whole call, retries and backoff included. ``method`` and ``url`` are those of the last
    request made (after redirects).
    """

    status: int
    headers: dict[str, str]
    body: bytes
    attempts: int
    elapsed_ms: int
    method: str = ""
    url: str = ""

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        """The body decoded as UTF-8, undecodable bytes replaced."""
        return self.body.decode("utf-8", errors="replace")

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None

    def json(self) -> Any:
        """The body parsed as JSON; raises :class:`OutboundError` if it is not JSON."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            who = f"{display_call(self.method, self.url)} " if self.url else "the endpoint "
            excerpt = self.text[:200]
            raise OutboundError(f"{who}answered with a body that is not JSON: {excerpt}") from None
