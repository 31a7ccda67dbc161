"""Interpolate workflow node configs with an execution's variables.

Rules, in short:

* ``interpolate`` walks strings, lists and dicts (dict values, never keys) and returns a new value;
  anything else comes back unchanged. The input is never mutated.
* ``${path}`` in a string is replaced by the value at ``path`` in the variables. A string that is
  exactly one placeholder yields the value itself with its JSON type (a fresh copy of dicts and
  lists); otherwise each placeholder becomes text: strings as they are, anything else as compact
  JSON (``true``, ``null``, ``3.5``, ``{"a":1}``).
* Path grammar: an identifier ``[A-Za-z_][A-Za-z0-9_-]*``, then any of ``.name``, ``[N]`` (list
  index, N >= 0), ``["any key"]`` or ``['any key']`` (a backslash in a quoted key takes the next
  character literally). Whitespace around the path inside ``${ }`` is ignored.
* ``$${`` is a literal ``${``; any other ``$`` is left alone. Substituted values are never
  scanned again, so a variable holding ``"${x}"`` is inserted as that text.
* An unknown path raises ``UnknownVariable``; a malformed placeholder raises
  ``InterpolationError`` (both ``ValueError``), with a message naming the path or the position.

Nothing is evaluated: a single left-to-right scan per string with a few precompiled regexes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any, NamedTuple

__all__ = [
    "InterpolationError",
    "UnknownVariable",
    "escape",
    "has_path",
    "interpolate",
    "parse_path",
    "placeholders",
    "resolve",
]

Segment = str | int

_IDENT_PATTERN = r"[A-Za-z_][A-Za-z0-9_-]*"
_IDENT = re.compile(_IDENT_PATTERN)
_SEGMENT = re.compile(
    r"\.(" + _IDENT_PATTERN + r")"  # .name
    r"|\[(?:([0-9]+)"  # [N]
    r'|"((?:[^"\\]|\\.)*)"'  # ["key"]
    r"|'((?:[^'\\]|\\.)*)')\]",  # ['key']
    re.DOTALL,
)
_QUOTED = {'"': re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL), "'": re.compile(r"'(?:[^'\\]|\\.)*'", re.DOTALL)}
_DIGITS = re.compile(r"[0-9]+")
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)
_SNIPPET_MAX = 40


class InterpolationError(ValueError):
    """A placeholder or path is malformed, or a value cannot be rendered as text.

    ``position`` is the index (in the string being scanned) of the problem, or None.
    """

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.position))


class UnknownVariable(InterpolationError):
    """A placeholder's path does not exist in the variables; ``path`` is the path as written."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"unknown variable ${{{path}}}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.reason))


class _BadSyntax(Exception):
    """Internal: what is wrong with a path and where (an index into the scanned string)."""

    def __init__(self, problem: str, position: int) -> None:
        super().__init__(problem)
        self.problem = problem
        self.position = position


class _Placeholder(NamedTuple):
    path: str  # the path as written, without the surrounding whitespace
    segments: tuple[Segment, ...]
    start: int  # index of "${"
    end: int  # index just past "}"


# --- public API ------------------------------------------------------------------------------------


def interpolate(value: Any, variables: Mapping[str, Any]) -> Any:
    """Return ``value`` with every ``${path}`` placeholder replaced from ``variables``.

    Strings, lists and dict values are interpolated recursively (dict keys are not); any other
    value is returned as is. Raises ``UnknownVariable`` for a path that is not in ``variables`` and
    ``InterpolationError`` for a malformed placeholder.
    """
    if isinstance(value, str):
        return _interpolate_str(value, variables)
    if isinstance(value, dict):
        return {key: interpolate(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, variables) for item in value]
    return value


def parse_path(path: str) -> tuple[Segment, ...]:
    """Parse a path such as ``a.b[0]["c d"]`` into its segments: ``("a", "b", 0, "c d")``.

    Whitespace around the path is ignored. Raises ``InterpolationError`` if it is malformed.
    """
    start = _skip_ws(path)
    if start == len(path):
        raise InterpolationError(f"invalid path {path!r}: empty path", start)
    try:
        segments, end = _parse_at(path, start)
        after = _skip_ws(path, end)
        if after != len(path):
            raise _BadSyntax(*_problem_after(path, end, after, "end of path"))
    except _BadSyntax as bad:
        raise InterpolationError(
            f"invalid path {path!r}: {bad.problem} at position {bad.position}", bad.position
        ) from None
    return segments


def resolve(variables: Mapping[str, Any], path: str) -> Any:
    """Return the value at ``path`` in ``variables`` (the object itself, not a copy).

    Raises ``UnknownVariable`` if the path does not exist, ``InterpolationError`` if it is malformed.
    """
    return _lookup(variables, parse_path(path), path.strip())


def has_path(variables: Mapping[str, Any], path: str) -> bool:
    """Tell whether ``path`` exists in ``variables`` (a malformed path still raises)."""
    try:
        resolve(variables, path)
    except UnknownVariable:
        return False
    return True


def escape(text: str) -> str:
    """Make ``text`` literal: ``interpolate(escape(text), variables) == text`` for any variables."""
    return text.replace("${", "$${")


def placeholders(value: Any) -> list[str]:
    """Return the paths ``value`` references (as written, first occurrence order, no duplicates).

    Walks ``value`` like ``interpolate`` does; raises ``InterpolationError`` for a malformed placeholder.
    """
    found: dict[str, None] = {}
    _collect(value, found)
    return list(found)


# --- scanning --------------------------------------------------------------------------------------


def _interpolate_str(text: str, variables: Mapping[str, Any]) -> Any:
    if "$" not in text:
        return text
    parts: list[str] = []
    for token in _scan(text):
        if isinstance(token, str):
            parts.append(token)
            continue
        value = _lookup(variables, token.segments, token.path)
        if token.start == 0 and token.end == len(text):
            return _copy(value)
        parts.append(_render(value, token.path))
    return "".join(parts)


def _collect(value: Any, found: dict[str, None]) -> None:
    if isinstance(value, str):
        if "$" in value:
            for token in _scan(value):
                if not isinstance(token, str):
                    found.setdefault(token.path)
    elif isinstance(value, dict):
        for item in value.values():
            _collect(item, found)
    elif isinstance(value, list):
        for item in value:
            _collect(item, found)


def _scan(text: str) -> Iterator[str | _Placeholder]:
    """Yield literal chunks and placeholders of ``text``, left to right, escapes already applied."""
    pos = 0
    dollar = text.find("$")
    while dollar >= 0:
        if text.startswith("$${", dollar):
            yield text[pos:dollar] + "${"
            pos = dollar + 3
            dollar = text.find("$", pos)
        elif text.startswith("${", dollar):
            if dollar > pos:
                yield text[pos:dollar]
            placeholder = _read_placeholder(text, dollar)
            yield placeholder
            pos = placeholder.end
            dollar = text.find("$", pos)
        else:
            dollar = text.find("$", dollar + 1)
    if pos < len(text):
        yield text[pos:]


def _read_placeholder(text: str, start: int) -> _Placeholder:
    begin = _skip_ws(text, start + 2)
    if text.startswith("}", begin):
        raise InterpolationError(f"empty placeholder {_snippet(text, start)!r} at position {start}", start)
    try:
        segments, end = _parse_at(text, begin)
        close = _skip_ws(text, end)
        if not text.startswith("}", close):
            raise _BadSyntax(*_problem_after(text, end, close, "'}'"))
    except _BadSyntax as bad:
        snippet = _snippet(text, start)
        if bad.position >= len(text) or text.find("}", start) < 0:
            raise InterpolationError(f"unclosed placeholder {snippet!r} at position {start}", start) from None
        raise InterpolationError(
            f"malformed placeholder {snippet!r} at position {start}: {bad.problem} at position {bad.position}",
            bad.position,
        ) from None
    return _Placeholder(text[begin:end], segments, start, close + 1)


def _parse_at(text: str, pos: int) -> tuple[tuple[Segment, ...], int]:
    """Parse the longest path starting at ``pos``; return its segments and where it ends."""
    match = _IDENT.match(text, pos)
    if match is None:
        raise _BadSyntax("expected a variable name", pos)
    segments: list[Segment] = [match.group()]
    pos = match.end()
    while (match := _SEGMENT.match(text, pos)) is not None:
        name, index, double_quoted, single_quoted = match.groups()
        if name is not None:
            segments.append(name)
        elif index is not None:
            segments.append(int(index))
        else:
            key: str = double_quoted if double_quoted is not None else single_quoted
            segments.append(_UNESCAPE.sub(lambda m: m.group(1), key) if "\\" in key else key)
        pos = match.end()
    return tuple(segments), pos


def _problem_after(text: str, end: int, after: int, expected: str) -> tuple[str, int]:
    """Say why the path ending at ``end`` is not followed (after whitespace, at ``after``) by ``expected``."""
    char = text[end : end + 1]
    if after == end and char == ".":
        return "expected a name after '.'", end
    if after == end and char == "[":
        quote = text[end + 1 : end + 2]
        if quote in _QUOTED:
            quoted = _QUOTED[quote].match(text, end + 1)
            if quoted is None:
                return "unterminated quoted key", end + 1
            return "expected ']' after the quoted key", quoted.end()
        digits = _DIGITS.match(text, end + 1)
        if digits is not None:
            return "expected ']' after the index", digits.end()
        return "expected an index [N] or a quoted key after '['", end + 1
    if after >= len(text):
        return f"unexpected end, expected {expected}", after
    return f"unexpected {text[after]!r}, expected {expected}", after


def _skip_ws(text: str, pos: int = 0) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _snippet(text: str, start: int) -> str:
    close = text.find("}", start)
    piece = text[start : len(text) if close < 0 else close + 1]
    return piece if len(piece) <= _SNIPPET_MAX else piece[: _SNIPPET_MAX - 3] + "..."


# --- values ----------------------------------------------------------------------------------------


def _lookup(variables: Mapping[str, Any], segments: tuple[Segment, ...], path: str) -> Any:
    current: Any = variables
    for depth, segment in enumerate(segments):
        if isinstance(segment, int):
            if not isinstance(current, list | tuple):
                raise UnknownVariable(path, f"{_where(segments, depth)} is {_kind(current)}, not a list")
            if segment >= len(current):
                raise UnknownVariable(
                    path, f"index {segment} out of range in {_where(segments, depth)} (length {len(current)})"
                )
            current = current[segment]
        else:
            if not isinstance(current, Mapping):
                raise UnknownVariable(path, f"{_where(segments, depth)} is {_kind(current)}, not an object")
            if segment not in current:
                raise UnknownVariable(path, f"{segment!r} not found in {_where(segments, depth)}")
            current = current[segment]
    return current


def _where(segments: tuple[Segment, ...], depth: int) -> str:
    return repr(_format_path(segments[:depth])) if depth else "variables"


def _format_path(segments: tuple[Segment, ...]) -> str:
    out: list[str] = []
    for depth, segment in enumerate(segments):
        if isinstance(segment, int):
            out.append(f"[{segment}]")
        elif _IDENT.fullmatch(segment):
            out.append(f".{segment}" if depth else segment)
        else:
            out.append('["' + segment.replace("\\", "\\\\").replace('"', '\\"') + '"]')
    return "".join(out)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float | Decimal):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def _copy(value: Any) -> Any:
    """Copy dicts and lists (recursively) so a result never aliases the variables."""
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def as_text(value: Any) -> str:
    """A value as an embedded placeholder renders it: strings as they are, the rest as compact JSON."""
    return _render(value, "value")


def _render(value: Any, path: str) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise InterpolationError(f"cannot render ${{{path}}} as text: {exc}") from None


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):  # numbers read back from DynamoDB
        return int(value) if value.is_finite() and value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
