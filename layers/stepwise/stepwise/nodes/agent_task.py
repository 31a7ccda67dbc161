"""``agentTask``: the seed's four steps — load the agent, interpolate the prompt, POST, store the answer."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from stepwise.interpolation import as_text, interpolate
from stepwise.nodes.base import NodeConfig, NodeContext, NodeFailed, Outcome, VariableName
from stepwise.nodes.calls import policy_for, send, with_idempotency_key


class AgentTaskConfig(NodeConfig):
    agentId: str = Field(min_length=1)
    prompt: str = Field(min_length=1, description="interpolated with the execution's variables")
    outputVariable: VariableName | None = None


def _openai_content(answer: Any) -> Any:
    try:
        return answer["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as error:
        raise NodeFailed("agent answer is not a chat completion: no choices[0].message.content") from error


def run(config: AgentTaskConfig, context: NodeContext) -> Outcome:
    """Call the agent and store its result in ``variables[outputVariable or node id]``."""
    agent = context.load_agent(config.agentId)
    if agent is None:
        raise NodeFailed(f"agent {config.agentId} does not exist (was it deleted?)")
    if agent.owner != context.owner:
        raise NodeFailed(f"agent {config.agentId} belongs to someone else")
    prompt = as_text(interpolate(config.prompt, context.variables))
    # The node run's key, whatever the agent's headers say: a fixed one there would make every run one call.
    headers = with_idempotency_key(context, {"Accept": "application/json", **agent.headers}, keep_callers=False)
    if agent.credentialRef:
        headers["Authorization"] = f"Bearer {context.read_secret(agent.credentialRef)}"
    body: dict[str, Any]
    if agent.protocol == "openai-chat":
        body = {"messages": [{"role": "user", "content": prompt}]}
        if agent.model:
            body["model"] = agent.model
    else:
        body = {
            "prompt": prompt,
            "variables": dict(context.variables),
            "executionId": context.execution_id,
            "nodeId": context.node_id,
        }
    context.log("info", f"calling agent {agent.name} ({agent.protocol})")
    answer = send(
        context,
        "POST",
        agent.endpoint,
        policy=policy_for(context, agent.timeoutSeconds),
        headers=headers,
        json_body=body,
    )
    if answer.status >= 400:
        raise NodeFailed(f"agent {agent.name} answered HTTP {answer.status}: {answer.text[:300]}")
    try:
        parsed = answer.json()
    except Exception as error:
        raise NodeFailed(str(error)) from error
    result = _openai_content(parsed) if agent.protocol == "openai-chat" else parsed
    context.log("info", f"agent {agent.name} answered ({len(answer.body)} bytes)")
    return Outcome(output=result, set_variables={config.outputVariable or context.node_id: result})
