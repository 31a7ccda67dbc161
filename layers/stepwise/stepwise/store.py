"""The one module that reads and writes the DynamoDB table.

Key design (one table, ``PK``/``SK`` plus one GSI ``GSI1PK``/``GSI1SK`` for listings):

=========================  ====================  ===================  ==================================
item                       PK                    SK                   GSI1PK / GSI1SK
=========================  ====================  ===================  ==================================
workflow (current)         ``WORKFLOW#<id>``     ``WORKFLOW``         ``OWNER#<sub>#WORKFLOWS`` / id
workflow version (frozen)  ``WORKFLOW#<id>``     ``VERSION#<000001>``
agent                      ``AGENT#<id>``        ``AGENT``            ``OWNER#<sub>#AGENTS`` / id
execution                  ``EXECUTION#<id>``    ``EXECUTION``        ``OWNER#<sub>#WORKFLOW#<wf>`` / id
node run (+ its logs)      ``EXECUTION#<id>``    ``RUN#<000001>``
execution log lines        ``EXECUTION#<id>``    ``LOG#<time>#<rand>``
schedule                   ``WORKFLOW#<wf>``     ``SCHEDULE#<id>``
=========================  ====================  ===================  ==================================

Ids sort by creation time, so a GSI query with ``ScanIndexForward=False`` lists newest first. Node runs
and log lines are items of their own, so an execution with thousands of log lines never meets the
400 KB item limit. Variables, outputs and logs are stored as JSON strings: exact (no Decimal round
trip) and cheap to read. Every state change is a conditional write: a terminal state is never
overwritten.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError
from pydantic import BaseModel

from stepwise import aws
from stepwise.clock import now
from stepwise.errors import BadRequest, Conflict
from stepwise.models.agent import AgentRecord
from stepwise.models.execution import TERMINAL_STATES, LogLine
from stepwise.models.records import ActiveNode, ExecutionRecord, NodeRun
from stepwise.models.workflow import WorkflowDefinition, WorkflowView

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import PutTypeDef

Item = dict[str, Any]


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _json(value: Any) -> dict[str, str]:
    return {"S": json.dumps(value, separators=(",", ":"), ensure_ascii=False)}


def _attribute(value: str | bool | int | BaseModel) -> dict[str, Any]:
    if isinstance(value, BaseModel):
        return _json(value.model_dump(mode="json"))
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        return _n(value)
    return _s(value)


def _get_s(item: Item, name: str) -> str | None:
    value = item.get(name)
    return None if value is None else str(value["S"])


def _get_json(item: Item, name: str, default: Any = None) -> Any:
    value = item.get(name)
    return default if value is None else json.loads(value["S"])


def _is_conditional_failure(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code", "")
    return code in ("ConditionalCheckFailedException", "TransactionCanceledException")


def encode_cursor(key: Mapping[str, Any] | None) -> str | None:
    """An opaque, URL-safe cursor for a listing's LastEvaluatedKey."""
    if not key:
        return None
    plain = {name: value["S"] for name, value in key.items()}
    return base64.urlsafe_b64encode(json.dumps(plain, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, expected_keys: Iterable[str]) -> Item | None:
    """The ExclusiveStartKey a cursor stands for; a cursor that was not ours is a 400."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        plain = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(plain, dict) or set(plain) != set(expected_keys):
            raise ValueError(cursor)
        return {name: {"S": str(value)} for name, value in plain.items()}
    except (ValueError, binascii.Error) as error:
        raise BadRequest("cursor is not valid: pass the nextCursor of the previous page unchanged") from error


class Store:
    """Typed access to the table; every method is one or two DynamoDB calls."""

    def __init__(self, table_name: str) -> None:
        self.table = table_name
        self.client = aws.dynamodb()

    # --- workflows -------------------------------------------------------------------------------

    def _workflow_item(self, view: WorkflowView) -> Item:
        return {
            "PK": _s(f"WORKFLOW#{view.id}"),
            "SK": _s("WORKFLOW"),
            "GSI1PK": _s(f"OWNER#{view.owner}#WORKFLOWS"),
            "GSI1SK": _s(view.id),
            "owner": _s(view.owner),
            "version": _n(view.version),
            "createdAt": _s(view.createdAt),
            "updatedAt": _s(view.updatedAt),
            "definition": _json(view.definition_json()),
        }

    def _version_put(self, view: WorkflowView) -> PutTypeDef:
        definition = view.definition_json()
        return {
            "TableName": self.table,
            "Item": {
                "PK": _s(f"WORKFLOW#{view.id}"),
                "SK": _s(f"VERSION#{view.version:06d}"),
                "definition": _json(definition),
                "createdAt": _s(view.updatedAt),
            },
            "ConditionExpression": "attribute_not_exists(PK)",
        }

    def put_new_workflow(self, view: WorkflowView) -> None:
        """Store a new workflow and its version 1."""
        self.client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": self._workflow_item(view),
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }
                },
                {"Put": self._version_put(view)},
            ]
        )

    def put_workflow_version(self, view: WorkflowView) -> None:
        """Make ``view`` (version n) current, if the stored current version is still n - 1."""
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": self._workflow_item(view),
                            "ConditionExpression": "version = :previous",
                            "ExpressionAttributeValues": {":previous": _n(view.version - 1)},
                        }
                    },
                    {"Put": self._version_put(view)},
                ]
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                raise Conflict(f"Workflow {view.id} was changed or deleted meanwhile; read it and retry") from error
            raise

    @staticmethod
    def _workflow_view(item: Item) -> WorkflowView:
        definition = _get_json(item, "definition")
        return WorkflowView.model_validate(
            {
                **definition,
                "id": str(item["PK"]["S"]).removeprefix("WORKFLOW#"),
                "version": int(item["version"]["N"]),
                "owner": _get_s(item, "owner"),
                "createdAt": _get_s(item, "createdAt"),
                "updatedAt": _get_s(item, "updatedAt"),
            }
        )

    def get_workflow(self, workflow_id: str) -> WorkflowView | None:
        """The current version of a workflow, or None."""
        answer = self.client.get_item(
            TableName=self.table, Key={"PK": _s(f"WORKFLOW#{workflow_id}"), "SK": _s("WORKFLOW")}
        )
        item = answer.get("Item")
        return self._workflow_view(item) if item else None

    def get_workflow_version(self, workflow_id: str, version: int) -> WorkflowDefinition | None:
        """A frozen version of a workflow (cached: versions never change)."""
        return _cached_version(self.table, workflow_id, version)

    def delete_workflow(self, workflow_id: str) -> None:
        """Remove the workflow; its frozen versions stay for executions that still read them."""
        self.client.delete_item(TableName=self.table, Key={"PK": _s(f"WORKFLOW#{workflow_id}"), "SK": _s("WORKFLOW")})

    def list_workflows(self, owner: str, limit: int, cursor: str | None) -> tuple[list[WorkflowView], str | None]:
        """The owner's workflows, newest first."""
        items, next_cursor = self._query_index(f"OWNER#{owner}#WORKFLOWS", limit, cursor)
        return [self._workflow_view(item) for item in items], next_cursor

    # --- agents ----------------------------------------------------------------------------------

    def put_agent(self, agent: AgentRecord, *, new: bool) -> None:
        """Store an agent; ``new`` refuses to overwrite, otherwise it must exist."""
        item: Item = {
            "PK": _s(f"AGENT#{agent.id}"),
            "SK": _s("AGENT"),
            "GSI1PK": _s(f"OWNER#{agent.owner}#AGENTS"),
            "GSI1SK": _s(agent.id),
            "body": _json(agent.model_dump(mode="json")),
        }
        condition = "attribute_not_exists(PK)" if new else "attribute_exists(PK)"
        try:
            self.client.put_item(TableName=self.table, Item=item, ConditionExpression=condition)
        except ClientError as error:
            if _is_conditional_failure(error):
                raise Conflict(f"Agent {agent.id} was deleted meanwhile") from error
            raise

    def get_agent(self, agent_id: str) -> AgentRecord | None:
        """An agent, or None."""
        answer = self.client.get_item(TableName=self.table, Key={"PK": _s(f"AGENT#{agent_id}"), "SK": _s("AGENT")})
        item = answer.get("Item")
        return AgentRecord.model_validate(_get_json(item, "body")) if item else None

    def delete_agent(self, agent_id: str) -> None:
        """Remove an agent."""
        self.client.delete_item(TableName=self.table, Key={"PK": _s(f"AGENT#{agent_id}"), "SK": _s("AGENT")})

    def list_agents(self, owner: str, limit: int, cursor: str | None) -> tuple[list[AgentRecord], str | None]:
        """The owner's agents, newest first."""
        items, next_cursor = self._query_index(f"OWNER#{owner}#AGENTS", limit, cursor)
        return [AgentRecord.model_validate(_get_json(item, "body")) for item in items], next_cursor

    # --- executions ------------------------------------------------------------------------------

    def _execution_key(self, execution_id: str) -> Item:
        return {"PK": _s(f"EXECUTION#{execution_id}"), "SK": _s("EXECUTION")}

    def create_execution(self, record: ExecutionRecord) -> None:
        """Store a new PENDING execution."""
        item: Item = {
            **self._execution_key(record.id),
            "GSI1PK": _s(f"OWNER#{record.owner}#WORKFLOW#{record.workflowId}"),
            "GSI1SK": _s(record.id),
            "id": _s(record.id),
            "workflowId": _s(record.workflowId),
            "workflowVersion": _n(record.workflowVersion),
            "owner": _s(record.owner),
            "state": _s(record.state),
            "startedAt": _s(record.startedAt),
            "startedBy": _s(record.startedBy),
            "variables": _json(record.variables),
            "nodeRuns": _n(0),
            "maxNodeRuns": _n(record.maxNodeRuns),
            "pauseRequested": {"BOOL": False},
            "revision": _n(0),
        }
        if record.cursor:
            item["cursor"] = _s(record.cursor)
        self.client.put_item(TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(PK)")

    @staticmethod
    def _execution_record(item: Item) -> ExecutionRecord:
        active = item.get("activeNode")
        return ExecutionRecord(
            id=str(item["id"]["S"]),
            workflowId=str(item["workflowId"]["S"]),
            workflowVersion=int(item["workflowVersion"]["N"]),
            owner=str(item["owner"]["S"]),
            state=item["state"]["S"],
            startedAt=str(item["startedAt"]["S"]),
            completedAt=_get_s(item, "completedAt"),
            startedBy=str(item["startedBy"]["S"]),
            variables=_get_json(item, "variables", {}),
            error=_get_s(item, "error"),
            cursor=_get_s(item, "cursor"),
            nodeRuns=int(item["nodeRuns"]["N"]),
            maxNodeRuns=int(item["maxNodeRuns"]["N"]),
            activeNode=ActiveNode.model_validate(json.loads(active["S"])) if active else None,
            pauseRequested=bool(item.get("pauseRequested", {}).get("BOOL", False)),
            taskToken=_get_s(item, "taskToken"),
            revision=int(item["revision"]["N"]),
        )

    def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        """The execution item (strongly consistent), or None."""
        answer = self.client.get_item(TableName=self.table, Key=self._execution_key(execution_id), ConsistentRead=True)
        item = answer.get("Item")
        return self._execution_record(item) if item else None

    def execution_state(self, execution_id: str) -> str | None:
        """Just the state (a cheap read a node in flight makes to notice a cancel)."""
        answer = self.client.get_item(
            TableName=self.table,
            Key=self._execution_key(execution_id),
            ConsistentRead=True,
            ProjectionExpression="#state",
            ExpressionAttributeNames={"#state": "state"},
        )
        item = answer.get("Item")
        return _get_s(item, "state") if item else None

    def load_execution(self, execution_id: str) -> tuple[ExecutionRecord | None, list[NodeRun], list[LogLine]]:
        """The execution with all its node runs and execution-level log lines (one paginated query)."""
        record: ExecutionRecord | None = None
        runs: list[NodeRun] = []
        logs: list[LogLine] = []
        paginator = self.client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self.table,
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": _s(f"EXECUTION#{execution_id}")},
            ConsistentRead=True,
        )
        for page in pages:
            for item in page.get("Items", []):
                sort_key = str(item["SK"]["S"])
                if sort_key == "EXECUTION":
                    record = self._execution_record(item)
                elif sort_key.startswith("RUN#"):
                    runs.append(NodeRun.model_validate(_get_json(item, "body")))
                elif sort_key.startswith("LOG#"):
                    logs.extend(LogLine.model_validate(line) for line in _get_json(item, "logs", []))
        return record, runs, logs

    def list_executions(
        self, owner: str, workflow_id: str, state: str | None, limit: int, cursor: str | None
    ) -> tuple[list[ExecutionRecord], str | None]:
        """The owner's executions of a workflow, newest first, optionally in one state."""
        items, next_cursor = self._query_index(
            f"OWNER#{owner}#WORKFLOW#{workflow_id}", limit, cursor, state_filter=state
        )
        return [self._execution_record(item) for item in items], next_cursor

    def _query_index(
        self, partition: str, limit: int, cursor: str | None, state_filter: str | None = None
    ) -> tuple[list[Item], str | None]:
        start = decode_cursor(cursor, ("PK", "SK", "GSI1PK", "GSI1SK"))
        if start and start["GSI1PK"]["S"] != partition:
            raise BadRequest(
                "cursor is not valid for this listing: pass the nextCursor of this listing's previous page"
            )
        collected: list[Item] = []
        while True:
            request: dict[str, Any] = {
                "TableName": self.table,
                "IndexName": "GSI1",
                "KeyConditionExpression": "GSI1PK = :pk",
                "ExpressionAttributeValues": {":pk": _s(partition)},
                "ScanIndexForward": False,
                "Limit": limit - len(collected),
            }
            if state_filter:
                request["FilterExpression"] = "#state = :state"
                request["ExpressionAttributeNames"] = {"#state": "state"}
                request["ExpressionAttributeValues"][":state"] = _s(state_filter)
            if start:
                request["ExclusiveStartKey"] = start
            answer = self.client.query(**request)
            collected.extend(answer.get("Items", []))
            start = answer.get("LastEvaluatedKey")
            if not start or len(collected) >= limit:
                return collected, encode_cursor(start)

    def transition(
        self,
        execution_id: str,
        to_state: str,
        *,
        allowed_from: Sequence[str],
        set_values: Mapping[str, str | bool | int | BaseModel] | None = None,
        remove: Sequence[str] = (),
        pause_requested: bool | None = None,
        expected_revision: int | None = None,
    ) -> tuple[bool, ExecutionRecord | None]:
        """Move the execution to ``to_state`` only from ``allowed_from`` (and, when given, only while the pause
        request and the revision are as the caller read them).

        ``set_values`` are plain values (a model is stored as its JSON). Returns (True, the record before) on
        success, (False, the record as it is) when the condition failed, so the caller can say why.
        """
        names = {"#state": "state"}
        values: Item = {":to": _s(to_state)}
        assignments = ["#state = :to", "revision = revision + :one"]
        values[":one"] = _n(1)
        for index, state in enumerate(allowed_from):
            values[f":from{index}"] = _s(state)
        for index, (name, value) in enumerate((set_values or {}).items()):
            names[f"#f{index}"] = name
            values[f":v{index}"] = _attribute(value)
            assignments.append(f"#f{index} = :v{index}")
        if to_state in TERMINAL_STATES:
            retention = _retention_epoch()
            if retention:
                values[":expires"] = _n(retention)
                assignments.append("expiresAt = :expires")
        expression = "SET " + ", ".join(assignments)
        if remove:
            for index, name in enumerate(remove):
                names[f"#r{index}"] = name
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(remove)))
        condition = f"#state IN ({', '.join(f':from{i}' for i in range(len(allowed_from)))})"
        if pause_requested is not None:
            condition += " AND pauseRequested = :requested"
            values[":requested"] = {"BOOL": pause_requested}
        if expected_revision is not None:
            condition += " AND revision = :expected"
            values[":expected"] = _n(expected_revision)
        try:
            answer = self.client.update_item(
                TableName=self.table,
                Key=self._execution_key(execution_id),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not _is_conditional_failure(error):
                raise
            item = cast(Item | None, error.response.get("Item"))
            return False, self._execution_record(item) if item else None
        return True, self._execution_record(answer["Attributes"])

    def request_pause(self, execution_id: str, requested: bool, allowed_from: Sequence[str]) -> bool:
        """Set or clear the pause request, only while the execution is in ``allowed_from``."""
        values: Item = {":requested": {"BOOL": requested}}
        for index, state in enumerate(allowed_from):
            values[f":from{index}"] = _s(state)
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._execution_key(execution_id),
                UpdateExpression="SET pauseRequested = :requested",
                ConditionExpression=f"#state IN ({', '.join(f':from{i}' for i in range(len(allowed_from)))})",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                return False
            raise
        return True

    # --- the node runner's writes ----------------------------------------------------------------

    def claim_node(self, record: ExecutionRecord, active: ActiveNode) -> bool:
        """Mark ``active`` as the running node (and count the run), if nothing changed since ``record``."""
        increments = "nodeRuns = nodeRuns + :one, "
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._execution_key(record.id),
                UpdateExpression=f"SET {increments}activeNode = :active, revision = revision + :one",
                ConditionExpression="#state = :running AND revision = :revision AND pauseRequested = :no",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":one": _n(1),
                    ":active": _json(active.model_dump(mode="json")),
                    ":running": _s("RUNNING"),
                    ":revision": _n(record.revision),
                    ":no": {"BOOL": False},
                },
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                return False
            raise
        record.revision += 1
        record.nodeRuns += 1
        record.activeNode = active
        return True

    def _run_put(self, execution_id: str, run: NodeRun) -> PutTypeDef:
        return {
            "TableName": self.table,
            "Item": {
                "PK": _s(f"EXECUTION#{execution_id}"),
                "SK": _s(f"RUN#{run.run:06d}"),
                "body": _json(run.model_dump(mode="json")),
                **({"expiresAt": _n(r)} if (r := _retention_epoch(from_now=True)) else {}),
            },
        }

    def commit_node(
        self,
        record: ExecutionRecord,
        run: NodeRun,
        *,
        variables: Mapping[str, Any],
        cursor: str | None,
        finish: tuple[str, str | None] | None = None,
        count_run: bool = False,
    ) -> bool:
        """Record a finished node run, then the variables and cursor after it (conditionally).

        ``finish`` = (state, error) also ends the execution. Returns False when the execution is no
        longer RUNNING at this revision (canceled meanwhile): the execution item is left alone and the
        caller overwrites the run as canceled. Two plain writes rather than a transaction: half the write
        cost in DynamoDB, and moto copies the whole table for every transaction. The run goes first, so a
        crash between the writes leaves a run on record, never variables without the run behind them.
        """
        names = {"#state": "state"}
        values: Item = {
            ":variables": _json(dict(variables)),
            ":one": _n(1),
            ":running": _s("RUNNING"),
            ":revision": _n(record.revision),
        }
        assignments = ["variables = :variables", "revision = revision + :one"]
        if count_run:
            assignments.append("nodeRuns = nodeRuns + :one")
        removals = ["activeNode"]
        if cursor is None:
            removals.append("#cursor")
        else:
            assignments.append("#cursor = :cursor")
            values[":cursor"] = _s(cursor)
        names["#cursor"] = "cursor"
        if finish:
            state, error = finish
            assignments += ["#state = :final", "completedAt = :completed"]
            values[":final"] = _s(state)
            values[":completed"] = _s(run.completedAt or "")
            if error:
                assignments.append("#error = :error")
                names["#error"] = "error"
                values[":error"] = _s(error)
            if retention := _retention_epoch():
                assignments.append("expiresAt = :expires")
                values[":expires"] = _n(retention)
        self.put_node_run(record.id, run)
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._execution_key(record.id),
                UpdateExpression=f"SET {', '.join(assignments)} REMOVE {', '.join(removals)}",
                ConditionExpression="#state = :running AND revision = :revision",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                return False
            raise
        record.revision += 1
        return True

    def put_node_run(self, execution_id: str, run: NodeRun) -> None:
        """Record a node run on its own (a run whose result was discarded by a cancel)."""
        self.client.put_item(**self._run_put(execution_id, run))

    def append_logs(self, execution_id: str, lines: Sequence[LogLine]) -> None:
        """Add execution-level log lines (one item per call)."""
        if not lines:
            return
        item: Item = {
            "PK": _s(f"EXECUTION#{execution_id}"),
            "SK": _s(f"LOG#{lines[0].timestamp}#{secrets.token_hex(4)}"),
            "logs": _json([line.model_dump(mode="json") for line in lines]),
        }
        if retention := _retention_epoch(from_now=True):
            item["expiresAt"] = _n(retention)
        self.client.put_item(TableName=self.table, Item=item)

    def set_active_node(self, record: ExecutionRecord, active: ActiveNode, count_run: bool = False) -> bool:
        """Update the active node (a node that starts waiting), if nothing changed since ``record``."""
        increments = ", nodeRuns = nodeRuns + :one" if count_run else ""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._execution_key(record.id),
                UpdateExpression=f"SET activeNode = :active, revision = revision + :one{increments}",
                ConditionExpression="#state = :running AND revision = :revision",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":active": _json(active.model_dump(mode="json")),
                    ":one": _n(1),
                    ":running": _s("RUNNING"),
                    ":revision": _n(record.revision),
                },
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                return False
            raise
        record.revision += 1
        record.activeNode = active
        return True

    # --- raw items (schedules and other small records keep their body as JSON) --------------------

    def put_body(
        self,
        pk: str,
        sk: str,
        body: Mapping[str, Any],
        *,
        index: tuple[str, str] | None = None,
        condition: str | None = None,
    ) -> None:
        """Store a small JSON record under (pk, sk)."""
        item: Item = {"PK": _s(pk), "SK": _s(sk), "body": _json(dict(body))}
        if index:
            item["GSI1PK"], item["GSI1SK"] = _s(index[0]), _s(index[1])
        request: dict[str, Any] = {"TableName": self.table, "Item": item}
        if condition:
            request["ConditionExpression"] = condition
        try:
            self.client.put_item(**request)
        except ClientError as error:
            if _is_conditional_failure(error):
                raise Conflict("the record was changed meanwhile; retry") from error
            raise

    def get_body(self, pk: str, sk: str) -> dict[str, Any] | None:
        """The JSON record under (pk, sk), or None."""
        item = self.client.get_item(TableName=self.table, Key={"PK": _s(pk), "SK": _s(sk)}).get("Item")
        return dict(_get_json(item, "body")) if item else None

    def query_bodies(self, pk: str, sk_prefix: str) -> list[dict[str, Any]]:
        """Every JSON record under pk whose sort key starts with ``sk_prefix``."""
        paginator = self.client.get_paginator("query")
        bodies: list[dict[str, Any]] = []
        for page in paginator.paginate(
            TableName=self.table,
            KeyConditionExpression="PK = :pk AND begins_with(SK, :prefix)",
            ExpressionAttributeValues={":pk": _s(pk), ":prefix": _s(sk_prefix)},
        ):
            bodies.extend(dict(_get_json(item, "body")) for item in page.get("Items", []))
        return bodies

    def delete_item(self, pk: str, sk: str) -> None:
        """Delete one item."""
        self.client.delete_item(TableName=self.table, Key={"PK": _s(pk), "SK": _s(sk)})

    # --- compare-and-swap of a small JSON record (schedules) ------------------------------------------

    def replace_body(self, pk: str, sk: str, body: Mapping[str, Any], *, previous: Mapping[str, Any]) -> bool:
        """Overwrite the record under (pk, sk) only if it still holds ``previous`` (as ``get_body`` read it).

        False when it changed or was deleted meanwhile. ``previous`` serializes to the stored string exactly,
        because both are written by the same ``json.dumps`` from a dict in the same key order.
        """
        try:
            self.client.put_item(
                TableName=self.table,
                Item={"PK": _s(pk), "SK": _s(sk), "body": _json(dict(body))},
                ConditionExpression="#body = :previous",
                ExpressionAttributeNames={"#body": "body"},
                ExpressionAttributeValues={":previous": _json(dict(previous))},
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                return False
            raise
        return True


# A Standard Step Functions execution lasts at most a year: node runs and log lines, written while it runs,
# expire a year after that, and the execution item itself the retention period after it ends.
_LONGEST_RUN_DAYS = 366


def _retention_epoch(from_now: bool = False) -> int | None:
    """When an item expires (TTL); ``from_now`` is for items written while the execution may still run."""
    from stepwise.settings import get_settings

    days = get_settings().execution_retention_days
    if not days:
        return None
    return int(now().timestamp()) + (days + (_LONGEST_RUN_DAYS if from_now else 0)) * 86_400


_VERSIONS: dict[tuple[str, str, int], WorkflowDefinition] = {}


def _cached_version(table: str, workflow_id: str, version: int) -> WorkflowDefinition | None:
    # Versions are immutable, so a warm Lambda reads each one from DynamoDB once.
    key = (table, workflow_id, version)
    if key not in _VERSIONS:
        answer = aws.dynamodb().get_item(
            TableName=table, Key={"PK": _s(f"WORKFLOW#{workflow_id}"), "SK": _s(f"VERSION#{version:06d}")}
        )
        item = answer.get("Item")
        if not item:
            return None
        if len(_VERSIONS) > 256:
            _VERSIONS.clear()
        _VERSIONS[key] = WorkflowDefinition.model_validate(_get_json(item, "definition"))
    return _VERSIONS[key]


@cache
def _store_for(table: str) -> Store:
    return Store(table)


def forget_stores() -> None:
    """Drop the cached stores (their clients belong to an environment that changed)."""
    _store_for.cache_clear()


def default_store() -> Store:
    """The store of the configured table, built once per process (a warm Lambda reuses its client)."""
    from stepwise.settings import get_settings

    return _store_for(get_settings().table_name)


def terminal(state: str) -> bool:
    """True for COMPLETED, FAILED and CANCELED: states that never change again."""
    return state in TERMINAL_STATES


__all__ = ["Store", "decode_cursor", "encode_cursor", "terminal"]
