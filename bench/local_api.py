"""The local API under load: ``stepwise dev`` in a subprocess, driven over kept-alive HTTP connections.

Prints a small GET on one kept-alive connection against one on a new connection each time, then, for 1, 4
and 16 clients at once (each on a kept-alive connection of its own, a few seconds each, after a second of
warm-up so that the cold starts of new instances are not counted): GETs of an execution per second with their
p50/p99, and executions per second when each client starts a one-node workflow and polls it to its end.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

CLIENTS = (1, 4, 16)
SECONDS_PER_LEVEL = 3.0
POLL_SECONDS = 0.05
START_DEADLINE_SECONDS = 60.0
TERMINAL = ("COMPLETED", "FAILED", "CANCELED")


def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        with socket.socket() as first, socket.socket() as second:
            try:
                first.bind(("127.0.0.1", port))
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two adjacent free ports")


class _Client:
    """One kept-alive connection to the local API, with a token."""

    def __init__(self, port: int, token: str) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any, float]:
        began = time.perf_counter()
        self.connection.request(method, path, body=json.dumps(body) if body is not None else None, headers=self.headers)
        answer = self.connection.getresponse()
        payload = answer.read()
        return answer.status, json.loads(payload) if payload else None, time.perf_counter() - began

    def close(self) -> None:
        self.connection.close()


def _token(port: int) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("POST", "/local/token", body=json.dumps({"user": "bench"}), headers={"accept": "text/plain"})
    return connection.getresponse().read().decode()


def _wait_until_serving(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"stepwise dev exited with {process.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/api/openapi.json")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"stepwise dev did not answer within {START_DEADLINE_SECONDS} s")


def _single_requests(port: int, token: str, path: str) -> tuple[float, float]:
    kept = _Client(port, token)
    kept.call("GET", path)
    kept_alive = [kept.call("GET", path)[2] for _ in range(20)]
    kept.close()
    fresh = []
    for _ in range(20):
        client = _Client(port, token)
        fresh.append(client.call("GET", path)[2])
        client.close()
    return statistics.median(kept_alive), statistics.median(fresh)


def _clients(port: int, token: str, clients: int, seconds: float, work: Any) -> tuple[float, list[float]]:
    """Run ``work(client, stop)`` on ``clients`` connections at once; (elapsed seconds, what they returned)."""
    stop = time.monotonic() + seconds
    results: list[float] = []
    lock = threading.Lock()

    def loop() -> None:
        client = _Client(port, token)
        try:
            found = work(client, stop)
        finally:
            client.close()
        with lock:
            results.extend(found)

    threads = [threading.Thread(target=loop) for _ in range(clients)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - began, results


def _gets(path: str) -> Any:
    def work(client: _Client, stop: float) -> list[float]:
        timings = []
        while time.monotonic() < stop:
            status, body, seconds = client.call("GET", path)
            assert status == 200, body
            timings.append(seconds)
        return timings

    return work


def _executions(workflow_id: str) -> Any:
    def work(client: _Client, stop: float) -> list[float]:
        ended = []
        while time.monotonic() < stop:
            status, body, _ = client.call("POST", f"/api/workflows/execute/{workflow_id}")
            assert status == 202, body
            path = f"/api/workflows/execute/{body['data']['executionId']}"
            while client.call("GET", path)[1]["data"]["state"] not in TERMINAL:
                time.sleep(POLL_SECONDS)
            ended.append(1.0)
        return ended

    return work


def _level(port: int, token: str, workflow_id: str, execution_path: str, clients: int) -> tuple[float, ...]:
    _clients(port, token, clients, 1.0, _gets(execution_path))  # warm: as many instances as clients
    elapsed, timings = _clients(port, token, clients, SECONDS_PER_LEVEL, _gets(execution_path))
    ordered = sorted(timings)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    executions_elapsed, ended = _clients(port, token, clients, SECONDS_PER_LEVEL, _executions(workflow_id))
    return len(ordered) / elapsed, statistics.median(ordered), p99, len(ended) / executions_elapsed


def report(project_dir: Path) -> dict[str, Any]:
    """Start ``stepwise dev``, print the tables, stop it; the figures."""
    port = _free_port_pair()
    stepwise = Path(sys.executable).parent / "stepwise"
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STEPWISE_"))}
    # Its state goes to a directory of its own (journaled as in `make dev`), never the checkout's .stepwise.
    with tempfile.TemporaryFile() as log, tempfile.TemporaryDirectory() as state:
        process = subprocess.Popen(
            [str(stepwise), "dev", "--port", str(port), "--state-dir", state],
            cwd=project_dir,
            env=environment,
            stdout=log,
            stderr=log,
        )
        try:
            _wait_until_serving(process, port)
            token = _token(port)
            setup = _Client(port, token)
            node = {"id": "a", "type": "setVariables", "config": {"values": {"x": 1}}}
            definition = {"name": "bench", "nodes": [node]}
            workflow_id = setup.call("POST", "/api/workflows", definition)[1]["data"]["id"]

            started = setup.call("POST", f"/api/workflows/execute/{workflow_id}")[1]["data"]["executionId"]
            execution_path = f"/api/workflows/execute/{started}"
            setup.close()

            kept_alive, fresh = _single_requests(port, token, execution_path)
            found: dict[str, Any] = {"get_ms_kept_alive": kept_alive * 1000, "get_ms_new_connection": fresh * 1000}
            print("local API (stepwise dev; GET of an execution, median of 20)")
            print(f"  kept-alive connection {kept_alive * 1000:.1f} ms, new connection each time {fresh * 1000:.1f} ms")
            print(f"{'clients':>8} {'GETs/s':>7} {'GET p50 ms':>11} {'GET p99 ms':>11} {'executions/s':>13}")
            for clients in CLIENTS:
                gets, p50, p99, executions = _level(port, token, workflow_id, execution_path, clients)
                print(f"{clients:>8} {gets:>7.0f} {p50 * 1000:>11.1f} {p99 * 1000:>11.1f} {executions:>13.1f}")
                found[f"clients_{clients}"] = {
                    "gets_per_second": gets,
                    "get_p50_ms": p50 * 1000,
                    "get_p99_ms": p99 * 1000,
                    "executions_per_second": executions,
                }
            return found
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
