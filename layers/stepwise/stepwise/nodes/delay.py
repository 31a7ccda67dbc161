"""``delay``: wait in the state machine (a Wait state), never in a sleeping Lambda."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from stepwise.nodes.base import NodeConfig, NodeContext, Outcome, Wait

# One year: Step Functions' own limit on a Standard execution.
MAX_DELAY_SECONDS = 31_536_000


class DelayConfig(NodeConfig):
    seconds: int = Field(ge=0, le=MAX_DELAY_SECONDS)


def run(config: DelayConfig, context: NodeContext) -> Outcome:
    """Ask the state machine to wait."""
    context.log("info", f"waiting {config.seconds} s")
    return Outcome(wait=Wait("delay", config.seconds))


def finish(config: DelayConfig, context: NodeContext, state: dict[str, Any]) -> Outcome:
    """The wait is over."""
    context.log("info", f"waited {config.seconds} s")
    return Outcome(output={"waitedSeconds": config.seconds})
