"""Run one node type directly, the way the node runner does, with a context the test controls."""

from __future__ import annotations

from typing import Any

from stepwise.models.agent import AgentRecord
from stepwise.models.workflow import RetryPolicy
from stepwise.nodes import REGISTRY
from stepwise.nodes.base import CallDefaults, NodeContext


def node_context(variables: dict[str, Any], agent: AgentRecord | None = None) -> tuple[NodeContext, list[str]]:
    """A context over ``variables`` whose every agent id loads ``agent``; also the log lines it collects."""
    lines: list[str] = []
    return (
        NodeContext(
            execution_id="exe_x",
            node_id="node",
            run=1,
            owner="alice",
            variables=variables,
            calls=CallDefaults(timeout_seconds=30, max_response_bytes=1_048_576, allow_private_endpoints=True),
            timeout_seconds=2,
            retry=RetryPolicy(maxAttempts=2, backoffSeconds=0),
            log=lambda level, message: lines.append(message),
            should_stop=lambda: False,
            load_agent=lambda agent_id: agent,
            read_secret=lambda ref: "secret",
        ),
        lines,
    )


def run_node(node_type: str, config: dict[str, Any], ctx: NodeContext) -> Any:
    """Validate ``config`` with the node type's model and run it once."""
    kind = REGISTRY[node_type]
    return kind.run(kind.config_model.model_validate(config), ctx)
