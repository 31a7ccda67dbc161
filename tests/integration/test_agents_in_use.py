"""Nothing dangling: an agent that a workflow's current version calls is not deleted from under it (moto)."""

from __future__ import annotations

from typing import Any

import pytest

from stepwise.errors import Conflict, InvalidWorkflow
from stepwise.identity import Caller
from stepwise.nodes.definitions import WorkflowInput
from stepwise.service import agents, workflows
from stepwise.store import Store
from stepwise.store.migrations import index_everything

ALICE = Caller("alice")


@pytest.fixture
def store(aws: Any) -> Store:
    from stepwise import wiring

    return wiring.api().store


def new_agent(api: Any, name: str = "helper") -> str:
    answer = api.post("/api/agents", json_body={"name": name, "endpoint": "https://agent.example.com/run"})
    assert answer.status == 201, answer.body
    return str(answer.body["data"]["id"])


def calling(*agent_ids: str, name: str = "uses agents") -> dict[str, Any]:
    nodes = [
        {"id": f"ask{n}", "type": "agentTask", "config": {"agentId": agent_id, "prompt": "hi"}}
        for n, agent_id in enumerate(agent_ids)
    ]
    return {"name": name, "nodes": nodes or [{"id": "set", "type": "setVariables", "config": {"values": {"x": 1}}}]}


def new_workflow(api: Any, definition: dict[str, Any]) -> str:
    answer = api.post("/api/workflows", json_body=definition)
    assert answer.status == 201, answer.body
    return str(answer.body["data"]["id"])


def test_an_agent_in_use_is_a_409_naming_the_workflows(api: Any, store: Store) -> None:
    agent = new_agent(api)
    triage = new_workflow(api, calling(agent, agent, name="triage"))
    replies = new_workflow(api, calling(agent, name="replies"))

    with pytest.raises(Conflict) as refused:
        agents.delete(store, ALICE, agent)

    message = str(refused.value)
    assert f"Agent {agent} is used by workflows" in message
    assert f"{triage} (triage)" in message and f"{replies} (replies)" in message
    assert "force=true" in message
    assert store.get_agent(agent) is not None


def test_force_deletes_an_agent_in_use(api: Any, store: Store) -> None:
    agent = new_agent(api)
    workflow_id = new_workflow(api, calling(agent))

    agents.delete(store, ALICE, agent, force=True)

    assert store.get_agent(agent) is None
    # The workflow can still be changed: to stop calling the agent, not to keep calling it
    with pytest.raises(InvalidWorkflow, match=f"agent {agent} does not exist"):
        workflows.update(store, ALICE, workflow_id, WorkflowInput.model_validate(calling(agent)))
    workflows.update(store, ALICE, workflow_id, WorkflowInput.model_validate(calling()))


def test_an_agent_no_longer_called_or_whose_workflow_is_gone_may_be_deleted(api: Any, store: Store) -> None:
    kept, dropped = new_agent(api, "kept"), new_agent(api, "dropped")
    changed = new_workflow(api, calling(kept, dropped))
    deleted = new_workflow(api, calling(kept))

    assert api.put(f"/api/workflows/{changed}", json_body=calling(kept)).status == 200
    agents.delete(store, ALICE, dropped)
    assert store.get_agent(dropped) is None
    with pytest.raises(Conflict, match=changed):
        agents.delete(store, ALICE, kept)

    assert api.delete(f"/api/workflows/{deleted}").status == 200
    assert api.delete(f"/api/workflows/{changed}").status == 200
    agents.delete(store, ALICE, kept)
    assert store.get_agent(kept) is None


def test_a_workflow_deleted_without_updating_its_agents_does_not_hold_them(api: Any, store: Store) -> None:
    agent = new_agent(api)
    workflow_id = new_workflow(api, calling(agent))
    # Given the process stopped between deleting the workflow and updating its agent
    store.delete_workflow(workflow_id)

    agents.delete(store, ALICE, agent)

    assert store.get_agent(agent) is None


def test_an_agent_update_keeps_its_users(api: Any, store: Store) -> None:
    agent = new_agent(api)
    new_workflow(api, calling(agent))

    assert (
        api.put(f"/api/agents/{agent}", json_body={"name": "renamed", "endpoint": "https://a.example.com"}).status
        == 200
    )

    with pytest.raises(Conflict, match="is used by workflow"):
        agents.delete(store, ALICE, agent)


def test_a_workflow_written_as_its_agent_is_deleted_is_refused(
    api: Any, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = new_agent(api)
    write = store.put_new_workflow

    def deleted_just_before(view: Any) -> None:
        agents.delete(store, ALICE, agent)
        write(view)

    monkeypatch.setattr(store, "put_new_workflow", deleted_just_before)

    with pytest.raises(InvalidWorkflow, match=f"agent {agent} does not exist"):
        workflows.create(store, ALICE, WorkflowInput.model_validate(calling(agent)))
    assert workflows.list_mine(store, ALICE, 10, None) == ([], None)


def test_a_workflow_may_call_at_most_so_many_agents(api: Any, store: Store) -> None:
    from stepwise.store.workflows import MAX_AGENTS

    many = [f"ag_01J{n:023d}" for n in range(MAX_AGENTS + 1)]

    with pytest.raises(InvalidWorkflow, match=f"calls {MAX_AGENTS + 1} different agents; the limit is {MAX_AGENTS}"):
        workflows.create(store, ALICE, WorkflowInput.model_validate(calling(*many)))


def test_workflows_written_before_usage_was_recorded_hold_their_agents_after_the_migration(
    api: Any, store: Store
) -> None:
    agent = new_agent(api)
    workflow_id = new_workflow(api, calling(agent))
    # Given an agent written by an older stack: no record of its users
    store.client.update_item(
        TableName=store.table,
        Key={"PK": {"S": f"AGENT#{agent}"}, "SK": {"S": "AGENT"}},
        UpdateExpression="REMOVE usedBy",
    )

    migrated = index_everything(store)

    assert migrated.agent_uses >= 1
    with pytest.raises(Conflict, match=workflow_id):
        agents.delete(store, ALICE, agent)
