"""``condition``: compare two interpolated values and continue at ``then`` or ``else``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from stepwise.interpolation import InterpolationError, has_path, interpolate, parse_path
from stepwise.nodes.base import NodeConfig, NodeContext, NodeFailed, Outcome

Operator = Literal["eq", "ne", "gt", "gte", "lt", "lte", "contains", "exists"]


class ConditionConfig(NodeConfig):
    left: Any = Field(description="a value or a placeholder such as ${order.total}; for exists, a variable path")
    op: Operator
    right: Any = None
    then: str = Field(min_length=1, description="node id to continue at when the comparison holds")
    else_: str = Field(alias="else", min_length=1, description="node id to continue at otherwise")

    model_config = {"extra": "forbid", "populate_by_name": True}

    @model_validator(mode="after")
    def _right_needed(self) -> ConditionConfig:
        if self.op != "exists" and "right" not in self.model_fields_set:
            raise ValueError(f"'right' is required for op '{self.op}'")
        return self

    def check_before_storing(self) -> None:
        """An ``exists`` whose path cannot parse would fail every run that reaches it."""
        if self.op == "exists":
            try:
                parse_path(_exists_path(self.left))
            except InterpolationError as error:
                raise ValueError(f"left: {error.message}") from None


def targets(config: ConditionConfig) -> list[str]:
    """The node ids this condition may continue at."""
    return [config.then, config.else_]


def _exists_path(left: Any) -> str:
    text = str(left).strip()
    if text.startswith("${") and text.endswith("}"):
        text = text[2:-1].strip()
    return text


def compare(op: Operator, left: Any, right: Any) -> bool:
    """Evaluate ``left op right`` the way a user reads it; ordering needs two numbers or two strings."""
    if op == "eq":
        return bool(left == right)
    if op == "ne":
        return bool(left != right)
    if op == "contains":
        if isinstance(left, str):
            return isinstance(right, str) and right in left
        if isinstance(left, list):
            return right in left
        if isinstance(left, dict):
            return isinstance(right, str) and right in left
        raise NodeFailed(f"'contains' needs a string, list or object on the left, got {type(left).__name__}")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, right))
    strings = isinstance(left, str) and isinstance(right, str)
    if not (numbers or strings):
        raise NodeFailed(f"cannot compare {left!r} {op} {right!r}: both sides must be numbers or both strings")
    if op == "gt":
        return bool(left > right)
    if op == "gte":
        return bool(left >= right)
    if op == "lt":
        return bool(left < right)
    return bool(left <= right)


def run(config: ConditionConfig, context: NodeContext) -> Outcome:
    """Decide and name the next node; the output records the decision."""
    if config.op == "exists":
        result = has_path(context.variables, _exists_path(config.left))
        left, right = config.left, None
    else:
        left = interpolate(config.left, context.variables)
        right = interpolate(config.right, context.variables)
        result = compare(config.op, left, right)
    chosen = config.then if result else config.else_
    context.log("info", f"{left!r} {config.op} {right!r} is {str(result).lower()}; continuing at {chosen}")
    return Outcome(output={"result": result, "next": chosen}, next_node=chosen)
