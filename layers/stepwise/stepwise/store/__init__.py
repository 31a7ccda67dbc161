"""The one package that reads and writes the DynamoDB table.

Key design (one table, ``PK``/``SK`` plus two GSIs for listings, ``GSI1PK``/``GSI1SK`` and ``GSI2PK``/``GSI2SK``,
and one of the executions in flight, ``GSI3PK``/``GSI3SK``):

=========================  ====================  ======================  ==================================
item                       PK                    SK                      GSI1PK / GSI1SK
=========================  ====================  ======================  ==================================
workflow (current)         ``WORKFLOW#<id>``     ``WORKFLOW``            ``OWNER#<sub>#WORKFLOWS`` / id
workflow version (frozen)  ``WORKFLOW#<id>``     ``VERSION#<000001>``
agent (+ ``usedBy``)       ``AGENT#<id>``        ``AGENT``               ``OWNER#<sub>#AGENTS`` / id
execution (summary)        ``EXECUTION#<id>``    ``EXECUTION``           ``OWNER#<sub>#WORKFLOW#<wf>`` / id
execution log: a group     ``EXECUTION#<id>``    ``EVENT#<first seq>``
variable (top level)       ``EXECUTION#<id>``    ``VAR#<name>``
node's latest run          ``EXECUTION#<id>``    ``NODE#<nodeId>``
schedule                   ``WORKFLOW#<wf>``     ``SCHEDULE#<id>``
a keyed start's id         ``START#<hash>``      ``START``
queue entry (waiting run)  ``QUEUE#<sub>``       ``<queuedAt>#<exe id>``
=========================  ====================  ======================  ==================================

An execution in flight is also in ``GSI3`` (``STATE#<state>`` / id, keys only), which the reconciler reads; it
leaves it when it ends. A start with an ``Idempotency-Key`` reserves its execution id under ``START#<hash of
owner, workflow, key>`` before the execution is recorded (``ExecutionStore.reserve_execution_id``), so a retry
after a crash finds the same execution.

Concurrency slot counters (:mod:`~stepwise.store.slots`): ``SLOTS#OWNER#<sub>`` (the owner's) and
``SLOTS#OWNER#<sub>#WORKFLOW#<wf>`` (a workflow's with a limit), both with ``SK = SLOTS``.

**An execution is its log.** Every change of an execution is one *group* appended to its log
(:mod:`~stepwise.store.history`): the events of that change, numbered (``seq`` 1, 2, 3, ... with no gap), and
the control state after them (state, cursor, node-run count, flags, the active node: no variables). The
append is the one conditional write of a change: a PutItem of ``EVENT#<first seq, 10 digits>`` on
``attribute_not_exists(SK)``, where ``first`` is one past the newest group the writer read. Two writers that read
the same newest group try the same key: one wins, the other reads again and decides anew (a cancel it now
sees wins). So seq numbers are never reused nor out of order, and nothing is appended after a terminal event.
The newest group is the hot item: one strongly consistent Query (``EVENT#`` descending, Limit 1) reads the
control state, about 1 KB whatever the variables weigh.

Every other item of an execution is a *projection* of the log, written after its group, each on the
condition that it holds an older ``seq`` (so a projection written twice, late or out of order changes
nothing): ``EXECUTION`` (who started what, and the state, pause request, error and end, for listings and the
reconciler's ``GSI3``; written only when one of those changes, and ``taskToken`` while PAUSED), ``VAR#<name>`` (one
variable: a node writes only those it set) and ``NODE#<nodeId>`` (a node's latest run and how many runs).
A crash between a group and its projections loses nothing: the writer that comes after a failure (a retried
step, the failure path, the API's next change) writes the newest group's projections again, and GET writes
the ``EXECUTION`` item again when it lags behind the newest group. A group that changes more than a few items
(the node runs of a batch of instant nodes) is projected in batches: BatchGetItem and BatchWriteItem, without
conditions, then a check that no newer group was appended meanwhile (:meth:`ExecutionStore.project`). Per node
that sets one small variable: under 3 WCU (its share of the group, the variable, the node run) and 2 RCU.

A value over the inline threshold is kept whole in S3 (:mod:`stepwise.blobs`) and referenced from the
event and the ``VAR#`` item. Everything else is stored as JSON strings: exact (no Decimal round trip) and
cheap to read.

An execution is listed twice, by its ``EXECUTION`` item: ``GSI1`` by owner and workflow, ``GSI2`` under
``OWNER#<sub>#EXECUTIONS`` / id (every run of an owner). Ids sort by creation time, so a GSI query with
``ScanIndexForward=False`` lists newest first, and a range of times is a range of ids
(``executions.ExecutionQuery``): each listing is one Query on one partition, never a Scan. An agent's ``usedBy``
names the workflows whose current version calls it (``agents``), so an agent in use is not deleted.

Modules: ``codec`` (the wire format, through boto3's TypeSerializer/TypeDeserializer), ``table`` (every
DynamoDB call, and botocore's errors turned into ``errors``), ``listings`` and ``cursors`` (a listing's
Query and the cursors bound to it), and one module per aggregate: ``workflows``, ``agents``, ``history`` (an
execution's log), ``values`` (its variables and node runs), ``executions`` (its summary, and the commit of a
change: the group, then its projections), ``slots`` (concurrency slots and queues, written with the groups that
take, give back or wait for them), ``bodies`` (small JSON records: schedules). ``Store`` is all of them
over one table. ``migrations`` brings a table written by an older stack up to these keys.
"""

from __future__ import annotations

from stepwise.models.execution import TERMINAL_STATES
from stepwise.store.agents import AgentStore
from stepwise.store.bodies import BodyStore
from stepwise.store.cursors import decode_cursor, encode_cursor
from stepwise.store.errors import (
    ConditionFailed,
    InvalidCursor,
    ItemTooLarge,
    StorageError,
    Throttled,
    ValidationFailed,
)
from stepwise.store.executions import ExecutionQuery, ExecutionStore
from stepwise.store.history import SeqTaken
from stepwise.store.slots import LimitReached, SlotStore
from stepwise.store.workflows import WorkflowStore


class Store(WorkflowStore, AgentStore, ExecutionStore, SlotStore, BodyStore):
    """Typed access to the table: every aggregate's methods on one object (one client, one table name).

    ``Store(table_name, retention_days=n)``: ``n`` days after an execution ends, its items expire (0: never);
    ``client=`` another DynamoDB client than the process's. The composition root (:mod:`stepwise.wiring`)
    builds the one each function uses, from its settings.
    """


def terminal(state: str) -> bool:
    """True for COMPLETED, FAILED and CANCELED: states that never change again."""
    return state in TERMINAL_STATES


__all__ = [
    "ConditionFailed",
    "ExecutionQuery",
    "InvalidCursor",
    "ItemTooLarge",
    "LimitReached",
    "SeqTaken",
    "StorageError",
    "Store",
    "Throttled",
    "ValidationFailed",
    "decode_cursor",
    "encode_cursor",
    "terminal",
]
