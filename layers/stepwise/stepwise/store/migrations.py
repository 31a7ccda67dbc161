"""One-off migrations of items written before a change of the key design: run once after such a deploy.

``index_everything`` brings a table written by an older stack up to today's keys:

- executions get their ``GSI2`` key (listing by owner alone, ``GET /api/executions``); without it they are
  still listed by workflow, but not across workflows;
- executions in flight get their ``GSI3`` key (by state), so the reconciler finds them;
- agents get ``usedBy``, the workflows whose current version calls them, so that deleting an agent in use
  is refused;
- executions written before the event log (variables on the execution item, ``RUN#`` and ``LOG#`` items) get
  their log, variables and node runs (:mod:`stepwise.store.legacy_executions`); until then their GET is a 404
  that says to run this.

It reads the whole table once (a Scan: this is the one place that may) and writes only what is missing, each
write conditional, so running it twice, or while the API serves requests, is harmless. Usage, with the
credentials of someone allowed to read and write the table::

    python -m stepwise.store.migrations --table <StepwiseTableName>
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from stepwise.models.execution import TERMINAL_STATES
from stepwise.models.workflow import WorkflowView
from stepwise.store.agents import used_by
from stepwise.store.errors import ConditionFailed
from stepwise.store.executions import EXECUTION, ExecutionStore, index_keys, state_keys
from stepwise.store.legacy_executions import log_execution, needs_log
from stepwise.store.table import Table
from stepwise.store.workflows import CURRENT, workflow_view


@dataclass
class Migrated:
    """How many items a migration changed."""

    executions: int = 0
    agent_uses: int = 0
    logs: int = 0
    in_flight: int = 0


def index_everything(table: Table) -> Migrated:
    """Add the ``GSI2`` key to executions that lack it (and the ``GSI3`` key to those in flight), record every
    workflow on the agents it calls, and give executions written before the event log their log."""
    done = Migrated()
    store = ExecutionStore(table.table, retention_days=table.retention_days, client=table.client)
    items = table.scan(
        "(SK = :execution AND (attribute_not_exists(GSI2PK) OR attribute_not_exists(seq)"
        " OR (attribute_not_exists(GSI3PK) AND #state IN (:pending, :running, :paused)))) OR SK = :workflow",
        values={
            ":execution": EXECUTION,
            ":workflow": CURRENT,
            ":pending": "PENDING",
            ":running": "RUNNING",
            ":paused": "PAUSED",
        },
        names={"#state": "state"},
    )
    for item in items:
        if item["SK"] != EXECUTION:
            done.agent_uses += _record_agent_uses(table, workflow_view(item))
            continue
        if "GSI2PK" not in item:
            done.executions += _index_execution(table, item)
        if needs_log(item):
            done.logs += log_execution(store, item)
        elif "GSI3PK" not in item and item.get("state") not in TERMINAL_STATES:
            done.in_flight += _index_in_flight(table, item)
    return done


def _index_in_flight(table: Table, item: dict[str, object]) -> int:
    keys = state_keys(str(item["id"]), str(item["state"]))
    try:
        table.update(
            str(item["PK"]),
            EXECUTION,
            expression="SET GSI3PK = :pk, GSI3SK = :sk",
            condition="attribute_exists(PK) AND attribute_not_exists(GSI3PK) AND #state = :state",
            names={"#state": "state"},
            values={":pk": keys["GSI3PK"], ":sk": keys["GSI3SK"], ":state": item["state"]},
        )
    except ConditionFailed:
        return 0  # it ended, or was indexed, meanwhile
    return 1


def _index_execution(table: Table, item: dict[str, object]) -> int:
    keys = index_keys(str(item["owner"]), str(item["workflowId"]), str(item["id"]))
    try:
        table.update(
            str(item["PK"]),
            EXECUTION,
            expression="SET GSI2PK = :pk, GSI2SK = :sk",
            condition="attribute_exists(PK) AND attribute_not_exists(GSI2PK)",
            values={":pk": keys["GSI2PK"], ":sk": keys["GSI2SK"]},
        )
    except ConditionFailed:
        return 0  # expired, or indexed meanwhile
    return 1


def _record_agent_uses(table: Table, view: WorkflowView) -> int:
    recorded = 0
    for agent_id in view.agent_ids():
        try:
            table.apply(used_by(agent_id, view.id))
        except ConditionFailed:
            continue  # the agent is gone: nothing to protect
        recorded += 1
    return recorded


def main(argv: list[str] | None = None) -> int:
    """``python -m stepwise.store.migrations --table NAME``: migrate that table, print what changed."""
    parser = argparse.ArgumentParser(
        prog="python -m stepwise.store.migrations",
        description="Bring a table written by an older stack up to today's keys.",
    )
    parser.add_argument("--table", required=True, help="the stack's StepwiseTableName output")
    arguments = parser.parse_args(argv)
    done = index_everything(Table(arguments.table))
    print(
        f"executions indexed by owner: {done.executions}; agent uses recorded: {done.agent_uses}; "
        f"executions given their event log: {done.logs}; executions in flight indexed by state: {done.in_flight}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
