"""The one package that reads and writes the DynamoDB table.

Key design (one table, ``PK``/``SK`` plus two GSIs for listings, ``GSI1PK``/``GSI1SK`` and ``GSI2PK``/``GSI2SK``):

=========================  ====================  ===================  ===================================
item                       PK                    SK                   GSI1PK / GSI1SK
=========================  ====================  ===================  ===================================
workflow (current)         ``WORKFLOW#<id>``     ``WORKFLOW``         ``OWNER#<sub>#WORKFLOWS`` / id
workflow version (frozen)  ``WORKFLOW#<id>``     ``VERSION#<000001>``
agent (+ ``usedBy``)       ``AGENT#<id>``        ``AGENT``            ``OWNER#<sub>#AGENTS`` / id
execution                  ``EXECUTION#<id>``    ``EXECUTION``        ``OWNER#<sub>#WORKFLOW#<wf>`` / id
node run (+ its logs)      ``EXECUTION#<id>``    ``RUN#<000001>``
execution log lines        ``EXECUTION#<id>``    ``LOG#<time>#<rand>``
schedule                   ``WORKFLOW#<wf>``     ``SCHEDULE#<id>``
=========================  ====================  ===================  ===================================

An execution is also in ``GSI2`` under ``OWNER#<sub>#EXECUTIONS`` / id: every run of an owner, whatever
the workflow. Ids sort by creation time, so a GSI query with ``ScanIndexForward=False`` lists newest first,
and a range of times is a range of ids (``executions.ExecutionQuery``): each listing is one Query on one
partition, never a Scan. An agent's ``usedBy`` names the workflows whose current version calls it
(``agents``), so an agent in use is not deleted. Node runs and log lines are items of their own, so an
execution with thousands of log lines never meets the 400 KB item limit. Variables, outputs and logs are
stored as JSON strings: exact (no Decimal round trip) and cheap to read. Every state change is a conditional
write: a terminal state is never overwritten.

Modules: ``codec`` (the wire format, through boto3's TypeSerializer/TypeDeserializer), ``table`` (every
DynamoDB call, and botocore's errors turned into ``errors``), ``listings`` and ``cursors`` (a listing's
Query and the cursors bound to it), and one module per aggregate: ``workflows``, ``agents``,
``executions`` (with node runs and log lines), ``bodies`` (small JSON records: schedules). ``Store`` is all of
them over one table. ``migrations`` brings a table written by an older stack up to these keys.
"""

from __future__ import annotations

from functools import cache

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
from stepwise.store.workflows import WorkflowStore


class Store(WorkflowStore, AgentStore, ExecutionStore, BodyStore):
    """Typed access to the table: every aggregate's methods on one object (one client, one table name).

    ``Store(table_name, retention_days=n)``: ``n`` days after an execution ends, its items expire (0: never);
    ``client=`` another DynamoDB client than the process's.
    """


@cache
def _store_for(table: str, retention_days: int) -> Store:
    return Store(table, retention_days=retention_days)


def forget_stores() -> None:
    """Drop the cached stores (their clients belong to an environment that changed)."""
    _store_for.cache_clear()


def default_store() -> Store:
    """The store of the configured table, built once per process (a warm Lambda reuses its client)."""
    from stepwise.settings import get_settings

    settings = get_settings()
    return _store_for(settings.table_name, settings.execution_retention_days)


def terminal(state: str) -> bool:
    """True for COMPLETED, FAILED and CANCELED: states that never change again."""
    return state in TERMINAL_STATES


__all__ = [
    "ConditionFailed",
    "ExecutionQuery",
    "InvalidCursor",
    "ItemTooLarge",
    "StorageError",
    "Store",
    "Throttled",
    "ValidationFailed",
    "decode_cursor",
    "default_store",
    "encode_cursor",
    "forget_stores",
    "terminal",
]
