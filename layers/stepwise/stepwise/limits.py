"""Limits on what the service stores, checked where data comes in (a request, an answer)."""

from __future__ import annotations

import json
from typing import Any

from stepwise.errors import BadRequest

# Deeper JSON cannot be serialized back (pydantic stops at a few hundred levels); no real document needs it.
MAX_DEPTH = 64


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON: what it costs to store."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """How deeply ``value`` nests lists and objects, counting up to ``limit + 1`` at most."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            level += 1
            deepest = max(deepest, level)
            if level > limit:
                return level
            stack.extend((child, level) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json_body(text: str) -> Any:
    """A request body as strict JSON (no NaN or Infinity) nested at most MAX_DEPTH, else BadRequest."""
    try:
        parsed = json.loads(text, parse_constant=_reject_constant)
    except RecursionError as error:
        raise BadRequest(f"request body is nested too deeply; the limit is {MAX_DEPTH} levels") from error
    except ValueError as error:
        raise BadRequest(f"request body is not valid JSON: {error}") from error
    if depth(parsed) > MAX_DEPTH:
        raise BadRequest(f"request body is nested too deeply; the limit is {MAX_DEPTH} levels")
    return parsed
