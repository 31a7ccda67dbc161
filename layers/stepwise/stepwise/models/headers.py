"""HTTP headers a user writes (an agent's, an httpRequest node's): what HTTP lets them carry, checked on write."""

from __future__ import annotations

import re

# What HTTP lets a header carry (RFC 9110): a name is a token; a value is text on one line whose characters
# fit in one byte each (ISO-8859-1), since it is sent as bytes. Anything else fails the call, every time.
# (The patterns are for the OpenAPI document too, hence ^...$; Python checks them with fullmatch.)
HEADER_NAME_PATTERN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
HEADER_VALUE_PATTERN = r"^[\t\x20-\x7e\x80-\xff]*$"
_HEADER_NAME = re.compile(HEADER_NAME_PATTERN)
_HEADER_VALUE = re.compile(HEADER_VALUE_PATTERN)


def header_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be an HTTP header's name, or None when it can."""
    if _HEADER_NAME.fullmatch(name):
        return None
    return f"header name '{name}' should be letters, digits or !#$%&'*+-.^_`|~ only"


def header_value_problem(name: str, value: str) -> str | None:
    """Why ``value`` cannot be sent as header ``name`` (the value itself is never shown: it may be a secret)."""
    if _HEADER_VALUE.fullmatch(value):
        return None
    return f"the value of header '{name}' has a line break, a control character or a character beyond ISO-8859-1"
