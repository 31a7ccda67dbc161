"""The values' bucket as the functions get it: created by the local stack, wired into the API and the node
runner, and the S3 adapter against moto's S3 (in process, and over HTTP as ``make dev`` serves it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from stepwise import aws as clients
from stepwise import wiring
from stepwise.blobs import BlobNotFound, Blobs, execution_prefix, value_key
from stepwise.limits import json_size


def value_of_size(size: int) -> dict[str, Any]:
    """A value whose compact JSON is exactly ``size`` bytes, with characters of 1, 2 and 4 bytes in UTF-8."""
    value: dict[str, Any] = {"doc": {"title": "Zoë 🙂", "body": ""}, "n": [1, 2.5, None, True]}
    missing = size - json_size(value)
    value["doc"]["body"] = "é" * (missing // 4) + "x" * (missing - 2 * (missing // 4))
    assert json_size(value) == size
    return value


def test_a_value_as_big_as_a_node_output_may_be_is_stored_whole_and_read_back_by_the_api(aws: Any) -> None:
    # Given the local stack's node runner and API, and a value of the largest output a node may produce
    limit = wiring.node_runner_settings().max_output_bytes
    value = value_of_size(limit)
    key = value_key("exe_01JBIG", 7, "doc")

    # When the node runner stores it
    written = wiring.node_runner().blobs.put_json(key, value)

    # Then it took exactly its JSON's bytes, and the API reads the same value back from the same bucket
    assert written == limit == 1_048_576
    assert wiring.api().blobs.get_json(key) == value
    assert wiring.api().blobs.bucket == aws.environment["VALUES_BUCKET_NAME"]


def test_a_value_never_written_is_not_found(aws: Any) -> None:
    with pytest.raises(BlobNotFound, match=r"0000000001/nothing\.json"):
        wiring.api().blobs.get_json(value_key("exe_01JNONE", 1, "nothing"))


def test_deleting_an_executions_values_leaves_the_others(aws: Any) -> None:
    # Given values of two executions whose ids share a beginning
    blobs = wiring.node_runner().blobs
    for execution_id in ("exe_1", "exe_10"):
        for seq in (1, 2):
            blobs.put_json(value_key(execution_id, seq, "v"), {"of": execution_id})

    # When one execution's values are deleted
    deleted = blobs.delete_prefix(execution_prefix("exe_1"))

    # Then only its own went
    assert deleted == 2
    assert blobs.get_json(value_key("exe_10", 2, "v")) == {"of": "exe_10"}
    with pytest.raises(BlobNotFound):
        blobs.get_json(value_key("exe_1", 1, "v"))


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto server on 127.0.0.1, and the process's clients pointed at it (as ``make dev`` points them).

    (The ``aws`` fixture of the other tests is the local stack in process; ``clients`` is stepwise.aws.)
    """
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
    clients.reset_clients()
    try:
        yield f"http://{host}:{port}"
    finally:
        clients.reset_clients()
        server.stop()


def test_values_travel_over_http_to_a_local_endpoint(moto_server: str) -> None:
    # Given a bucket at a local endpoint, which serves no per-bucket host names
    clients.s3().create_bucket(Bucket="stepwise-values-over-http")
    blobs = Blobs("stepwise-values-over-http")
    key = value_key("exe_01JHTTP", 3, "a b/ü")
    value = value_of_size(200_000)

    # When a value is stored and read back, Then it is the same value, and its execution's prefix holds it
    assert blobs.put_json(key, value) == 200_000
    assert blobs.get_json(key) == value
    assert blobs.delete_prefix(execution_prefix("exe_01JHTTP")) == 1
