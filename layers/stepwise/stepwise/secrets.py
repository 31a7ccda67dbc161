"""The Secrets Manager adapter: agent credentials are kept here, the table holds only the ARN."""

from __future__ import annotations

import threading
import time

from botocore.exceptions import ClientError

from stepwise import aws

# A warm node runner keeps a credential this long: a changed credential reaches every worker within it.
CACHE_SECONDS = 300.0
_cache: dict[str, tuple[float, str]] = {}
_cache_lock = threading.Lock()


def put_credential(prefix: str, agent_id: str, value: str, existing_ref: str | None) -> str:
    """Create or replace an agent's credential; returns the secret's ARN."""
    client = aws.secretsmanager()
    if existing_ref:
        client.put_secret_value(SecretId=existing_ref, SecretString=value)
        forget_credentials()
        return existing_ref
    answer = client.create_secret(
        Name=f"{prefix}{agent_id}",
        SecretString=value,
        Description=f"stepwise agent {agent_id} credential",
    )
    return answer["ARN"]


def delete_credential(ref: str) -> None:
    """Delete a credential (with a recovery window, in case it was a mistake)."""
    try:
        aws.secretsmanager().delete_secret(SecretId=ref, RecoveryWindowInDays=7)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
    forget_credentials()


def read_credential(ref: str) -> str:
    """The credential's value (cached in the warm Lambda for ``CACHE_SECONDS``)."""
    now = time.monotonic()
    with _cache_lock:
        cached = _cache.get(ref)
        if cached and now - cached[0] < CACHE_SECONDS:
            return cached[1]
    value = aws.secretsmanager().get_secret_value(SecretId=ref)["SecretString"]
    with _cache_lock:
        _cache[ref] = (now, value)
    return value


def forget_credentials() -> None:
    """Drop every cached credential (after one changed in this process)."""
    with _cache_lock:
        _cache.clear()
