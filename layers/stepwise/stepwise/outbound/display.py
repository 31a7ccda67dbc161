"""How calls, URLs, failures and waits are worded in messages and logs: never a secret."""

from __future__ import annotations

from urllib.parse import urlsplit


def display_url(url: str) -> str:
    """``url`` as it may be shown in messages and logs: scheme, host, port and path only.

    Credentials (userinfo), the query string and the fragment are dropped: they may carry secrets.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<malformed URL>"
    if not parts.scheme and not parts.netloc:
        return parts.path[:200] or "<empty URL>"
    netloc = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{netloc}{parts.path}"


def display_call(method: str, url: str) -> str:
    """``METHOD url`` as messages name a call (see :func:`display_url`)."""
    return f"{method} {display_url(url)}".strip()


def root_reason(exc: BaseException) -> str:
    """A short description of what went wrong at the bottom of an exception chain, without the URL."""
    current: BaseException = exc
    for _ in range(8):
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            current = reason
            continue
        nested = [arg for arg in current.args if isinstance(arg, BaseException)]
        if nested:
            current = nested[-1]
            continue
        break
    text = str(current)
    for marker in ("Failed to establish a new connection: ", "Failed to resolve "):
        if marker in text:
            text = text.split(marker, 1)[1]
    if not text or " object at 0x" in text:
        text = type(current).__name__
    return text[:200]


def seconds_text(value: float) -> str:
    """Seconds as messages show them: one decimal, two below a tenth."""
    return f"{value:.1f}" if value >= 0.1 or value == 0 else f"{value:.2f}"
