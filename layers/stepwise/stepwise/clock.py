"""Time in the one format the API speaks: ISO-8601 UTC with milliseconds and ``Z``."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """``2023-01-01T00:00:00.000Z`` for a datetime (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def now_iso() -> str:
    """The current time as ``iso`` formats it."""
    return iso(now())


def parse_iso(text: str) -> datetime:
    """Read back a timestamp written by ``iso``."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
