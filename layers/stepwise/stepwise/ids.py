"""Resource ids: ``<kind>_<ULID>``, e.g. ``exe_01JD3Z6Q4W8XK2V5N7R9T1B3C5``.

A ULID is 48 bits of milliseconds since the epoch and 80 random bits from ``secrets``, in Crockford
base32: URL-safe, sortable by creation time (listings sort on it, newest first), and unguessable. The
prefix says what an id names, so a workflow id pasted where an execution id belongs is a clear 404.
The whole id is a valid Step Functions execution name (at most 80 characters of ``[A-Za-z0-9_-]``).

``derived_id`` makes the same shape of id deterministically: its 80 "random" bits are a hash of a seed.
A scheduled tick's execution id is derived from (schedule id, scheduled time), so a delivery Scheduler
repeats names the same execution and starts nothing new. The seed holds the schedule id, itself 80 random
bits, so a derived id is as unguessable as a fresh one to anyone who does not know that id.
"""

from __future__ import annotations

import hashlib
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


def derived_id(kind: Kind, milliseconds: int, seed: str) -> str:
    """A well-formed id of ``kind`` for ``milliseconds`` since the epoch, its 80 random bits a hash of ``seed``.

    The same arguments always give the same id; it sorts by ``milliseconds`` like any other id.
    """
    if not 0 <= milliseconds < 1 << 48:
        raise ValueError(f"milliseconds must fit in 48 bits, got {milliseconds}")
    randomness = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:10], "big")
    return f"{kind}_{_ulid(milliseconds, randomness)}"


def id_range(kind: Kind, first_ms: int, last_ms: int) -> tuple[str, str]:
    """The lowest and the highest id of ``kind`` made from ``first_ms`` to ``last_ms`` (both included).

    Ids sort by time, so a time range is a sort key range of any index keyed on ids.
    """
    first_ms, last_ms = max(first_ms, 0), min(last_ms, (1 << 48) - 1)
    return f"{kind}_{_ulid(first_ms, 0)}", f"{kind}_{_ulid(last_ms, (1 << 80) - 1)}"
