"""Warm instances of a function, each a process of its own, as Lambda runs them: requests side by side.

Lambda gives each concurrent request an execution environment of its own: a separate process with its own
copy of the handler's module, of Powertools' resolver (whose ``current_event`` is a class attribute shared
by every resolver of a process) and of every cache. Two threads of one process would share all of that, so
the local API runs each function in a small pool of worker processes instead:

* :class:`WarmInstances` lends a free instance to each request, starts a new one when all are busy (its
  cold start, as in Lambda) up to ``max_instances``, and makes a request wait only past that.
* An instance imports the handler once (``python -m stepwise.local.warm_instances``), then answers one
  event at a time over a private socket, in JSON, as Lambda's runtime API does. Its stdout and stderr are
  the local stack's, so handler logs and tracebacks land in the same terminal.
* A handler that raises answers an error (the instance stays warm); one that runs past the function's
  timeout is killed, as Lambda does ("Task timed out"), and so is an instance that dies.

Instances run in a process group of their own, so Ctrl-C reaches only the local stack, which stops them;
they also stop when their socket closes, whatever ended the local stack.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stepwise.local.template import FunctionSpec

# Enough for a few watchers long-polling beside normal traffic; each instance costs one Python process.
DEFAULT_MAX_INSTANCES = 8
# A cold start imports the handler: seconds at worst on a busy laptop.
READY_TIMEOUT_SECONDS = 60.0


class InvokeFailed(Exception):
    """The invoke gave no answer: the handler raised, timed out, or its instance died (API Gateway's 500)."""


class _Instance:
    """One worker process and the socket to it; used by one request at a time."""

    def __init__(self, process: subprocess.Popen[bytes], connection: Connection, label: str) -> None:
        self.process = process
        self.connection = connection
        self.label = label
        self.lost = False  # timed out or died: never lent again
        self._ready = False
        self._ready_lock = threading.Lock()

    @classmethod
    def start(cls, project_dir: Path, spec: FunctionSpec, environment: Mapping[str, str]) -> _Instance:
        ours, theirs = socket.socketpair()
        description = json.dumps({"logical_id": spec.logical_id, "code_uri": spec.code_uri, "handler": spec.handler})
        try:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", __name__, str(theirs.fileno()), str(project_dir), description],
                pass_fds=(theirs.fileno(),),
                env={**environment, "PYTHONUNBUFFERED": "1"},
                stdin=subprocess.DEVNULL,
                process_group=0,
            )
        finally:
            theirs.close()
        return cls(process, Connection(ours.detach()), spec.logical_id)

    def wait_ready(self) -> None:
        with self._ready_lock:  # the first request and the stack's start may both wait for it
            if self._ready:
                return
            answer = self._receive(READY_TIMEOUT_SECONDS, "did not start")
            if not answer.get("ready"):
                self.lost = True
                raise InvokeFailed(f"{self.label}: the handler could not be loaded (its traceback is above)")
            self._ready = True

    def invoke(self, request: Mapping[str, Any], timeout_seconds: float) -> Any:
        self.wait_ready()
        try:
            self.connection.send_bytes(json.dumps(request).encode())
        except OSError as error:
            self.lost = True
            raise InvokeFailed(f"{self.label}: the instance is gone ({error})") from error
        answer = self._receive(timeout_seconds, f"Task timed out after {timeout_seconds:.2f} seconds")
        if "error" in answer:
            raise InvokeFailed(f"{self.label}: {answer['error']}")
        return answer["result"]

    def _receive(self, timeout_seconds: float, timed_out: str) -> dict[str, Any]:
        try:
            if not self.connection.poll(timeout_seconds):
                self.lost = True
                raise InvokeFailed(f"{self.label}: {timed_out}")
            answer: dict[str, Any] = json.loads(self.connection.recv_bytes())
        except (EOFError, OSError) as error:
            self.lost = True
            raise InvokeFailed(f"{self.label}: the instance exited (code {self.process.poll()})") from error
        return answer

    def stop(self) -> None:
        self.connection.close()
        if self.lost:
            self.process.kill()  # it may be stuck in the handler; Lambda would end it too
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class WarmInstances:
    """The warm instances of one function: each request gets a free one, or a new one up to a cap."""

    def __init__(
        self,
        project_dir: Path,
        spec: FunctionSpec,
        *,
        function_name: str,
        function_arn: str,
        environment: Mapping[str, str] | None = None,
        max_instances: int = DEFAULT_MAX_INSTANCES,
    ) -> None:
        self.project_dir = project_dir
        self.spec = spec
        self.function_name = function_name
        self.function_arn = function_arn
        self.max_instances = max_instances
        self._environment = dict(environment) if environment is not None else None
        self._idle: list[_Instance] = []
        self._busy: set[_Instance] = set()
        self._starting = 0
        self._started = 0  # instances ever started: each draws its injected faults from a generator of its own
        self._closed = False
        self._changed = threading.Condition()

    @property
    def count(self) -> int:
        """How many instances exist (idle, busy or starting)."""
        with self._changed:
            return len(self._idle) + len(self._busy) + self._starting

    def prewarm(self) -> None:
        """Start one instance now; its cold start runs while the caller does other things (see :meth:`ready`)."""
        instance = self._start()
        with self._changed:
            self._idle.append(instance)

    def ready(self) -> None:
        """Wait until every idle instance has loaded its handler (raises :class:`InvokeFailed` if one cannot)."""
        with self._changed:
            instances = list(self._idle)
        for instance in instances:
            instance.wait_ready()

    def invoke(self, event: Mapping[str, Any]) -> Any:
        """Run the handler with ``event`` in a free instance and return its result.

        Raises :class:`InvokeFailed` when the handler raised (the instance stays), ran past the function's
        timeout or died (the instance is dropped).
        """
        instance = self._acquire()
        try:
            return instance.invoke({"event": event, "context": self._context()}, float(self.spec.timeout))
        finally:
            self._release(instance, healthy=not instance.lost)

    def close(self) -> None:
        """Stop every instance; a request still running in one gets :class:`InvokeFailed`."""
        with self._changed:
            self._closed = True
            for instance in self._busy:
                instance.lost = True  # in the middle of a request: end it now
            instances = [*self._idle, *self._busy]
            self._idle.clear()
            self._changed.notify_all()
        for instance in instances:
            instance.stop()

    def _context(self) -> dict[str, Any]:
        return {
            "function_name": self.function_name,
            "invoked_function_arn": self.function_arn,
            "memory_limit_in_mb": self.spec.memory,
            "timeout_seconds": float(self.spec.timeout),
        }

    def _start(self) -> _Instance:
        from stepwise.local.faults import FAULTS_ROLE_VARIABLE

        environment = dict(self._environment if self._environment is not None else os.environ)
        with self._changed:
            self._started += 1
            environment[FAULTS_ROLE_VARIABLE] = f"{self.spec.logical_id}-{self._started}"
        return _Instance.start(self.project_dir, self.spec, environment)

    def _acquire(self) -> _Instance:
        with self._changed:
            while True:
                if self._closed:
                    raise InvokeFailed(f"{self.spec.logical_id}: the local stack is stopping")
                if self._idle:
                    instance = self._idle.pop()  # the most recently used: the warmest
                    self._busy.add(instance)
                    return instance
                if len(self._busy) + self._starting < self.max_instances:
                    self._starting += 1
                    break
                self._changed.wait()
        try:
            instance = self._start()  # a cold start, outside the lock: others may be served meanwhile
        except BaseException:
            with self._changed:
                self._starting -= 1
                self._changed.notify()
            raise
        with self._changed:
            self._starting -= 1
            self._busy.add(instance)
        return instance

    def _release(self, instance: _Instance, healthy: bool) -> None:
        with self._changed:
            self._busy.discard(instance)
            keep = healthy and not self._closed
            if keep:
                self._idle.append(instance)
            self._changed.notify()
        if not keep:
            instance.stop()


# ------------------------------------------------------------------------------------- the instance


def _serve(connection: Connection, project_dir: Path, description: Mapping[str, str]) -> int:
    """The instance's side: load the handler, say so, then answer one event at a time until the socket closes."""
    from stepwise.local.faults import install_from_environment
    from stepwise.local.lambda_routing import LocalLambdaContext
    from stepwise.local.template import FunctionSpec, load_handler

    spec = FunctionSpec(
        logical_id=description["logical_id"],
        code_uri=description["code_uri"],
        handler=description["handler"],
        timeout=0,
        memory=0,
        environment_keys=(),
    )
    install_from_environment()  # the stack's fault plan reaches this instance's AWS calls too
    try:
        handler = load_handler(project_dir, spec)
    except Exception:
        traceback.print_exc()
        _answer(connection, {"ready": False})
        return 1
    if not _answer(connection, {"ready": True}):
        return 0
    while True:
        try:
            request = json.loads(connection.recv_bytes())
        except (EOFError, OSError):
            return 0  # the local stack has stopped
        try:
            answer = {"result": handler(request["event"], LocalLambdaContext(**request["context"]))}
        except Exception as error:
            # What Lambda writes to the function's log for an unhandled error; API Gateway answers 500.
            traceback.print_exc()
            answer = {"error": f"{type(error).__name__}: {error}"}
        if not _answer(connection, answer):
            return 0


def _answer(connection: Connection, answer: Mapping[str, Any]) -> bool:
    """Send one answer; False when the local stack is gone."""
    try:
        payload = json.dumps(answer)
    except (TypeError, ValueError) as error:
        # What Lambda answers when a handler returns something JSON cannot carry.
        payload = json.dumps({"error": f"Runtime.MarshalError: {error}"})
    try:
        connection.send_bytes(payload.encode())
    except OSError:
        return False
    return True


def main(argv: list[str]) -> int:
    """``python -m stepwise.local.warm_instances <socket fd> <project dir> <function as JSON>``."""
    descriptor, project_dir, description = argv
    return _serve(Connection(int(descriptor)), Path(project_dir), json.loads(description))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
