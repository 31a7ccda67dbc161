"""The S3 adapter: an execution's values too big for its DynamoDB items, kept whole as JSON objects.

Keys are ``executions/<executionId>/<seq>/<name>.json``: one prefix per execution (so its values can be
listed or deleted together, and the bucket's lifecycle rule expires them), the event sequence number that
wrote the value padded to 10 digits (so an execution's values list in the order they were written), and
the value's name percent-encoded (a variable name may hold any character, a key segment must not hold ``/``).

Botocore's errors end here: a call either answers or raises a ``BlobError``; a key that holds nothing is
``BlobNotFound``, a refusal for now (S3's ``SlowDown``, a 503) after the client's own retries is
``BlobThrottled``, which the caller may retry later.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from botocore.exceptions import BotoCoreError, ClientError

from stepwise import aws

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

EXECUTIONS_PREFIX = "executions/"
_SEQ_DIGITS = 10
# What S3 answers for a key that holds nothing (HEAD requests carry no body, hence the bare status).
_MISSING_CODES = frozenset({"NoSuchKey", "NotFound", "404"})
# S3 asks callers to slow down with SlowDown (a 503); a 503 may also come as ServiceUnavailable.
_THROTTLING_CODES = aws.THROTTLING_CODES | {"SlowDown", "ServiceUnavailable", "503"}


class BlobError(Exception):
    """An S3 call failed, or an object did not hold JSON; the message names the key and why."""


class BlobNotFound(BlobError):
    """No object under the key (never written, or expired by the bucket's lifecycle rule)."""


class BlobThrottled(BlobError, aws.TransientError):
    """S3 refused the call for now (SlowDown, 503), after the client's own retries: retry it later."""


def execution_prefix(execution_id: str) -> str:
    """The prefix of every value of an execution (ends with ``/``, so ``exe_1`` never matches ``exe_10``)."""
    if not execution_id:
        raise ValueError("an execution id is required")
    return f"{EXECUTIONS_PREFIX}{quote(execution_id, safe='')}/"


def value_key(execution_id: str, seq: int, name: str) -> str:
    """The key of the value ``name`` written by event ``seq`` of an execution: ``executions/<id>/<seq>/<name>.json``."""
    if not 0 <= seq < 10**_SEQ_DIGITS:
        raise ValueError(f"seq {seq} is outside 0..{10**_SEQ_DIGITS - 1}")
    if not name:
        raise ValueError("a value's name is required")
    return f"{execution_prefix(execution_id)}{seq:0{_SEQ_DIGITS}d}/{quote(name, safe='')}.json"


def _translated(error: ClientError, what: str) -> BlobError:
    code = aws.error_code(error)
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    message = f"{what}: S3 answered {code or status}: {aws.error_message(error)}"
    if code in _MISSING_CODES:
        return BlobNotFound(message)
    if code in _THROTTLING_CODES or status == 503:
        return BlobThrottled(message)
    return BlobError(message)


@contextmanager
def _s3_call(what: str) -> Iterator[None]:
    try:
        yield
    except ClientError as error:
        raise _translated(error, what) from error
    except BotoCoreError as error:
        # Timeouts, connection errors, a body cut short while it was read.
        raise BlobError(f"{what}: {error}") from error


class Blobs:
    """JSON values in one bucket. ``client`` defaults to the process's S3 client, built on first use."""

    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self._client = client

    @property
    def client(self) -> S3Client:
        """The S3 client (the process's, built on the first call, so moto is active first in tests)."""
        if self._client is None:
            self._client = aws.s3()
        return self._client

    def put_json(self, key: str, value: Any) -> int:
        """Store ``value`` under ``key`` as compact UTF-8 JSON, replacing any; returns the bytes written.

        A value JSON cannot hold (NaN, a set, ...) raises ``ValueError``/``TypeError``: a bug of the caller,
        not a fault of S3.
        """
        body = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
        with _s3_call(f"value {key} could not be stored"):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")
        return len(body)

    def get_json(self, key: str) -> Any:
        """The value stored under ``key``; ``BlobNotFound`` when there is none."""
        with _s3_call(f"value {key} could not be read"):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            # StreamingBody's own read, not its context manager's raw stream: only this read checks the
            # length S3 announced and turns urllib3's errors into botocore's.
            try:
                data = body.read()
            finally:
                body.close()
        try:
            return json.loads(data)
        except ValueError as error:  # UnicodeDecodeError is a ValueError too
            raise BlobError(f"value {key} does not hold JSON: {error}") from error

    def copy(self, source_key: str, key: str) -> None:
        """Copy the value under ``source_key`` to ``key`` inside S3 (nothing passes through the caller);
        ``BlobNotFound`` when there is none."""
        with _s3_call(f"value {source_key} could not be copied to {key}"):
            self.client.copy_object(Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": source_key})

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with ``prefix`` (cleanup and tests); returns how many.

        An empty prefix is refused: it would empty the bucket.
        """
        if not prefix:
            raise ValueError("a prefix is required (an empty one would delete every value)")
        deleted = 0
        with _s3_call(f"values under {prefix} could not be deleted"):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            for page in pages:
                keys: list[ObjectIdentifierTypeDef] = [
                    {"Key": item["Key"]} for item in page.get("Contents", []) if "Key" in item
                ]
                if not keys:
                    continue
                # A page holds at most 1,000 keys, the most one DeleteObjects call takes.
                answer = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
                if failures := answer.get("Errors", []):
                    first = failures[0]
                    raise BlobError(
                        f"values under {prefix} could not be deleted: {len(failures)} refused, "
                        f"{first.get('Key')}: {first.get('Code')}: {first.get('Message')}"
                    )
                deleted += len(keys)
        return deleted
