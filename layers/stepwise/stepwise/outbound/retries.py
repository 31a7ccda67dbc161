"""How long to wait before the next attempt, and waiting in a way a cancel can interrupt."""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

from stepwise.outbound.errors import Transient

# No wait is longer, whatever the backoff or the server's Retry-After says: a node must not stall.
MAX_WAIT_SECONDS: Final = 30.0
_SLEEP_SLICE_SECONDS: Final = 0.1


def wait_before_retry(failure: Transient, attempt: int, backoff_seconds: float) -> tuple[float, str]:
    """Seconds to wait after ``attempt`` failed, and why (`` (Retry-After)`` when the server said so).

    Exponential backoff with full jitter: a random wait up to ``backoff_seconds * 2 ** (attempt - 1)``,
    capped; a ``Retry-After`` the server sent wins.
    """
    if failure.retry_after is not None:
        return failure.retry_after, " (Retry-After)"
    ceiling = min(MAX_WAIT_SECONDS, backoff_seconds * 2 ** (attempt - 1))
    return random.uniform(0.0, ceiling), ""


def pause(seconds: float, should_stop: Callable[[], bool] | None) -> bool:
    """Sleep ``seconds`` in small slices; return True as soon as ``should_stop`` says so."""
    end = time.monotonic() + seconds
    while True:
        if should_stop is not None and should_stop():
            return True
        left = end - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(_SLEEP_SLICE_SECONDS, left))


def retry_after(value: str | None) -> float | None:
    """Seconds to wait per a ``Retry-After`` header (delay-seconds or HTTP-date), capped; None if absent."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_WAIT_SECONDS)
