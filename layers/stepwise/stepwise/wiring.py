"""The composition root: each function's settings, read once, and the store and adapters built from them.

Only ``functions/*/app.py``, :mod:`stepwise.local` and the tests import this module. Everything else receives
what it needs as arguments: the store its table name and retention, the values' :class:`~stepwise.blobs.Blobs`
its bucket, the services the state machine's ARN, Scheduler's group and target and the limits (in small
dataclasses of theirs), the API's routes one :class:`~stepwise.api.routing.ApiDependencies`, a node its
:class:`~stepwise.nodes.base.CallDefaults`.

Per function, two steps, each done once per process:

- ``*_settings()`` reads and checks the function's settings. Its handler module calls it at import, so a
  function deployed without a variable fails its cold start with a message naming it. Cheap: no client yet.
- ``api()``, ``node_runner()``, ``scheduler()``, ``reconciler()`` build the store (and its DynamoDB client) and, for
  the API and the node runner, the values' ``Blobs`` (its S3 client on first use) on the first event; a warm Lambda
  reuses them.

The local stack and the tests change the environment between runs: they call :func:`reset` (and only they
do), and the next call reads the new environment and builds everything again.

Each builder imports what only its function uses: a node runner's cold start never loads the API's Routers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, partial
from typing import TYPE_CHECKING

from stepwise import aws, secrets
from stepwise.blobs import Blobs
from stepwise.settings import (
    ApiSettings,
    FunctionSettings,
    NodeRunnerSettings,
    ReconcilerSettings,
    SchedulerSettings,
    StartSettings,
)
from stepwise.store import Store

if TYPE_CHECKING:
    from stepwise.api.routing import ApiDependencies
    from stepwise.service.executions import Runs
    from stepwise.service.reconciler import Reconciling
    from stepwise.service.runner import StepLimits
    from stepwise.service.variables import Values


@dataclass(frozen=True)
class NodeRunnerDependencies:
    """What the node runner's handler hands to :mod:`stepwise.service.runner`."""

    store: Store
    blobs: Blobs
    step_limits: StepLimits
    # Where the values a node sets are kept: the table up to the inline threshold, S3 (blobs) above it.
    values: Values


@dataclass(frozen=True)
class SchedulerDependencies:
    """What the scheduler function's handler hands to :func:`stepwise.service.schedules.fire`."""

    store: Store
    runs: Runs
    schedule_group: str


@dataclass(frozen=True)
class ReconcilerDependencies:
    """What the reconciler's handler hands to :func:`stepwise.service.reconciler.reconcile`."""

    store: Store
    reconciling: Reconciling


@cache
def api_settings() -> ApiSettings:
    """The API function's settings (``InvalidSettings`` names any variable that is not set)."""
    return ApiSettings.from_environment()


@cache
def node_runner_settings() -> NodeRunnerSettings:
    """The node runner's settings (``InvalidSettings`` names any variable that is not set)."""
    return NodeRunnerSettings.from_environment()


@cache
def scheduler_settings() -> SchedulerSettings:
    """The scheduler function's settings (``InvalidSettings`` names any variable that is not set)."""
    return SchedulerSettings.from_environment()


@cache
def reconciler_settings() -> ReconcilerSettings:
    """The reconciler's settings (``InvalidSettings`` names any variable that is not set)."""
    return ReconcilerSettings.from_environment()


def _store(settings: FunctionSettings) -> Store:
    from stepwise.service import concurrency

    store = Store(settings.table_name, retention_days=settings.execution_retention_days, client=aws.dynamodb())
    # A run that gives its concurrency slots back (it ended or paused, whoever recorded it) starts the next one
    # waiting for them; a queued start names its state machine itself.
    store.slots_freed = partial(concurrency.wake, store, concurrency.Limits(settings.owner_concurrency_limit))
    return store


def _runs(settings: StartSettings) -> Runs:
    from stepwise.service.executions import Runs

    return Runs(
        state_machine_arn=settings.state_machine_arn,
        max_variables_bytes=settings.max_variables_bytes,
        default_max_node_runs=settings.default_max_node_runs,
        owner_concurrency_limit=settings.owner_concurrency_limit,
    )


@cache
def api() -> ApiDependencies:
    """The API's store, values' bucket, token verifier and what its use cases take, built once per process."""
    from stepwise.api.routing import ApiDependencies
    from stepwise.auth import verifier_for
    from stepwise.schedules import Target
    from stepwise.service.executions import Idempotency
    from stepwise.service.schedules import Scheduling

    settings = api_settings()
    return ApiDependencies(
        store=_store(settings),
        blobs=Blobs(settings.values_bucket_name),
        verifier=verifier_for(settings.jwt_issuer, settings.jwt_audience, settings.jwks_url),
        runs=_runs(settings),
        idempotency=Idempotency(settings.idempotency_table_name, settings.idempotency_ttl_seconds),
        scheduling=Scheduling(
            target=Target(
                group=settings.schedule_group_name,
                function_arn=settings.scheduler_target_arn,
                role_arn=settings.scheduler_role_arn,
                dead_letter_arn=settings.scheduler_dlq_arn,
            ),
            max_variables_bytes=settings.max_variables_bytes,
        ),
        secret_prefix=settings.secret_prefix,
    )


@cache
def node_runner() -> NodeRunnerDependencies:
    """The node runner's store, values' bucket and the limits of a step, built once per process."""
    from stepwise.nodes.base import CallDefaults
    from stepwise.service.runner import StepLimits
    from stepwise.service.variables import Values

    settings = node_runner_settings()
    calls = CallDefaults(
        timeout_seconds=settings.default_call_timeout_seconds,
        max_response_bytes=settings.max_response_bytes,
        allow_private_endpoints=settings.allow_private_endpoints,
    )
    limits = StepLimits(
        max_output_bytes=settings.max_output_bytes,
        max_variables_bytes=settings.max_variables_total_bytes,
        calls=calls,
        claims_lapsed_before=settings.claims_lapsed_before,
    )
    blobs = Blobs(settings.values_bucket_name)
    return NodeRunnerDependencies(
        store=_store(settings),
        blobs=blobs,
        step_limits=limits,
        values=Values(blobs, settings.inline_value_bytes),
    )


@cache
def scheduler() -> SchedulerDependencies:
    """The scheduler function's store, state machine and Scheduler group, built once per process."""
    settings = scheduler_settings()
    return SchedulerDependencies(
        store=_store(settings), runs=_runs(settings), schedule_group=settings.schedule_group_name
    )


@cache
def reconciler() -> ReconcilerDependencies:
    """The reconciler's store and state machine, built once per process."""
    from stepwise.service.reconciler import Reconciling

    settings = reconciler_settings()
    return ReconcilerDependencies(
        store=_store(settings),
        reconciling=Reconciling(
            settings.state_machine_arn, settings.reconcile_grace_seconds, settings.owner_concurrency_limit
        ),
    )


def reset() -> None:
    """Forget every function's settings and what was built from them, with the AWS clients and cached
    credentials (the local stack and the tests, after they changed the environment)."""
    for built in (
        api_settings,
        node_runner_settings,
        scheduler_settings,
        reconciler_settings,
        api,
        node_runner,
        scheduler,
        reconciler,
    ):
        built.cache_clear()
    aws.reset_clients()
    secrets.forget_credentials()
