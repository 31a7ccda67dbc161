"""The Secrets Manager adapter: agent credentials are kept here, the table holds only the ARN."""

from __future__ import annotations

from functools import lru_cache

from botocore.exceptions import ClientError

from stepwise import aws


def put_credential(prefix: str, agent_id: str, value: str, existing_ref: str | None) -> str:
    """Create or replace an agent's credential; returns the secret's ARN."""
    client = aws.secretsmanager()
    if existing_ref:
        client.put_secret_value(SecretId=existing_ref, SecretString=value)
        read_credential.cache_clear()
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
    read_credential.cache_clear()


@lru_cache(maxsize=64)
def read_credential(ref: str) -> str:
    """The credential's value (cached in the warm Lambda)."""
    return aws.secretsmanager().get_secret_value(SecretId=ref)["SecretString"]
