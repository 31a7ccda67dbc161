"""Validation errors a user can act on: a pattern explained in words, not shown as a regex."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError, ValidatorFunctionWrapHandler, WrapValidator
from pydantic_core import PydanticCustomError

# Long inputs are cut in messages: the point is to recognise the value, not to read it back.
SHOWN_CHARACTERS = 40


def pattern_in_words(words: str) -> WrapValidator:
    """Put after a ``pattern`` constraint: a value that does not match is refused with ``should be <words>``.

    The pattern stays in the JSON schema (clients and fuzzers read it); only the message changes.
    """

    def explain(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError as error:
            if not any(detail["type"] == "string_pattern_mismatch" for detail in error.errors()):
                raise
            shown = value if len(value) <= SHOWN_CHARACTERS else value[:SHOWN_CHARACTERS] + "..."
            raise PydanticCustomError(
                "string_pattern_mismatch", "should be {words}, not '{value}'", {"words": words, "value": shown}
            ) from None

    return WrapValidator(explain)
