"""``stepwise dev`` as a user meets it: a subprocess on free ports, driven over real HTTP with real tokens.

Tokens come from the stack's ``POST /local/token`` (moto's Cognito); the API function checks them against the
keys moto's server serves for the pool. The integration tests' ``stack`` fixture (``tests/integration/
conftest.py``) starts one stack per test module, so a module that writes and deletes data disturbs no other.
"""

from __future__ import annotations

import gzip
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jwt
import requests

PROJECT_DIR = Path(__file__).resolve().parents[2]
STEPWISE = Path(sys.executable).parent / "stepwise"
START_DEADLINE_SECONDS = 40.0
RUN_DEADLINE_SECONDS = 20.0
TERMINAL = ("COMPLETED", "FAILED", "CANCELED")


def free_port_pair() -> int:
    """A port p such that p, p + 1 and p + 2 (the API, AWS, the demo agents) are free on 127.0.0.1."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port < 65534 and all(port_is_free(port + offset) for offset in range(3)):
            return port
    raise RuntimeError("no two adjacent free ports")


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def cli_environment(**extra: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STEPWISE_"))}
    environment.update(PYTHONUNBUFFERED="1", **extra)
    return environment


@dataclass
class Stack:
    url: str
    port: int
    aws_port: int
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def output(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")

    def token(self, user: str, *, admin: bool = False) -> str:
        answer = requests.post(f"{self.url}/local/token", json={"user": user, "admin": admin}, timeout=10)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["token"])

    def call(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return requests.request(method, self.url + path, headers=headers, timeout=15, **kwargs)

    def wait_for_end(self, execution_id: str, token: str) -> dict[str, Any]:
        deadline = time.monotonic() + RUN_DEADLINE_SECONDS
        execution: dict[str, Any] = {}
        while time.monotonic() < deadline:
            execution = self.call("GET", f"/api/workflows/execute/{execution_id}", token).json()["data"]
            if execution["state"] in TERMINAL:
                return execution
            time.sleep(0.1)
        raise AssertionError(f"execution did not end in time: {execution}")

    def cli(self, *args: str, token: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        environment = cli_environment(STEPWISE_URL=self.url, **({"STEPWISE_TOKEN": token} if token else {}))
        return subprocess.run(
            [str(STEPWISE), *args], env=environment, capture_output=True, text=True, timeout=timeout, check=False
        )


def moto_signing_key() -> Any:
    """The key moto signs every Cognito token with; it ships inside moto (a local stand-in only)."""
    raw = (resources.files("moto") / "cognitoidp/resources/jwks-private.json.gz").read_bytes()
    return jwt.algorithms.RSAAlgorithm.from_jwk(gzip.decompress(raw).decode())


def resigned(token: str, key: Any, **changes: Any) -> str:
    """``token`` with ``changes`` to its claims, signed with ``key`` (moto's: the stack's pool would sign it)."""
    claims = {**jwt.decode(token, options={"verify_signature": False}), **changes}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "dummy"})


def wait_until_serving(process: subprocess.Popen[bytes], url: str, log: Any) -> None:
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"stepwise dev exited with {process.returncode}:\n{log()}")
        try:
            if requests.get(f"{url}/api/openapi.json", timeout=5).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass  # not listening yet, or busy starting: its first answer may take more than a second
        time.sleep(0.1)
    raise AssertionError(f"stepwise dev did not answer within {START_DEADLINE_SECONDS} s:\n{log()}")


def start_stack(
    directory: Path, *args: str, port: int | None = None, environment: Mapping[str, str] | None = None
) -> Stack:
    """``stepwise dev`` on free ports (or ``port``), its state in ``directory/state``, its output in ``directory``.

    It runs in a session of its own, so a test can kill its whole process group as a crash would.
    ``environment`` adds variables to its environment (a setting of the stack, say).
    """
    if port is None:
        # Free ports are only free until someone takes them (another worker's servers, outgoing connections):
        # a start that lost one of its three ports to a race is tried again on others.
        for _ in range(2):
            try:
                return start_stack(directory, *args, port=free_port_pair(), environment=environment)
            except AssertionError as error:
                if "already in use" not in str(error) and "is in use" not in str(error):
                    raise
        port = free_port_pair()
    environment = environment or {}
    stdout, stderr = directory / "stdout.txt", directory / "stderr.txt"
    with stdout.open("ab") as out, stderr.open("ab") as err:
        process = subprocess.Popen(
            [str(STEPWISE), "dev", "--port", str(port), "--state-dir", str(directory / "state"), *args],
            cwd=PROJECT_DIR,
            env=cli_environment(**environment),
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    started = Stack(f"http://127.0.0.1:{port}", port, port + 1, process, stdout, stderr)
    try:
        wait_until_serving(process, started.url, started.output)
    except BaseException:
        stop_stack(started)
        raise
    return started


def stop_stack(stack: Stack) -> None:
    """Ctrl-C, as a user stops it (killed if it has not stopped within 10 s)."""
    if stack.process.poll() is None:
        stack.process.send_signal(signal.SIGINT)
        try:
            stack.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            stack.process.kill()
            stack.process.wait()


@contextmanager
def running_stack(directory: Path, **environment: str) -> Iterator[Stack]:
    """``stepwise dev`` on free ports, its state and output in ``directory``; stopped with Ctrl-C at the end.

    ``environment`` adds variables to its environment (a setting of the stack, say)."""
    running = start_stack(directory, environment=environment)
    try:
        yield running
    finally:
        stop_stack(running)
