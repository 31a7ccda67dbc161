"""Configuration: one pydantic model per function, read from its environment once, at cold start.

Each model names exactly what its function needs, and every name it needs without a default is required:
a function deployed without one fails its cold start with an ``InvalidSettings`` that names the variable,
instead of failing requests one by one. The names are the template's variables.

This module is a leaf (it imports nothing of the package); the composition root (:mod:`stepwise.wiring`)
reads the settings and hands each part of the code the values it needs. pydantic-settings would add
python-dotenv and asyncio to each cold start for nothing these flat variables need, so a plain pydantic
model reads ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class InvalidSettings(Exception):
    """The environment lacks a variable the function needs, or holds an invalid one; the message names them."""


class FunctionSettings(BaseModel):
    """What every function reads: the table, and the limits every writer of an execution's records keeps."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    table_name: str = Field(alias="TABLE_NAME", min_length=1)
    execution_retention_days: int = Field(default=90, alias="EXECUTION_RETENTION_DAYS", ge=0)
    # A start's (or a schedule's) variables are kept in the table, in the first group of the execution's log
    # (an item holds 400 KB at most): this keeps them well within it. Nodes grow them further, up to
    # MAX_VARIABLES_TOTAL_BYTES, their big values in S3.
    max_variables_bytes: int = Field(default=180_000, alias="MAX_VARIABLES_BYTES", gt=1024)
    # How many executions of one owner may run at once (the template's OwnerConcurrencyLimit; 0: no limit). Every
    # function that ends, pauses or starts runs keeps to it: a run that ends starts the next one waiting.
    owner_concurrency_limit: int = Field(default=100, alias="OWNER_CONCURRENCY_LIMIT", ge=0, le=100_000)

    @classmethod
    def from_environment(cls, environment: Mapping[str, str] | None = None) -> Self:
        """The settings in ``environment`` (the process's by default); ``InvalidSettings`` names what is wrong."""
        try:
            return cls.model_validate(dict(os.environ if environment is None else environment))
        except ValidationError as error:
            raise InvalidSettings(_described(cls, error)) from error


def _described(model: type[BaseModel], error: ValidationError) -> str:
    problems = []
    for detail in error.errors():
        name = ".".join(str(part) for part in detail.get("loc", ()))
        if detail.get("type") == "missing":
            problems.append(f"{name} is not set")
        else:
            problems.append(f"{name}: {detail.get('msg')}" if name else str(detail.get("msg")))
    return f"{model.__name__}: {'; '.join(problems)} (see the function's Environment in template.yaml)"


class ValueSettings(FunctionSettings):
    """What a function that reads or writes an execution's values reads: the bucket of big values, the limits."""

    # Values whose JSON is bigger than inline_value_bytes are kept whole in this bucket (stepwise.blobs).
    values_bucket_name: str = Field(alias="VALUES_BUCKET_NAME", min_length=1)
    # An inlined value lives in a DynamoDB item, which holds 400 KB at most with everything else in it.
    inline_value_bytes: int = Field(default=8192, alias="INLINE_VALUE_BYTES", gt=0, le=350_000)
    max_output_bytes: int = Field(default=1_048_576, alias="MAX_OUTPUT_BYTES", gt=0)
    max_variables_total_bytes: int = Field(default=4_194_304, alias="MAX_VARIABLES_TOTAL_BYTES", gt=0)

    @model_validator(mode="after")
    def _limits_nest(self) -> Self:
        # An output is a value, and lands in the variables: each limit must hold the one before it.
        if not self.inline_value_bytes <= self.max_output_bytes <= self.max_variables_total_bytes:
            raise ValueError(
                "INLINE_VALUE_BYTES <= MAX_OUTPUT_BYTES <= MAX_VARIABLES_TOTAL_BYTES does not hold "
                f"({self.inline_value_bytes}, {self.max_output_bytes}, {self.max_variables_total_bytes})"
            )
        return self


class StartSettings(FunctionSettings):
    """What a function that starts executions reads (the API and the scheduler function)."""

    state_machine_arn: str = Field(alias="STATE_MACHINE_ARN", min_length=1)
    default_max_node_runs: int = Field(default=1000, alias="DEFAULT_MAX_NODE_RUNS", gt=0)
    schedule_group_name: str = Field(alias="SCHEDULE_GROUP_NAME", min_length=1)


class ApiSettings(StartSettings, ValueSettings):
    """The API function: executions, workflows, agents and schedules, and the bearer tokens of its callers."""

    idempotency_table_name: str = Field(alias="IDEMPOTENCY_TABLE_NAME", min_length=1)
    idempotency_ttl_seconds: int = Field(default=86_400, alias="IDEMPOTENCY_TTL_SECONDS", gt=0)
    secret_prefix: str = Field(default="stepwise/agents/", alias="SECRET_PREFIX")
    scheduler_target_arn: str = Field(alias="SCHEDULER_TARGET_ARN", min_length=1)
    scheduler_role_arn: str = Field(alias="SCHEDULER_ROLE_ARN", min_length=1)
    scheduler_dlq_arn: str = Field(alias="SCHEDULER_DLQ_ARN", min_length=1)
    # The user pool's issuer, app client and keys (stepwise.auth).
    jwt_issuer: str = Field(alias="JWT_ISSUER", min_length=1)
    jwt_audience: str = Field(alias="JWT_AUDIENCE", min_length=1)
    jwks_url: str = Field(alias="JWKS_URL", min_length=1)


class SchedulerSettings(StartSettings):
    """The scheduler function: a tick starts an execution, or disables a schedule that can no longer run."""


class NodeRunnerSettings(ValueSettings):
    """The node runner: the limits of a node's records and the defaults of its calls out."""

    allow_private_endpoints: bool = Field(default=False, alias="ALLOW_PRIVATE_ENDPOINTS")
    default_call_timeout_seconds: float = Field(default=30.0, alias="DEFAULT_CALL_TIMEOUT_SECONDS", gt=0)
    max_response_bytes: int = Field(default=1_048_576, alias="MAX_RESPONSE_BYTES", gt=0)
    # Claims of node runs taken before this time (ISO 8601) have lapsed: every invocation that took one has
    # died since. Unset in AWS (a claim lasts until its invocation's deadline); the local stack sets it to the
    # time it started, so a call a killed stack left in flight is made again as soon as its run is restarted.
    claims_lapsed_before: str | None = Field(default=None, alias="CLAIMS_LAPSED_BEFORE")


class ReconcilerSettings(FunctionSettings):
    """The reconciler: executions in flight whose Step Functions run is missing or ended are restarted or failed."""

    state_machine_arn: str = Field(alias="STATE_MACHINE_ARN", min_length=1)
    # An execution whose log changed within this many seconds is left alone: a start (the API's or the
    # scheduler function's, at most 60 s between its record and StartExecution) may still be in progress.
    reconcile_grace_seconds: float = Field(default=120.0, alias="RECONCILE_GRACE_SECONDS", gt=0)
