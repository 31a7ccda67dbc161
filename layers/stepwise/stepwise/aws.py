"""boto3 clients, built lazily and once per process (never at import time, so moto is active first).

``AWS_ENDPOINT_URL`` in the environment points every client at the local stack; boto3 honours it.
The adapters (``store``, ``stepfunctions``, ``secrets``, ``schedules``, ``blobs``) read botocore's errors with
``error_code`` and raise errors of their own: no botocore type travels past them. Those that say "not now"
(throttled, not answered) are also a :class:`TransientError`, which the callers treat alike.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.exceptions import ClientError
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_scheduler import EventBridgeSchedulerClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_stepfunctions import SFNClient


# The codes AWS answers with when it refuses a call for now (the client's own retries did not get through).
THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
    }
)


class TransientError(Exception):
    """Mixed into each adapter's error for a call AWS did not serve for now: refused as throttled after the client's
    own retries, or not answered at all. Nothing is known to have failed for good, and a later retry may work:
    the node runner's step is run again by the state machine, the API answers 503 (``Retry-After``)."""


def error_code(error: ClientError) -> str:
    """AWS's error code of a failed call ("" when the answer carried none)."""
    return str(error.response.get("Error", {}).get("Code", ""))


def error_message(error: ClientError) -> str:
    """AWS's own message of a failed call (without botocore's "An error occurred ..." wrapping)."""
    return str(error.response.get("Error", {}).get("Message", "")) or str(error)


# Called with each client built: the local stack's fault injection registers here (stepwise.local.faults).
_client_hooks: list[Callable[[Any], None]] = []


def on_new_client(hook: Callable[[Any], None]) -> Callable[[], None]:
    """Call ``hook(client)`` on every client built from now on; returns what undoes it (clients built are dropped)."""
    _client_hooks.append(hook)
    reset_clients()

    def undo() -> None:
        if hook in _client_hooks:
            _client_hooks.remove(hook)
        reset_clients()

    return undo


@cache
def _client(service: str) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=5,
        read_timeout=30,
        s3={"addressing_style": "path"} if service == "s3" and _local_endpoint() else None,
    )
    client = boto3.session.Session().client(service, config=config)  # type: ignore[call-overload]
    for hook in _client_hooks:
        hook(client)
    return client


def dynamodb() -> DynamoDBClient:
    """The DynamoDB client."""
    client: DynamoDBClient = _client("dynamodb")
    return client


def s3() -> S3Client:
    """The S3 client (path-style addresses when ``AWS_ENDPOINT_URL`` points at a local stand-in)."""
    client: S3Client = _client("s3")
    return client


def _local_endpoint() -> bool:
    # A local endpoint (moto's server, host.docker.internal under sam local) serves no per-bucket host names
    # (bucket.host.docker.internal does not resolve), so S3 requests name the bucket in the path there.
    return bool(os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"))


def stepfunctions() -> SFNClient:
    """The Step Functions client."""
    client: SFNClient = _client("stepfunctions")
    return client


def secretsmanager() -> SecretsManagerClient:
    """The Secrets Manager client."""
    client: SecretsManagerClient = _client("secretsmanager")
    return client


def scheduler() -> EventBridgeSchedulerClient:
    """The EventBridge Scheduler client."""
    client: EventBridgeSchedulerClient = _client("scheduler")
    return client


def reset_clients() -> None:
    """Drop cached clients (after the environment changed)."""
    _client.cache_clear()
