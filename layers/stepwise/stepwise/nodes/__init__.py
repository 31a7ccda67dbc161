"""Node types: one module each, with its config model and ``run``; ``REGISTRY`` names them all.

Adding a node type is one new module and one line in ``_TYPES`` below. :mod:`stepwise.nodes.definitions`
checks a workflow definition against them before it is stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stepwise.nodes import agent_task, approval, condition, delay, http_request, set_variables
from stepwise.nodes.base import NodeConfig, NodeContext, Outcome


@dataclass(frozen=True)
class NodeType:
    """A node type: its name in definitions, config model, behaviour and the node ids it may jump to.

    ``branches``: the node picks where to continue itself (its ``targets``), so a ``next`` would be ignored.
    ``instant``: the node neither calls out nor waits and takes next to no time: it runs in the same step as the
    nodes around it, and is recorded in the same group of the log (:mod:`stepwise.service.batches`).
    """

    name: str
    config_model: type[NodeConfig]
    run: Callable[[Any, NodeContext], Outcome]
    calls_out: bool = False
    instant: bool = False
    targets: Callable[[Any], list[str]] = lambda config: []
    branches: bool = False
    finish: Callable[[Any, NodeContext, dict[str, Any]], Outcome] | None = None


_TYPES = [
    NodeType("agentTask", agent_task.AgentTaskConfig, agent_task.run, calls_out=True),
    NodeType("httpRequest", http_request.HttpRequestConfig, http_request.run, calls_out=True),
    NodeType("setVariables", set_variables.SetVariablesConfig, set_variables.run, instant=True),
    NodeType(
        "condition", condition.ConditionConfig, condition.run, targets=condition.targets, branches=True, instant=True
    ),
    NodeType("delay", delay.DelayConfig, delay.run, finish=delay.finish),
    NodeType("approval", approval.ApprovalConfig, approval.run, finish=approval.finish),
]

REGISTRY: dict[str, NodeType] = {node_type.name: node_type for node_type in _TYPES}
