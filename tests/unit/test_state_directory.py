"""The local stack's state directory and journal, without moto: a scripted WSGI app stands in for moto's server.

The whole round trip (moto's real backends written, the process killed, a new stack resuming them) is in
tests/integration/test_local_state.py.
"""

from __future__ import annotations

import io
import json
import pickle
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from stepwise.local.persistence import SERVICES, Journal, signed_service
from stepwise.local.state_directory import StateDirectory, StateError

SIGNED_DYNAMODB = "AWS4-HMAC-SHA256 Credential=local/20261201/us-east-1/dynamodb/aws4_request, SignedHeaders=host"


class ScriptedMoto:
    """A WSGI app that answers each request with the next status of ``statuses`` and records what it got."""

    def __init__(self, *statuses: str) -> None:
        self.statuses = list(statuses)
        self.bodies: list[bytes] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        self.bodies.append(environ["wsgi.input"].read())
        start_response(self.statuses.pop(0) if self.statuses else "200 OK", [])
        return [b"{}"]


def put_item(body: bytes, target: str = "DynamoDB_20120810.PutItem") -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_AUTHORIZATION": SIGNED_DYNAMODB,
        "HTTP_X_AMZ_TARGET": target,
        "wsgi.input": io.BytesIO(body),
    }


def send(app: Any, environ: dict[str, Any]) -> str:
    statuses: list[str] = []
    list(app(environ, lambda status, headers, exc_info=None: statuses.append(status)))
    return statuses[-1]


@pytest.fixture
def directory(tmp_path: Path) -> Iterable[StateDirectory]:
    opened = StateDirectory.open(tmp_path / "state")
    yield opened
    opened.close()


def test_writes_moto_accepted_are_replayed_in_order_and_reads_and_refusals_are_not(directory: StateDirectory) -> None:
    # Given a journal in front of moto
    journal = Journal(directory)
    journal.restore(ScriptedMoto())
    app = journal.wrap(ScriptedMoto("200 OK", "400 Bad Request", "200 OK", "200 OK"))

    # When two writes succeed, one is refused (a condition failed) and one request only reads
    send(app, put_item(b'{"n": 1}'))
    send(app, put_item(b'{"n": 2}'))
    send(app, put_item(b'{"n": 3}'))
    send(app, put_item(b'{"Key": 1}', target="DynamoDB_20120810.GetItem"))

    # Then a new start replays the two writes, in order, with their bodies
    replayed = ScriptedMoto()
    restored = Journal(directory).restore(replayed)
    assert replayed.bodies == [b'{"n": 1}', b'{"n": 3}']
    assert (restored.calls, restored.failed_calls, restored.anything) == (2, 0, True)


def test_a_write_cut_short_by_a_crash_is_dropped_and_the_rest_kept(directory: StateDirectory) -> None:
    journal = Journal(directory)
    journal.restore(ScriptedMoto())
    app = journal.wrap(ScriptedMoto())
    send(app, put_item(b'{"n": 1}'))
    send(app, put_item(b'{"n": 2}'))
    # A crash in the middle of an append: the last frame is cut short.
    path = directory.journal_path(directory.journal_generations()[-1])
    path.write_bytes(path.read_bytes()[:-5])

    replayed = ScriptedMoto()
    Journal(directory).restore(replayed)

    assert replayed.bodies == [b'{"n": 1}']


def test_journals_a_snapshot_covers_are_not_replayed_again(directory: StateDirectory) -> None:
    # Given writes in journal 1, then a snapshot covering it written just before a crash (journal 1 still there)
    journal = Journal(directory)
    journal.restore(ScriptedMoto())
    send(journal.wrap(ScriptedMoto()), put_item(b'{"n": 1}'))
    (directory.path / "snapshot.pickle").write_bytes(pickle.dumps({"format": 1, "generation": 1, "backends": {}}))

    # When the stack starts again, Then nothing is replayed twice
    replayed = ScriptedMoto()
    restored = Journal(directory).restore(replayed)
    assert replayed.bodies == []
    assert restored.snapshot is False and restored.calls == 0


def test_a_closed_journal_refuses_writes_instead_of_losing_them(directory: StateDirectory) -> None:
    journal = Journal(directory)
    journal.restore(ScriptedMoto())
    moto = ScriptedMoto()
    app = journal.wrap(moto)
    journal.close()  # a clean stop: nothing was written, so nothing to compact

    assert send(app, put_item(b'{"n": 1}')) == "503 Service Unavailable"
    assert send(app, put_item(b"{}", target="DynamoDB_20120810.Query")) == "200 OK"
    assert moto.bodies == [b"{}"]


def test_a_directory_is_held_by_one_stack_at_a_time(tmp_path: Path) -> None:
    first = StateDirectory.open(tmp_path / "state")
    try:
        with pytest.raises(StateError, match="in use by another stepwise dev"):
            StateDirectory.open(tmp_path / "state")
    finally:
        first.close()
    StateDirectory.open(tmp_path / "state").close()


def test_state_of_another_moto_is_refused_and_fresh_forgets_it(tmp_path: Path) -> None:
    # Given state written by another moto version
    path = tmp_path / "state"
    path.mkdir()
    (path / "journal.1").write_bytes(b"")
    (path / "state.json").write_text(json.dumps({"format": 1, "moto": "0.0.1"}))

    # Then it is refused, with what to do; and --fresh starts empty
    with pytest.raises(StateError, match=r"moto 0\.0\.1.*--fresh"):
        StateDirectory.open(path)
    fresh = StateDirectory.open(path, fresh=True)
    assert fresh.empty
    fresh.close()


def test_which_requests_are_writes_of_a_kept_service() -> None:
    assert signed_service({"HTTP_AUTHORIZATION": SIGNED_DYNAMODB}) == ("dynamodb", "us-east-1")
    assert signed_service({}) is None
    assert SERVICES["dynamodb"].is_write("POST", "TransactWriteItems")
    assert not SERVICES["dynamodb"].is_write("POST", "Query")
    assert SERVICES["s3"].is_write("PUT", None) and not SERVICES["s3"].is_write("GET", None)
    assert SERVICES["cognito-idp"].is_write("POST", "AdminCreateUser")
    assert not SERVICES["cognito-idp"].is_write("POST", "AdminInitiateAuth")
    assert SERVICES["secretsmanager"].is_write("POST", "CreateSecret")
    assert not SERVICES["secretsmanager"].is_write("POST", "GetSecretValue")
