"""Reading an answer's body: streamed, within the size limit and the attempt's deadline, stoppable."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Final

import requests
import urllib3.exceptions

from stepwise.outbound.answers import CallPolicy
from stepwise.outbound.display import root_reason, seconds_text
from stepwise.outbound.errors import CallStopped, OutboundError, Transient

_CHUNK_BYTES: Final = 65_536


def read_body(
    response: requests.Response,
    *,
    target: str,
    policy: CallPolicy,
    deadline: float,
    should_stop: Callable[[], bool] | None,
) -> bytes:
    """Stream the body, stopping as soon as it exceeds the limit, the deadline passes or we are stopped."""
    limit = policy.max_response_bytes
    announced = response.headers.get("Content-Length")
    if announced is not None and announced.strip().isdigit() and int(announced) > limit:
        raise OutboundError(
            f"{target} answered with a body of {int(announced)} bytes (Content-Length); the limit is {limit}"
        )
    timed_out = Transient(f"timed out after {seconds_text(policy.timeout_seconds)} s")
    raw = response.raw
    connection = raw.connection
    sock = getattr(connection, "sock", None) if connection is not None else None
    chunks: list[bytes] = []
    size = 0
    while True:
        if should_stop is not None and should_stop():
            raise CallStopped(f"{target}: stopped while reading the answer")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise timed_out
        if isinstance(sock, socket.socket):
            # Each read may wait at most until the attempt's deadline: a server that dribbles bytes
            # cannot keep the attempt alive past it. urllib3 resets the timeout on the next request.
            sock.settimeout(min(policy.timeout_seconds, remaining))
        try:
            chunk = raw.read1(_CHUNK_BYTES, decode_content=True)
        except urllib3.exceptions.ReadTimeoutError:
            raise timed_out from None
        except urllib3.exceptions.DecodeError as exc:
            raise OutboundError(f"{target}: could not decode the answer: {root_reason(exc)}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise Transient(f"connection broke while reading the answer: {root_reason(exc)}") from None
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise OutboundError(f"{target} answered with more than {limit} bytes; the limit is {limit}")
        chunks.append(chunk)
    if isinstance(sock, socket.socket):
        sock.settimeout(policy.timeout_seconds)
    return b"".join(chunks)
