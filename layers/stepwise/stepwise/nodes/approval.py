"""``approval``: pause until someone resumes the execution through the API, or fail on timeout."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from stepwise.interpolation import as_text, interpolate
from stepwise.nodes.base import NodeConfig, NodeContext, Outcome, Wait


class ApprovalConfig(NodeConfig):
    timeoutSeconds: int | None = Field(default=None, ge=1, le=31_536_000)
    message: str | None = Field(default=None, description="what the approver is asked")


def run(config: ApprovalConfig, context: NodeContext) -> Outcome:
    """Pause the execution; a resume approves."""
    limit = f" (times out after {config.timeoutSeconds} s)" if config.timeoutSeconds else ""
    asked = f": {as_text(interpolate(config.message, context.variables))}" if config.message else ""
    context.log("info", f"waiting for approval{limit}{asked}; resume the execution to approve")
    return Outcome(wait=Wait("approval", config.timeoutSeconds or 0))


def finish(config: ApprovalConfig, context: NodeContext, state: dict[str, Any]) -> Outcome:
    """Resumed: the node's output says who approved and when."""
    approved_by = state.get("approvedBy")
    name = state.get("approvedByName") or approved_by
    context.log("info", f"approved by {name}")
    output = {
        "approved": True,
        "approvedBy": approved_by,
        "approvedByName": name,
        "approvedAt": state.get("approvedAt"),
    }
    if config.message:
        output["message"] = as_text(interpolate(config.message, context.variables))
    return Outcome(output=output)
