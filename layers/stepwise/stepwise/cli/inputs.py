"""What the user hands the CLI: JSON or YAML documents, and ``--var`` values."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

VAR_RULE = (
    'VALUE is JSON when it reads back exactly as typed: 5, -2, 3.14, true, null, "text", [1, 2] and '
    '{"a": 1} are JSON; anything else is kept as the text typed (1e3, 1.0, 007, +5, abc)'
)


class UsageError(Exception):
    """A mistake in the command line or its files (exit code 2)."""


def load_document(path: str) -> Any:
    """A JSON or YAML file (``-`` is stdin); YAML for ``.yaml``/``.yml``, else JSON, else YAML."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from error
    suffix = Path(path).suffix.lower()
    if suffix != ".yaml" and suffix != ".yml":
        try:
            return json.loads(text)
        except ValueError as error:
            if suffix == ".json":
                raise UsageError(f"{path} is not valid JSON: {error}") from error
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise UsageError(f"{path} is neither JSON nor YAML: {error}") from error


def _not_json(name: str) -> Any:
    raise ValueError(name)


def parse_value(text: str) -> Any:
    """A ``--var`` value: JSON when it reads back exactly as typed, else the text itself (see ``VAR_RULE``).

    A number keeps the number the user typed or stays text: ``1e3`` would come back as ``1000.0``, ``1.0``
    as ``1`` in any JSON reader that does not tell floats from integers, ``007`` is not JSON at all. An
    object or array is JSON whenever it parses (its spacing is not the user's meaning). NaN and Infinity
    are not JSON, so they stay text.
    """
    try:
        value = json.loads(text, parse_constant=_not_json)
    except ValueError:
        return text
    if isinstance(value, dict | list):
        return value
    if isinstance(value, float) and value.is_integer():
        return text
    return value if json.dumps(value, ensure_ascii=False) == text else text


def apply_settings(document: Any, pairs: Sequence[str], source: str) -> Any:
    """``document`` with each ``--set PATH=VALUE`` applied: PATH is a field, or fields joined by dots.

    VALUE is read as ``--var`` values are. Fields on the way are created; one that holds something other
    than an object cannot be gone through (a UsageError says which).
    """
    if not pairs:
        return document
    if not isinstance(document, dict):
        raise UsageError(f"--set needs {source} to hold an object")
    for pair in pairs:
        path, sep, raw = pair.partition("=")
        names = path.split(".")
        if not sep or not all(names):
            raise UsageError(f"--set {pair!r}: expected field=value or field.field=value")
        target = document
        for depth, name in enumerate(names[:-1]):
            inner = target.setdefault(name, {})
            if not isinstance(inner, dict):
                raise UsageError(f"--set {pair!r}: {'.'.join(names[: depth + 1])} in {source} is not an object")
            target = inner
        target[names[-1]] = parse_value(raw)
    return document


def parse_variables(pairs: Sequence[str], var_file: str | None) -> dict[str, Any]:
    """``--var-file`` then each ``--var key=value`` over it (values read by :func:`parse_value`)."""
    variables: dict[str, Any] = {}
    if var_file:
        loaded = load_document(var_file)
        if not isinstance(loaded, dict):
            raise UsageError(f"{var_file} must hold an object of variables")
        variables.update(loaded)
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--var {pair!r}: expected key=value")
        variables[key] = parse_value(raw)
    return variables


_SINCE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def since(text: str, now: datetime | None = None) -> str:
    """``--since 90m`` as the ISO-8601 time that long ago (s, m, h, d, w)."""
    match = _SINCE.match(text.strip().lower())
    if not match:
        raise UsageError(f"--since {text}: write a number and a unit, s m h d or w (30m, 1h, 7d)")
    amount, unit = int(match.group(1)), _UNITS[match.group(2)]
    try:
        moment = (now or datetime.now(UTC)) - timedelta(**{unit: amount})
    except OverflowError as error:
        raise UsageError(f"--since {text}: that is too long ago") from error
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
