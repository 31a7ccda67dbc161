"""Configuration: one pydantic model, read from the environment once per process (cold start)."""

from __future__ import annotations

import os
from functools import lru_cache

from pydantic import BaseModel, Field


class Settings(BaseModel):
    """Everything the service reads from its environment; names match the template's variables."""

    table_name: str = Field(alias="TABLE_NAME", min_length=1)
    idempotency_table_name: str | None = Field(default=None, alias="IDEMPOTENCY_TABLE_NAME")
    state_machine_arn: str | None = Field(default=None, alias="STATE_MACHINE_ARN")
    secret_prefix: str = Field(default="stepwise/agents/", alias="SECRET_PREFIX")
    allow_private_endpoints: bool = Field(default=False, alias="ALLOW_PRIVATE_ENDPOINTS")
    schedule_group_name: str | None = Field(default=None, alias="SCHEDULE_GROUP_NAME")
    scheduler_target_arn: str | None = Field(default=None, alias="SCHEDULER_TARGET_ARN")
    scheduler_role_arn: str | None = Field(default=None, alias="SCHEDULER_ROLE_ARN")
    scheduler_dlq_arn: str | None = Field(default=None, alias="SCHEDULER_DLQ_ARN")
    # Outgoing calls (agent and httpRequest nodes).
    default_call_timeout_seconds: float = Field(default=30.0, alias="DEFAULT_CALL_TIMEOUT_SECONDS", gt=0)
    max_response_bytes: int = Field(default=1_048_576, alias="MAX_RESPONSE_BYTES", gt=0)
    # A node output bigger than this is stored truncated with a marker, so the record stays readable.
    max_inline_output_bytes: int = Field(default=65_536, alias="MAX_INLINE_OUTPUT_BYTES", gt=1024)
    # Variables live on the execution item (DynamoDB: 400 KB at most). An update that replaces them is
    # measured old + new by moto, so 180 KB keeps the local stack and AWS alike.
    max_variables_bytes: int = Field(default=180_000, alias="MAX_VARIABLES_BYTES", gt=1024)
    default_max_node_runs: int = Field(default=1000, alias="DEFAULT_MAX_NODE_RUNS", gt=0)
    idempotency_ttl_seconds: int = Field(default=86_400, alias="IDEMPOTENCY_TTL_SECONDS", gt=0)
    execution_retention_days: int = Field(default=90, alias="EXECUTION_RETENTION_DAYS", ge=0)
    # Bearer tokens (the API function only; stepwise.auth): the user pool's issuer, app client and keys.
    jwt_issuer: str | None = Field(default=None, alias="JWT_ISSUER")
    jwt_audience: str | None = Field(default=None, alias="JWT_AUDIENCE")
    jwks_url: str | None = Field(default=None, alias="JWKS_URL")

    model_config = {"populate_by_name": True, "extra": "ignore"}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings; raises a pydantic ValidationError naming a missing variable."""
    return Settings.model_validate(dict(os.environ))


def reset_settings() -> None:
    """Forget the cached settings and AWS clients (tests and the local stack change the environment)."""
    get_settings.cache_clear()
    from stepwise import aws

    aws.reset_clients()
    from stepwise import store

    store.forget_stores()
