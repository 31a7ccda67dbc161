"""The local stack's state on disk: what moto stores survives Ctrl-C, ``kill -9`` and the next ``make dev``.

Everything the stack stores lives in moto's server, in the ``stepwise dev`` process: the API's warm instances,
the node runner and the AWS CLI all reach it over HTTP. So the one place that sees every write is moto's WSGI
application, and :class:`Journal` wraps it. A write moto applied successfully is appended to the journal and
handed to the operating system *before* moto's answer leaves for the caller: whatever a caller was told was
stored is on disk, and a crash the moment after loses none of it. (Handed to the OS, not synced to the disk:
it survives any end of the process, not a power cut.)

What is kept, per service (:data:`SERVICES`):

* DynamoDB and S3 (every table item, every value in the values' bucket): each write request as it came
  (method, path, headers, body). Replayed on the same state, a write gives the same result, so the start
  replays them in order. These are the hot path: appending one costs a few microseconds.
* Secrets Manager, EventBridge Scheduler and Cognito (agent credentials, schedules, the user pool, its users
  and its signing key): the service's whole moto backend, pickled after each write. Their writes draw random
  ids (a secret's ARN suffix, a user's ``sub``) that a replay would draw anew; they are small and rare.
* Not Step Functions, Lambda, IAM or SQS: the stack provisions those from the template on every start, and
  an execution that was in flight is restarted from its record by the reconciler, not replayed.

Files in the state directory (:mod:`stepwise.local.state_directory`): ``state.json`` (format and moto version),
``lock`` (held while a stack runs on the directory), ``snapshot.pickle`` (every kept backend as of journal
generation *n*, written whole and renamed into place) and ``journal.<generation>`` (the writes since, one
framed pickle each: length, CRC32, payload; a frame cut short by a crash is dropped at the next start).
:meth:`Journal.compact` folds the journal into a new snapshot: on a clean stop, after a start that replayed
writes, and whenever the journal outgrows :data:`COMPACT_ENTRIES` or :data:`COMPACT_BYTES`.

The seams are moto 5.2.5's (pinned): its backends' pickled form and ``moto.backends.get_backend``. A state
directory written by another moto version is refused with a message, never half read.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from stepwise.local.state_directory import (
    FRAME,
    StateDirectory,
    StateError,
    backends_of,
    frames,
    install_backend,
    pickle_backend,
)

# Past either, the journal is folded into a snapshot in the background, so a start after a crash replays at most
# this much: moto takes 1-2 ms to apply a replayed write (a few seconds in all), a snapshot loads much faster.
COMPACT_ENTRIES = 4000
COMPACT_BYTES = 32 * 1024 * 1024
_READS = ("GET", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class KeptService:
    """One AWS service whose moto state the journal keeps."""

    name: str  # moto's backend name, which is also its SigV4 signing name
    replayed: bool  # True: writes are journaled as requests; False: the backend is pickled after each write
    writes: frozenset[str] = frozenset()  # JSON-protocol actions that write (empty: every one not a read)

    def is_write(self, method: str, action: str | None) -> bool:
        """Whether a request changes what the service stores (a REST write, or an action that writes)."""
        if action is None:
            return method.upper() not in _READS
        if self.writes:
            return action in self.writes
        return not action.startswith(_READ_ACTIONS)


# Actions of the JSON-protocol services below that only read, or sign in (Cognito's tokens are checked by their
# signature alone: the refresh and access tokens moto keeps need not survive).
_READ_ACTIONS = (
    "Get",
    "List",
    "Describe",
    "BatchGet",
    "AdminGet",
    "AdminList",
    "InitiateAuth",
    "AdminInitiateAuth",
    "RespondToAuthChallenge",
    "AdminRespondToAuthChallenge",
    "ValidateResourcePolicy",
)
_DYNAMODB_WRITES = frozenset(
    {
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "BatchWriteItem",
        "TransactWriteItems",
        "ExecuteStatement",
        "BatchExecuteStatement",
        "ExecuteTransaction",
        "CreateTable",
        "UpdateTable",
        "DeleteTable",
        "UpdateTimeToLive",
        "TagResource",
        "UntagResource",
    }
)
SERVICES: dict[str, KeptService] = {
    service.name: service
    for service in (
        KeptService("dynamodb", replayed=True, writes=_DYNAMODB_WRITES),
        KeptService("s3", replayed=True),
        KeptService("secretsmanager", replayed=False),
        KeptService("scheduler", replayed=False),
        KeptService("cognito-idp", replayed=False),
    )
}


def signed_service(environ: dict[str, Any]) -> tuple[str, str] | None:
    """The (service, region) a SigV4-signed request names in its credential scope, or None when unsigned."""
    authorization = environ.get("HTTP_AUTHORIZATION") or ""
    start = authorization.find("Credential=")
    if start < 0:
        return None
    scope = authorization[start + len("Credential=") :].split(",", 1)[0].split("/")
    if len(scope) != 5:  # access key / date / region / service / aws4_request
        return None
    return scope[3].lower(), scope[2]


def _json_action(environ: dict[str, Any]) -> str | None:
    target = environ.get("HTTP_X_AMZ_TARGET")
    return target.rsplit(".", 1)[-1] if target else None


# --------------------------------------------------------------------------------------------- the files

# ---------------------------------------------------------------------------------------------- the journal

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass
class Restored:
    """What a start found in the state directory, for the banner."""

    snapshot: bool = False
    calls: int = 0
    backends: int = 0
    failed_calls: int = 0
    seconds: float = 0.0

    @property
    def anything(self) -> bool:
        """Whether there was state to resume."""
        return self.snapshot or bool(self.calls or self.backends)


class Journal:
    """Keeps moto's state in a :class:`StateDirectory`: restores it at start, records each write, compacts.

    ``locks`` may give a service's lock (the local stack gives DynamoDB's request lock, so no read sees a write
    before it is journaled); each other service gets its own. A write holds its service's lock from moto's
    dispatch until its record is appended, so the journal's order is the order moto applied the writes in.
    """

    def __init__(self, directory: StateDirectory, locks: dict[str, Any] | None = None) -> None:
        self.directory = directory
        self._locks: dict[str, Any] = {name: threading.RLock() for name in SERVICES}
        self._locks.update(locks or {})
        self._generation = 0
        self._descriptor: int | None = None
        self._size = 0
        self._compacting = threading.Lock()
        self._compactor: threading.Thread | None = None
        self._closed = False
        self.entries_since_snapshot = 0

    # ----------------------------------------------------------------------------- start

    def restore(self, app: WsgiApp) -> Restored:
        """Load the snapshot and replay the journals after it into moto (through ``app``), then open a new journal.

        Call it before ``app`` serves anything. A replayed call moto now refuses is counted, not fatal.
        """
        started = time.monotonic()
        restored = Restored()
        generation, backends = self.directory.read_snapshot()
        for service, regions in backends.items():
            for region, pickled in regions.items():
                install_backend(service, region, pickled)
                restored.snapshot = True
        newest = generation
        for journal in self.directory.journal_generations():
            newest = max(newest, journal)
            if journal <= generation:
                continue  # folded into the snapshot already (a crash came before it was deleted)
            for payload in frames(self.directory.journal_path(journal)):
                entry = pickle.loads(payload)  # noqa: S301 - our own file, in the user's own checkout
                if entry[0] == "call":
                    restored.calls += 1
                    restored.failed_calls += 0 if _replay(app, entry[1], entry[2]) else 1
                else:
                    restored.backends += 1
                    install_backend(entry[1], entry[2], entry[3])
        self._open(newest + 1)
        self.entries_since_snapshot = restored.calls + restored.backends
        restored.seconds = time.monotonic() - started
        return restored

    def wrap(self, app: WsgiApp) -> WsgiApp:
        """``app`` with every successful write of a kept service journaled before its answer leaves."""

        def journaled(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            signed = signed_service(environ)
            service = SERVICES.get(signed[0]) if signed else None
            if service is None or signed is None:
                return app(environ, start_response)
            method = str(environ.get("REQUEST_METHOD", "GET"))
            if not service.is_write(method, _json_action(environ)):
                return app(environ, start_response)
            body = _read_body(environ)
            statuses: list[str] = []

            def capture(status: str, headers: Any, exc_info: Any = None) -> Any:
                statuses.append(status)
                return start_response(status, headers, exc_info)

            with self._locks[service.name]:
                if self._closed:  # stopping: a write now could not be kept, so it is not made
                    return _unavailable(start_response)
                answer = app(environ, capture)
                try:
                    chunks = list(answer)  # moto answers whole: nothing has reached the caller yet
                finally:
                    close = getattr(answer, "close", None)
                    if close is not None:
                        close()
                if statuses and statuses[-1].startswith("2"):
                    self._record(service, signed[1], environ, body)
            return chunks

        return journaled

    # ----------------------------------------------------------------------------- writes

    def _record(self, service: KeptService, region: str, environ: dict[str, Any], body: bytes) -> None:
        if service.replayed:
            entry: tuple[Any, ...] = ("call", _request_of(environ), body)
        else:
            entry = ("backend", service.name, region, pickle_backend(backends_of(service.name)[region]))
        self._append(pickle.dumps(entry, protocol=5))

    def _append(self, payload: bytes) -> None:
        frame = FRAME.pack(len(payload), zlib.crc32(payload)) + payload
        descriptor = self._descriptor
        if descriptor is None:
            raise StateError("the journal is closed")
        os.write(descriptor, frame)  # one write of an O_APPEND file: in the OS's hands when it returns
        self._size += len(frame)
        self.entries_since_snapshot += 1
        if self.entries_since_snapshot >= COMPACT_ENTRIES or self._size > COMPACT_BYTES:
            self.compact_in_background()

    def _open(self, generation: int) -> None:
        path = self.directory.journal_path(generation)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        previous, self._descriptor = self._descriptor, descriptor
        self._generation = generation
        self._size = 0
        if previous is not None:
            os.close(previous)

    # ----------------------------------------------------------------------------- compaction

    @contextlib.contextmanager
    def _every_lock(self) -> Iterator[None]:
        with contextlib.ExitStack() as held:
            for name in sorted(self._locks):  # one order everywhere: no deadlock between two compactions
                held.enter_context(self._locks[name])
            yield

    def compact(self) -> bool:
        """Fold the journal into a new snapshot; False when there was nothing to fold (or one is under way)."""
        if not self._compacting.acquire(blocking=not self._closed):
            return False
        try:
            with self._every_lock():
                if self.entries_since_snapshot == 0:
                    return False
                backends = {
                    name: {region: pickle_backend(backend) for region, backend in list(backends_of(name).items())}
                    for name in SERVICES
                }
                covered = self._generation
                self._open(covered + 1)  # writes from now on go to the next journal
                self.entries_since_snapshot = 0
            self.directory.write_snapshot(covered, backends)
            return True
        finally:
            self._compacting.release()

    def compact_in_background(self) -> None:
        """Start :meth:`compact` on a thread of its own, unless one runs already."""
        if self._compactor is not None and self._compactor.is_alive():
            return
        self._compactor = threading.Thread(target=self._compact_logged, name="state-compaction", daemon=True)
        self._compactor.start()

    def _compact_logged(self) -> None:
        try:
            self.compact()
        except Exception as error:  # the journal still holds everything: the next start replays it
            print(f"stepwise dev: compacting the state in {self.directory.path} failed: {error}", file=sys.stderr)

    def close(self) -> None:
        """Compact (a clean stop starts fast next time) and close the journal; writes are refused from now on.

        A stop keeps the state as the API last answered it: what runs on while the stack winds down (a node
        step, a schedule's tick) is refused rather than done in memory only, as if the stack had stopped then.
        """
        if self._compactor is not None:
            self._compactor.join()
        with self._every_lock():
            self._closed = True
        self._compact_logged()
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None


def _unavailable(start_response: Callable[..., Any]) -> list[bytes]:
    body = json.dumps({"__type": "ServiceUnavailable", "message": "the local stack is stopping"}).encode()
    start_response(
        "503 Service Unavailable", [("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(body)))]
    )
    return [body]


def _read_body(environ: dict[str, Any]) -> bytes:
    """The request's body, read whole; moto then reads the same bytes from ``wsgi.input``."""
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    body = stream.read() if environ.get("wsgi.input_terminated") or not length else stream.read(int(length))
    environ["wsgi.input"] = io.BytesIO(body)
    return bytes(body)


def _request_of(environ: dict[str, Any]) -> dict[str, Any]:
    # The CGI variables and headers (plain values); not the socket, streams or server objects.
    return {
        key: value
        for key, value in environ.items()
        if not key.startswith(("wsgi.", "werkzeug.")) and isinstance(value, str | int | bool | dict)
    } | {"wsgi.input_terminated": bool(environ.get("wsgi.input_terminated"))}


def _replay(app: WsgiApp, request: dict[str, Any], body: bytes) -> bool:
    """Run one journaled request through moto again; True when moto accepted it."""
    environ = {
        **request,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
        statuses.append(status)
        return lambda data: None

    answer = app(environ, start_response)
    try:
        for _ in answer:
            pass
    finally:
        close = getattr(answer, "close", None)
        if close is not None:
            close()
    return bool(statuses) and statuses[-1].startswith("2")
