"""The Secrets Manager adapter: agent credentials are kept here, the table holds only the ARN.

Botocore's errors end here: a failed call raises ``CredentialError`` (never with the credential in it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError

from stepwise import aws

# A warm node runner keeps a credential this long: a changed credential reaches every worker within it.
CACHE_SECONDS = 300.0
_cache: dict[str, tuple[float, str]] = {}
_cache_lock = threading.Lock()


class CredentialError(Exception):
    """Secrets Manager could not store, read or delete a credential; the message says why."""


@contextmanager
def _secrets_call(what: str, *, missing_is_fine: bool = False) -> Iterator[None]:
    try:
        yield
    except ClientError as error:
        if missing_is_fine and aws.error_code(error) == "ResourceNotFoundException":
            return
        raise CredentialError(f"{what}: {aws.error_code(error)}: {aws.error_message(error)}") from error
    except BotoCoreError as error:
        raise CredentialError(f"{what}: {error}") from error


def put_credential(prefix: str, agent_id: str, value: str, existing_ref: str | None) -> str:
    """Create or replace an agent's credential; returns the secret's ARN."""
    client = aws.secretsmanager()
    with _secrets_call(f"the credential of agent {agent_id} could not be stored"):
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
    with _secrets_call(f"credential {ref} could not be deleted", missing_is_fine=True):
        aws.secretsmanager().delete_secret(SecretId=ref, RecoveryWindowInDays=7)
    forget_credentials()


def read_credential(ref: str) -> str:
    """The credential's value (cached in the warm Lambda for ``CACHE_SECONDS``)."""
    now = time.monotonic()
    with _cache_lock:
        cached = _cache.get(ref)
        if cached and now - cached[0] < CACHE_SECONDS:
            return cached[1]
    with _secrets_call(f"credential {ref} could not be read"):
        value = aws.secretsmanager().get_secret_value(SecretId=ref)["SecretString"]
    with _cache_lock:
        _cache[ref] = (now, value)
    return value


def forget_credentials() -> None:
    """Drop every cached credential (after one changed in this process)."""
    with _cache_lock:
        _cache.clear()
