"""Resource ids: ``<kind>_<ULID>``, e.g. ``exe_01JD3Z6Q4W8XK2V5N7R9T1B3C5``.

A ULID is 48 bits of milliseconds since the epoch and 80 random bits from ``secrets``, in Crockford
base32: URL-safe, sortable by creation time (listings sort on it, newest first), and unguessable. The
prefix says what an id names, so a workflow id pasted where an execution id belongs is a clear 404.
The whole id is a valid Step Functions execution name (at most 80 characters of ``[A-Za-z0-9_-]``).
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Literal

Kind = Literal["wf", "ag", "exe", "sch"]
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PATTERN = re.compile(r"^(wf|ag|exe|sch)_[0-9A-HJKMNP-TV-Z]{26}$")


def _ulid(milliseconds: int, randomness: int) -> str:
    value = (milliseconds << 80) | randomness
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(kind: Kind) -> str:
    """A fresh id of the given kind."""
    return f"{kind}_{_ulid(int(time.time() * 1000), secrets.randbits(80))}"


def is_id(value: str, kind: Kind) -> bool:
    """True when ``value`` is well formed and of ``kind``."""
    return bool(_PATTERN.match(value)) and value.startswith(kind + "_")
