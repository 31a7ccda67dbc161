"""Workflow definitions: create, read, list, new versions (deleting one is :mod:`stepwise.service.workflow_removal`)."""

from __future__ import annotations

from collections.abc import Callable

from stepwise import ids
from stepwise.clock import now_iso
from stepwise.errors import Conflict, InvalidWorkflow, WorkflowNotFound
from stepwise.identity import Caller
from stepwise.models.workflow import WorkflowDefinition, WorkflowView
from stepwise.nodes.definitions import WorkflowInput, check_definition
from stepwise.service.paging import callers_cursor
from stepwise.store import ConditionFailed, Store
from stepwise.store.workflows import MAX_AGENTS

# A version is one DynamoDB item (400 KB at most), stored twice (current and frozen version).
MAX_DEFINITION_BYTES = 300_000


def _check_size(definition: WorkflowDefinition) -> None:
    size = len(definition.model_dump_json().encode())
    if size > MAX_DEFINITION_BYTES:
        raise InvalidWorkflow(f"the definition is {size} bytes; the limit is {MAX_DEFINITION_BYTES}")


def _check_agents(store: Store, caller: Caller, definition: WorkflowDefinition) -> None:
    used = definition.agent_ids()
    if len(used) > MAX_AGENTS:
        raise InvalidWorkflow(f"the workflow calls {len(used)} different agents; the limit is {MAX_AGENTS}")
    agents = {agent_id: store.get_agent(agent_id) if ids.is_id(agent_id, "ag") else None for agent_id in used}
    for index, node in enumerate(definition.nodes):
        if node.type != "agentTask":
            continue
        agent_id = str(node.config["agentId"])
        agent = agents[agent_id]
        where = f"nodes[{index}] (id '{node.id}'): config.agentId"
        if agent is None:
            raise InvalidWorkflow(f"{where}: agent {agent_id} does not exist")
        if agent.owner != caller.sub:
            raise InvalidWorkflow(f"{where}: agent {agent_id} belongs to someone else")


def _stored(store: Store, caller: Caller, view: WorkflowView, write: Callable[[], None]) -> None:
    """Make the write; when its transaction fails, say whether an agent went meanwhile or the workflow changed."""
    try:
        write()
    except ConditionFailed as error:
        _check_agents(store, caller, view)  # an agent deleted meanwhile: a 400 that names it
        raise Conflict(f"Workflow {view.id} was changed or deleted meanwhile; read it and retry") from error


def create(store: Store, caller: Caller, definition: WorkflowInput) -> WorkflowView:
    """Store a new workflow at version 1, once the definition passes every check of a write."""
    check_definition(definition)
    _check_size(definition)
    _check_agents(store, caller, definition)
    timestamp = now_iso()
    view = WorkflowView(
        **definition.model_dump(),
        id=ids.new_id("wf"),
        version=1,
        owner=caller.sub,
        createdAt=timestamp,
        updatedAt=timestamp,
    )
    _stored(store, caller, view, lambda: store.put_new_workflow(view))
    return view


def get(store: Store, caller: Caller, workflow_id: str) -> WorkflowView:
    """A workflow the caller may read."""
    view = store.get_workflow(workflow_id) if ids.is_id(workflow_id, "wf") else None
    if view is None:
        raise WorkflowNotFound(workflow_id)
    caller.ensure_can_read(view.owner, f"workflow {workflow_id}")
    return view


def get_owned(store: Store, caller: Caller, workflow_id: str) -> WorkflowView:
    """A workflow the caller owns (to change it or run it)."""
    view = get(store, caller, workflow_id)
    caller.ensure_owns(view.owner, f"workflow {workflow_id}")
    return view


def update(store: Store, caller: Caller, workflow_id: str, definition: WorkflowInput) -> WorkflowView:
    """Store the definition as the workflow's next version, once it passes every check of a write.

    Runs in flight keep the version they started with.
    """
    # Checked before the workflow is read, like the body's shape: a bad definition is a 400 whatever it updates.
    check_definition(definition)
    current = get_owned(store, caller, workflow_id)
    _check_size(definition)
    _check_agents(store, caller, definition)
    view = WorkflowView(
        **definition.model_dump(),
        id=current.id,
        version=current.version + 1,
        owner=current.owner,
        createdAt=current.createdAt,
        updatedAt=now_iso(),
    )
    # The agents it stops calling, that still exist (one deleted with force=true has no users to update).
    dropped = [agent for agent in set(current.agent_ids()) - set(view.agent_ids()) if store.get_agent(agent)]
    _stored(store, caller, view, lambda: store.put_workflow_version(view, dropped))
    return view


def list_mine(store: Store, caller: Caller, limit: int, cursor: str | None) -> tuple[list[WorkflowView], str | None]:
    """The caller's workflows, newest first."""
    with callers_cursor():
        return store.list_workflows(caller.sub, limit, cursor)
