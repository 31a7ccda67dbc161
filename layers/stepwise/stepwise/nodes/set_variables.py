"""``setVariables``: assign interpolated values to variables."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from stepwise.interpolation import interpolate
from stepwise.nodes.base import NodeConfig, NodeContext, Outcome


class SetVariablesConfig(NodeConfig):
    values: dict[str, Any] = Field(min_length=1, description="variable name → value (strings are interpolated)")


def run(config: SetVariablesConfig, context: NodeContext) -> Outcome:
    """Interpolate every value against the variables as they were before this node."""
    values = interpolate(config.values, context.variables)
    context.log("info", f"set {', '.join(sorted(values))}")
    return Outcome(output=values, set_variables=values)
