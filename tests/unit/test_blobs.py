"""The S3 adapter (stepwise/blobs.py) against botocore's Stubber: no moto, no socket.

The Stubber answers each S3 call as S3 would (an object, a listing, an error code), so these tests pin what
the adapter sends (compact UTF-8 JSON under an encoded key) and what it makes of S3's answers: the value,
or the adapter's own errors, never botocore's.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from botocore.stub import Stubber

from stepwise import aws
from stepwise.blobs import BlobError, BlobNotFound, Blobs, BlobThrottled, execution_prefix, value_key

BUCKET = "values-test"


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    # Proof that the Stubber answered: any attempt to reach S3 fails the test.
    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("a test of the S3 adapter opened a connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture
def stubbed() -> Iterator[tuple[Blobs, Stubber]]:
    client = boto3.session.Session(region_name="us-east-1").client("s3")
    with Stubber(client) as stubber:
        yield Blobs(BUCKET, client=client), stubber
        stubber.assert_no_pending_responses()


def body(data: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(data), len(data))


# ---------------------------------------------------------------------------------------------- keys


def test_a_value_key_names_the_execution_the_padded_seq_and_the_encoded_name() -> None:
    assert value_key("exe_01J", 42, "doc") == "executions/exe_01J/0000000042/doc.json"
    # A name may hold any character; in the key it is one segment that reads back to the name.
    assert value_key("exe_01J", 1, "a b/c%ü") == "executions/exe_01J/0000000001/a%20b%2Fc%25%C3%BC.json"


def test_keys_of_one_execution_sort_in_the_order_of_their_seq() -> None:
    keys = [value_key("exe_1", seq, "v") for seq in (1, 2, 10, 100, 9_999_999_999)]

    assert sorted(keys) == keys


def test_an_execution_prefix_holds_its_values_and_no_other_executions() -> None:
    assert value_key("exe_1", 3, "v").startswith(execution_prefix("exe_1"))
    assert not value_key("exe_10", 3, "v").startswith(execution_prefix("exe_1"))


@pytest.mark.parametrize(
    ("execution_id", "seq", "name", "problem"),
    [
        ("exe_1", -1, "v", "seq -1 is outside"),
        ("exe_1", 10**10, "v", "seq 10000000000 is outside"),
        ("exe_1", 1, "", "name is required"),
        ("", 1, "v", "execution id is required"),
    ],
)
def test_a_key_that_could_not_be_read_back_is_refused(execution_id: str, seq: int, name: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        value_key(execution_id, seq, name)


# ---------------------------------------------------------------------------------------------- put and get


def test_a_value_is_stored_as_compact_utf8_json_and_its_size_returned(stubbed: tuple[Blobs, Stubber]) -> None:
    blobs, stubber = stubbed
    value = {"review": "Très lent", "scores": [1, 2.5], "ok": True, "none": None}
    expected = b'{"review":"Tr\xc3\xa8s lent","scores":[1,2.5],"ok":true,"none":null}'
    stubber.add_response(
        "put_object",
        {},
        {
            "Bucket": BUCKET,
            "Key": "executions/exe_1/0000000001/v.json",
            "Body": expected,
            "ContentType": "application/json",
        },
    )

    written = blobs.put_json("executions/exe_1/0000000001/v.json", value)

    assert written == len(expected)


def test_a_stored_value_reads_back_exactly(stubbed: tuple[Blobs, Stubber]) -> None:
    blobs, stubber = stubbed
    stored = '{"name":"Zoë","big":12345678901234567890,"price":0.1}'.encode()
    stubber.add_response("get_object", {"Body": body(stored)}, {"Bucket": BUCKET, "Key": "k.json"})

    value = blobs.get_json("k.json")

    assert value == {"name": "Zoë", "big": 12345678901234567890, "price": 0.1}


def test_a_value_json_cannot_hold_is_refused_before_s3_is_called(stubbed: tuple[Blobs, Stubber]) -> None:
    blobs, _ = stubbed

    with pytest.raises(ValueError, match="not JSON compliant"):
        blobs.put_json("k.json", {"x": float("nan")})


@pytest.mark.parametrize("stored", [b'{"cut": "short', b"\xff\xfe not utf-8"])
def test_an_object_that_does_not_hold_json_is_a_blob_error(stubbed: tuple[Blobs, Stubber], stored: bytes) -> None:
    blobs, stubber = stubbed
    stubber.add_response("get_object", {"Body": body(stored)}, {"Bucket": BUCKET, "Key": "k.json"})

    with pytest.raises(BlobError, match=r"k\.json does not hold JSON"):
        blobs.get_json("k.json")


def test_a_body_cut_short_on_the_wire_is_a_blob_error(stubbed: tuple[Blobs, Stubber]) -> None:
    blobs, stubber = stubbed
    # S3 announced 100 bytes; the connection delivered 8, which parse as JSON: only the length tells.
    stubber.add_response(
        "get_object", {"Body": StreamingBody(io.BytesIO(b'{"a": 1}'), 100)}, {"Bucket": BUCKET, "Key": "k.json"}
    )

    with pytest.raises(BlobError, match=r"k\.json could not be read") as raised:
        blobs.get_json("k.json")

    assert not isinstance(raised.value, BlobNotFound | BlobThrottled)


# ---------------------------------------------------------------------------------------------- S3's errors


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("NoSuchKey", 404, BlobNotFound),
        ("SlowDown", 503, BlobThrottled),
        ("ServiceUnavailable", 503, BlobThrottled),
        ("", 503, BlobThrottled),
        ("AccessDenied", 403, BlobError),
        ("NoSuchBucket", 404, BlobError),
        ("InternalError", 500, BlobError),
    ],
)
@pytest.mark.parametrize("operation", ["get_object", "put_object"])
def test_s3_errors_become_the_adapters_own(
    stubbed: tuple[Blobs, Stubber], code: str, status: int, expected: type[BlobError], operation: str
) -> None:
    blobs, stubber = stubbed
    stubber.add_client_error(operation, service_error_code=code, service_message="no", http_status_code=status)

    key = "executions/exe_1/0000000001/v.json"
    call = (lambda: blobs.get_json(key)) if operation == "get_object" else (lambda: blobs.put_json(key, {"v": 1}))

    with pytest.raises(BlobError) as raised:
        call()

    assert type(raised.value) is expected
    assert not isinstance(raised.value, ClientError)
    assert key in str(raised.value)


# ---------------------------------------------------------------------------------------------- delete_prefix


def listing(keys: list[str], next_token: str | None = None) -> dict[str, Any]:
    page: dict[str, Any] = {"Contents": [{"Key": key} for key in keys], "IsTruncated": next_token is not None}
    if next_token:
        page["NextContinuationToken"] = next_token
    return page


def test_delete_prefix_deletes_every_page_and_counts_what_it_deleted(stubbed: tuple[Blobs, Stubber]) -> None:
    blobs, stubber = stubbed
    prefix = execution_prefix("exe_1")
    first, second = [f"{prefix}{n:010d}/a.json" for n in range(3)], [f"{prefix}0000000009/b.json"]
    stubber.add_response("list_objects_v2", listing(first, "t2"), {"Bucket": BUCKET, "Prefix": prefix})
    stubber.add_response(
        "delete_objects", {}, {"Bucket": BUCKET, "Delete": {"Objects": [{"Key": k} for k in first], "Quiet": True}}
    )
    stubber.add_response(
        "list_objects_v2", listing(second), {"Bucket": BUCKET, "Prefix": prefix, "ContinuationToken": "t2"}
    )
    stubber.add_response(
        "delete_objects", {}, {"Bucket": BUCKET, "Delete": {"Objects": [{"Key": k} for k in second], "Quiet": True}}
    )

    assert blobs.delete_prefix(prefix) == 4


def test_delete_prefix_of_nothing_deletes_nothing(stubbed: tuple[Blobs, Stubber]) -> None:
    blobs, stubber = stubbed
    stubber.add_response("list_objects_v2", {"IsTruncated": False}, {"Bucket": BUCKET, "Prefix": "executions/x/"})

    assert blobs.delete_prefix("executions/x/") == 0


def test_a_key_s3_would_not_delete_is_a_blob_error(stubbed: tuple[Blobs, Stubber]) -> None:
    blobs, stubber = stubbed
    stubber.add_response(
        "list_objects_v2", listing(["executions/x/a.json"]), {"Bucket": BUCKET, "Prefix": "executions/x/"}
    )
    refused = {"Errors": [{"Key": "executions/x/a.json", "Code": "AccessDenied", "Message": "Access Denied"}]}
    stubber.add_response("delete_objects", refused, None)

    with pytest.raises(BlobError, match=r"1 refused, executions/x/a\.json: AccessDenied"):
        blobs.delete_prefix("executions/x/")


def test_an_empty_prefix_is_refused_before_anything_is_listed(stubbed: tuple[Blobs, Stubber]) -> None:
    blobs, _ = stubbed

    with pytest.raises(ValueError, match="every value"):
        blobs.delete_prefix("")


# ---------------------------------------------------------------------------------------------- the client


def test_the_client_is_built_on_first_use_not_with_the_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    client = boto3.session.Session(region_name="us-east-1").client("s3")
    built: list[Any] = []
    monkeypatch.setattr(aws, "s3", lambda: built.append(client) or client)

    blobs = Blobs(BUCKET)
    assert built == []

    with Stubber(client) as stubber:
        stubber.add_response("get_object", {"Body": body(b"[1]")}, {"Bucket": BUCKET, "Key": "k.json"})
        stubber.add_response("get_object", {"Body": body(b"[2]")}, {"Bucket": BUCKET, "Key": "k.json"})
        assert [blobs.get_json("k.json"), blobs.get_json("k.json")] == [[1], [2]]
    assert len(built) == 1


@pytest.mark.parametrize(
    ("endpoint", "style"), [(None, None), ("", None), ("http://host.docker.internal:3001", "path")]
)
def test_s3_names_the_bucket_in_the_path_only_at_a_local_endpoint(
    monkeypatch: pytest.MonkeyPatch, endpoint: str | None, style: str | None
) -> None:
    # Given AWS (no endpoint, or the template's empty one) or a local stand-in without per-bucket host names
    if endpoint is not None:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    aws.reset_clients()
    try:
        # When the S3 client is built, Then only the local one addresses buckets by path
        config = aws.s3().meta.config
        assert (config.s3 or {}).get("addressing_style") == style
    finally:
        aws.reset_clients()
