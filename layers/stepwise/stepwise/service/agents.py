"""Agent definitions: the credential goes to Secrets Manager and is never returned or logged."""

from __future__ import annotations

from stepwise import ids, secrets
from stepwise.clock import now_iso
from stepwise.errors import AgentNotFound, Conflict
from stepwise.identity import Caller
from stepwise.models.agent import AgentInput, AgentRecord
from stepwise.models.workflow import WorkflowView
from stepwise.service.paging import callers_cursor
from stepwise.settings import get_settings
from stepwise.store import ConditionFailed, Store


def create(store: Store, caller: Caller, agent: AgentInput) -> AgentRecord:
    """Store a new agent (and its credential, if any)."""
    agent_id = ids.new_id("ag")
    credential_ref = None
    if agent.credential:
        credential_ref = secrets.put_credential(get_settings().secret_prefix, agent_id, agent.credential, None)
    timestamp = now_iso()
    record = AgentRecord(
        **agent.model_dump(mode="json", exclude={"credential"}),
        id=agent_id,
        owner=caller.sub,
        credentialRef=credential_ref,
        createdAt=timestamp,
        updatedAt=timestamp,
    )
    store.put_agent(record, new=True)
    return record


def get(store: Store, caller: Caller, agent_id: str) -> AgentRecord:
    """An agent the caller may read."""
    record = store.get_agent(agent_id) if ids.is_id(agent_id, "ag") else None
    if record is None:
        raise AgentNotFound(agent_id)
    caller.ensure_can_read(record.owner, f"agent {agent_id}")
    return record


def update(store: Store, caller: Caller, agent_id: str, agent: AgentInput) -> AgentRecord:
    """Replace an agent's definition; without ``credential`` the stored one is kept."""
    current = get(store, caller, agent_id)
    caller.ensure_owns(current.owner, f"agent {agent_id}")
    credential_ref = current.credentialRef
    if agent.credential:
        credential_ref = secrets.put_credential(
            get_settings().secret_prefix, agent_id, agent.credential, current.credentialRef
        )
    record = AgentRecord(
        **agent.model_dump(mode="json", exclude={"credential"}),
        id=agent_id,
        owner=current.owner,
        credentialRef=credential_ref,
        createdAt=current.createdAt,
        updatedAt=now_iso(),
    )
    try:
        store.put_agent(record, new=False)
    except ConditionFailed as error:
        raise Conflict(f"Agent {agent_id} was deleted meanwhile") from error
    return record


def delete(store: Store, caller: Caller, agent_id: str, *, force: bool = False) -> None:
    """Delete an agent and its credential; an agent that a workflow's current version calls is a 409 naming
    those workflows, unless ``force`` (their runs then fail at that node until the workflows are changed)."""
    current = get(store, caller, agent_id)
    caller.ensure_owns(current.owner, f"agent {agent_id}")
    if force:
        store.delete_agent(agent_id)
    else:
        _delete_unused(store, agent_id)
    if current.credentialRef:
        secrets.delete_credential(current.credentialRef)


# A deleted workflow is taken off its agents just after the delete; this many rounds see it through that.
_DELETE_ATTEMPTS = 3
_NAMED_AT_MOST = 10


def _delete_unused(store: Store, agent_id: str) -> None:
    for _ in range(_DELETE_ATTEMPTS):
        recorded = store.delete_agent(agent_id, unless_used=True)
        if not recorded:
            return
        users: list[WorkflowView] = []
        for workflow_id in sorted(recorded):
            workflow = store.get_workflow(workflow_id)
            if workflow is not None and agent_id in workflow.agent_ids():
                users.append(workflow)
            else:
                store.forget_agent_user(agent_id, workflow_id)  # deleted, or no longer calls it
        if users:
            named = ", ".join(f"{workflow.id} ({workflow.name})" for workflow in users[:_NAMED_AT_MOST])
            more = f" and {len(users) - _NAMED_AT_MOST} more" if len(users) > _NAMED_AT_MOST else ""
            raise Conflict(
                f"Agent {agent_id} is used by workflow{'s' if len(users) > 1 else ''} {named}{more}: change "
                "them first, or delete it anyway with force=true (their runs will fail at that node)"
            )
    raise Conflict(f"Agent {agent_id} kept being taken into use while it was deleted; try again")


def list_mine(store: Store, caller: Caller, limit: int, cursor: str | None) -> tuple[list[AgentRecord], str | None]:
    """The caller's agents, newest first."""
    with callers_cursor():
        return store.list_agents(caller.sub, limit, cursor)
