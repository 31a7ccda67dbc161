"""Turn the local stack's fault injection on and off from a test (see stepwise.local.faults for the kinds).

    with injected_faults(stack.url, {"crash-after": 0.1, "lambda-error": 0.1, "throttle": 0.05}, seed=7):
        ...start 50 executions...
    # faults are off again here, whatever the block raised
    wait for every execution to end

The plan reaches every process of the stack (the API's warm instances too) within RELOAD_SECONDS: each
function here returns only after that, so the next call of the test meets the new plan.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import requests

from stepwise.local.faults import RELOAD_SECONDS

FAULTS_PATH = "/local/faults"


def set_faults(api_url: str, probabilities: Mapping[str, float] | str, *, seed: int | None = None) -> dict[str, Any]:
    """Put a fault plan in force (a mapping of kind to probability, or the text form); returns the stack's view:
    ``{"faults": {...}, "describe": "...", "injected": {kind: count}}`` (counts of the stack's own process)."""
    if isinstance(probabilities, str):
        text = probabilities + (f",seed={seed}" if seed is not None else "")
        answer = requests.put(api_url + FAULTS_PATH, data=text, timeout=10)
    else:
        plan = {**probabilities, **({"seed": seed} if seed is not None else {})}
        answer = requests.put(api_url + FAULTS_PATH, json=plan, timeout=10)
    return _followed(answer)


def faults_off(api_url: str) -> dict[str, Any]:
    """Stop injecting faults; returns the stack's view (with the counts injected so far)."""
    return _followed(requests.delete(api_url + FAULTS_PATH, timeout=10))


def faults_now(api_url: str) -> dict[str, Any]:
    """The plan in force and the counts injected so far by the stack's own process."""
    answer = requests.get(api_url + FAULTS_PATH, timeout=10)
    answer.raise_for_status()
    data: dict[str, Any] = answer.json()["data"]
    return data


@contextmanager
def injected_faults(
    api_url: str, probabilities: Mapping[str, float] | str, *, seed: int | None = None
) -> Iterator[dict[str, Any]]:
    """Faults on for the block, off after it (even when it raises)."""
    try:
        yield set_faults(api_url, probabilities, seed=seed)
    finally:
        faults_off(api_url)


def _followed(answer: requests.Response) -> dict[str, Any]:
    answer.raise_for_status()
    time.sleep(RELOAD_SECONDS * 1.5)  # until every process of the stack has read the new plan
    data: dict[str, Any] = answer.json()["data"]
    return data
