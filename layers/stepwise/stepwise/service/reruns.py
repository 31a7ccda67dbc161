"""Rerun an ended execution from any node, keeping what already ran.

A rerun is a new execution of the source's workflow, of the source's version (``"same"``, the default), the
workflow's current one (``"latest"``) or a given number, that begins at ``fromNode``:

- **Its variables** are the source's as they were just before ``fromNode``'s latest run began, rebuilt from the
  source's log (:func:`stepwise.replay.fold` of ``execution.started`` and every ``node.completed`` before it),
  with the chosen version's defaults for names the source never had, and the request's ``variables`` over them
  key by key.
- **What already ran is kept**: each node of the chosen version that completed in the source before that run
  began is not run again. The rerun's first group holds, after ``execution.started`` (with ``rerunOf``), one
  ``node.reused`` event per such node, with its times and output from the source (its latest completion
  before the cut), so ``nodeStates`` shows it COMPLETED and ``reused`` until it runs here (a loop may come
  back to it). A source that is a rerun itself passes on the nodes it reused.
- **Values S3 keeps** are copied, inside S3, under the rerun's own keys: the rerun never depends on the source's
  values, which expire with the source. A reused node's output too big to show inline stays what the source
  shows, a reference to the source's value.

Which run of a node that ran more than once (a loop): its **latest** run, the one that failed or was canceled
when there is one. With no ``fromNode``, the rerun begins at the node that failed, or that was running when the
source was canceled (its ``node.failed`` is in the group that ended the source); when there is none, where the
source began (its first node; a rerun's ``fromNode``), with the variables it began with and nothing reused
but what it reused itself. A ``fromNode`` must be a node of the chosen version that ran in the source (or where
the source began).

Then it is launched as any start is (:func:`stepwise.service.executions.launch`): watched, paused, canceled
and rerun like any execution. The source is never changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from stepwise import ids, limits
from stepwise.blobs import BlobNotFound, Blobs, value_key
from stepwise.errors import BadRequest, Conflict, WorkflowNotFound
from stepwise.identity import Caller
from stepwise.models.events import ALL_SET, Event, ValueRef, reference, shown_output
from stepwise.models.execution import TERMINAL_STATES, RerunOf, RerunRequest
from stepwise.models.records import ExecutionRecord, Group
from stepwise.models.workflow import WorkflowView
from stepwise.replay import fold
from stepwise.service import workflows
from stepwise.service.executions import Beginning, Idempotency, Runs, execution_record, launch
from stepwise.service.history import event
from stepwise.store import Store
from stepwise.store.values import json_bytes

# The rerun's first group holds every reused node's output: past this many bytes in all, the biggest are shown
# as references to the source's values (an item holds 400 KB; the inline variables take up to
# MAX_VARIABLES_BYTES of it, each reused node's times and id a little more).
REUSED_OUTPUTS_BYTES = 100_000
# The events that record a node's run as complete: its run, or its reuse by a rerun.
_COMPLETIONS = ("node.completed", "node.reused")


@dataclass(frozen=True)
class Cut:
    """Where a rerun begins in its source's log, and what it takes from before that point.

    ``variables`` are as they were there (a value S3 keeps as its :class:`ValueRef`); ``reused`` is, for each node
    that completed before it, its latest completion (``node.completed``, or ``node.reused`` in a source that is
    a rerun), in the order of those completions.
    """

    from_node: str
    variables: dict[str, Any]
    reused: list[Event]


@dataclass(frozen=True)
class Rerun:
    """A rerun as started: the new execution, its source, where it began, the version it runs."""

    workflow_id: str
    execution_id: str
    rerun_of: str
    from_node: str
    workflow_version: int


def failed_node(groups: Sequence[Group]) -> str | None:
    """The node that failed, or that was running when the execution was canceled (its ``node.failed`` is in the
    group that ended the execution), else None."""
    if not groups or not groups[-1].terminal:
        return None
    failed = (each.nodeId for each in reversed(groups[-1].events) if each.type == "node.failed")
    return next(failed, None)


def began_at(events: Sequence[Event], first_node: str) -> str:
    """Where an execution began: a rerun's ``fromNode``, else its version's first node."""
    started = events[0] if events else None
    return started.rerunOf.fromNode if started and started.rerunOf else first_node


def cut(source_id: str, events: Sequence[Event], from_node: str | None, *, begin_node: str) -> Cut:
    """Where a rerun of ``from_node`` begins in the source's ``events``: just before its latest run started.

    ``from_node`` None, or a node that never started and is where the source began (``begin_node``): before
    the source's first node run. ``BadRequest`` for a node the source never ran.
    """
    starts = [each.seq for each in events if each.type == "node.started" and each.nodeId == from_node]
    if from_node is not None and starts:
        before = starts[-1]
    elif from_node is None or from_node == begin_node:
        from_node = begin_node
        before = next((each.seq for each in events if each.type == "node.started"), len(events) + 1)
    elif any(each.type == "node.reused" and each.nodeId == from_node for each in events):
        origin = events[0].rerunOf.executionId if events[0].rerunOf else "its source"
        raise BadRequest(
            f"fromNode: node '{from_node}' did not run in execution {source_id}, which reused it from {origin}: "
            f"rerun {origin} from it"
        )
    else:
        raise BadRequest(f"fromNode: execution {source_id} never reached node '{from_node}'; it cannot begin there")
    variables: dict[str, Any] = {}
    latest: dict[str, Event] = {}
    for each in events:
        if each.seq >= before:
            break
        fold(variables, each)
        if each.type in _COMPLETIONS and each.nodeId and each.nodeId != from_node:
            latest.pop(each.nodeId, None)  # in the order of the latest completions
            latest[each.nodeId] = each
    return Cut(from_node, variables, list(latest.values()))


# --- what the rerun's first group holds --------------------------------------------------------------


def _shown(source_id: str, completion: Event) -> Any:
    """A completed node's output as the source shows it (a reused one's is stored as shown already)."""
    return completion.output if completion.type == "node.reused" else shown_output(completion, source_id)


def _referenced(source_id: str, completion: Event) -> Any:
    """A completed node's output as references to the source's values (None: it is not one of them)."""
    if completion.type != "node.completed" or completion.outputFrom is None:
        return None
    values = completion.set_variables()

    def to(name: str) -> dict[str, Any]:
        value = values[name]
        size = value.bytes if isinstance(value, ValueRef) else json_bytes(value)
        return reference(source_id, name, completion.seq, size)

    if completion.outputFrom == ALL_SET:
        return {name: to(name) for name in values}
    return to(completion.outputFrom) if completion.outputFrom in values else None


def reused_events(source_id: str, completions: Sequence[Event], node_ids: set[str]) -> list[Event]:
    """One ``node.reused`` per completion of a node in ``node_ids``, with the source's times and output.

    Past :data:`REUSED_OUTPUTS_BYTES` of outputs in all, the biggest are references to the source's values.
    """
    kept = [each for each in completions if each.nodeId in node_ids]
    outputs = [_shown(source_id, each) for each in kept]
    sizes = [json_bytes(output) for output in outputs]
    total = sum(sizes)
    for index in sorted(range(len(kept)), key=lambda at: sizes[at], reverse=True):
        if total <= REUSED_OUTPUTS_BYTES:
            break
        if (referenced := _referenced(source_id, kept[index])) is not None:
            total += json_bytes(referenced) - sizes[index]
            outputs[index] = referenced
    return [
        event(
            "node.reused",
            nodeId=each.nodeId,
            startedAt=each.startedAt,
            completedAt=each.at if each.type == "node.completed" else each.completedAt,
            output=output,
        )
        for each, output in zip(kept, outputs, strict=True)
    ]


def carried_variables(
    blobs: Blobs, execution_id: str, variables: dict[str, Any], inline_budget: int
) -> tuple[dict[str, Any], dict[str, ValueRef]]:
    """The rerun's variables: those its first group holds, and those S3 keeps, under the rerun's own keys.

    A value the source keeps in S3 is copied within S3. The inline ones go in one item with the reused nodes: past
    ``inline_budget`` bytes (a start's limit), the biggest go to S3 too. ``Conflict`` when a source's value is
    gone from S3 (expired): the request may set it instead.
    """
    inline = {name: value for name, value in variables.items() if not isinstance(value, ValueRef)}
    refs: dict[str, ValueRef] = {}
    for name, value in variables.items():
        if not isinstance(value, ValueRef):
            continue
        key = value_key(execution_id, 1, name)
        try:
            blobs.copy(value.key, key)
        except BlobNotFound as error:
            raise Conflict(
                f"the value of variable '{name}' is no longer kept (expired?); set it in the rerun's variables"
            ) from error
        refs[name] = ValueRef(key=key, bytes=value.bytes)
    for name in sorted(inline, key=lambda each: json_bytes(inline[each]), reverse=True):
        if limits.json_size(inline) <= inline_budget:
            break
        key = value_key(execution_id, 1, name)
        refs[name] = ValueRef(key=key, bytes=blobs.put_json(key, inline.pop(name)))
    return inline, refs


# --- the use case ------------------------------------------------------------------------------------


def _version(store: Store, caller: Caller, source: ExecutionRecord, version: str | int) -> WorkflowView:
    """The workflow version the rerun runs: the source's, the current one, or a number."""
    try:
        current = workflows.get_owned(store, caller, source.workflowId)
    except WorkflowNotFound as error:
        raise Conflict(
            f"Execution {source.id} cannot be rerun: its workflow {source.workflowId} was deleted"
        ) from error
    number = source.workflowVersion if version == "same" else current.version if version == "latest" else version
    if number == current.version:
        return current
    definition = store.get_workflow_version(current.id, int(number)) if int(number) < current.version else None
    if definition is None:
        raise BadRequest(
            f"version: workflow {current.id} has no version {number}; its versions are 1 to {current.version}"
        )
    return WorkflowView(
        **definition.model_dump(),
        id=current.id,
        version=int(number),
        owner=current.owner,
        createdAt=current.createdAt,
        updatedAt=current.updatedAt,
    )


def _check_patch(variables: dict[str, Any], runs: Runs) -> None:
    """The request's variables keep to what a start's do."""
    if limits.depth(variables) > limits.MAX_DEPTH:
        raise BadRequest(f"variables are nested too deeply; the limit is {limits.MAX_DEPTH} levels")
    size = limits.json_size(variables)
    if size > runs.max_variables_bytes:
        raise BadRequest(f"variables are {size} bytes; the limit is {runs.max_variables_bytes}")


def _rerun(
    store: Store, runs: Runs, blobs: Blobs, caller: Caller, source: ExecutionRecord, request: RerunRequest
) -> Rerun:
    groups = list(store.groups_after(source.id, 0))
    state = groups[-1].control.state if groups else source.state
    if state not in TERMINAL_STATES:
        raise Conflict(
            f"Execution {source.id} is {state}; only a COMPLETED, FAILED or CANCELED execution can be rerun "
            "(cancel it first, or wait for its end)"
        )
    _check_patch(request.variables, runs)
    workflow = _version(store, caller, source, request.version)
    events = [each for group in groups for each in group.events]
    source_version = store.get_workflow_version(source.workflowId, source.workflowVersion)
    begin_node = began_at(events, source_version.nodes[0].id if source_version else workflow.nodes[0].id)
    from_node = request.fromNode or failed_node(groups)
    node_ids = [node.id for node in workflow.nodes]
    if (from_node or begin_node) not in node_ids:
        raise BadRequest(
            f"fromNode: node '{from_node or begin_node}' is not in version {workflow.version} of workflow "
            f"{workflow.id}; its nodes are {', '.join(node_ids)}"
        )
    where = cut(source.id, events, from_node, begin_node=begin_node)
    execution_id = ids.new_id("exe")
    variables = {**workflow.variables, **where.variables, **request.variables}
    inline, refs = carried_variables(blobs, execution_id, variables, runs.max_variables_bytes)
    rerun_of = RerunOf(executionId=source.id, fromNode=where.from_node)
    beginning = Beginning(
        node_id=where.from_node,
        rerun_of=rerun_of,
        refs=refs,
        events=tuple(reused_events(source.id, where.reused, set(node_ids))),
    )
    launch(
        store,
        runs,
        workflow,
        inline,
        owner=caller.sub,
        started_by=caller.sub,
        started_by_name=caller.display_name,
        execution_id=execution_id,
        beginning=beginning,
    )
    return Rerun(workflow.id, execution_id, source.id, where.from_node, workflow.version)


@cache
def _idempotent_rerun(idempotency: Idempotency) -> tuple[Any, Any]:
    """``_rerun`` behind Powertools idempotency: one rerun per (owner, source, Idempotency-Key)."""

    def rerun_once(
        request: dict[str, Any], store: Store, runs: Runs, blobs: Blobs, caller: Caller, source: ExecutionRecord
    ) -> dict[str, Any]:
        body = RerunRequest.model_validate(request["body"])
        return vars(_rerun(store, runs, blobs, caller, source, body))

    return idempotency.once(rerun_once, key="[owner, executionId, idempotencyKey]", payload="body")


def rerun(
    store: Store,
    runs: Runs,
    idempotency: Idempotency,
    blobs: Blobs,
    caller: Caller,
    execution_id: str,
    request: RerunRequest,
    idempotency_key: str | None,
    lambda_context: Any = None,
) -> Rerun:
    """Start a rerun of the caller's ended execution (module docstring); a repeated ``Idempotency-Key`` returns
    the first rerun.

    404 for an unknown execution, 403 for someone else's, 409 while it has not ended, 400 for a ``fromNode`` or
    ``version`` it cannot take. ``lambda_context`` lets an in-progress idempotency record expire with the
    invocation that wrote it.
    """
    source = execution_record(store, execution_id)
    caller.ensure_owns(source.owner, f"execution {execution_id}")
    if not idempotency_key:
        return _rerun(store, runs, blobs, caller, source, request)
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    rerun_once, config = _idempotent_rerun(idempotency)
    if lambda_context is not None:
        config.register_lambda_context(lambda_context)
    keyed = {
        "owner": caller.sub,
        "executionId": execution_id,
        "idempotencyKey": idempotency_key,
        "body": request.model_dump(mode="json"),
    }
    try:
        result: dict[str, Any] = rerun_once(
            request=keyed, store=store, runs=runs, blobs=blobs, caller=caller, source=source
        )
    except IdempotencyValidationError as error:
        raise Conflict("Idempotency-Key was already used for a rerun with a different body; use a new key") from error
    except IdempotencyAlreadyInProgressError as error:
        raise Conflict("A rerun with this Idempotency-Key is in progress; retry in a moment") from error
    return Rerun(**result)
