"""Faults the local stack injects on purpose, to test that runs survive what AWS does to them now and then.

A plan (:class:`FaultPlan`) gives each kind of fault a probability, and optionally a seed:

=================  ========================================================================================
``lambda-error``   a Lambda invoke of the state machine fails with ``Lambda.ServiceException`` (the handler
                   never runs); Step Functions retries it, as the ASL's ``Retry`` says
``lambda-throttle`` the same with ``Lambda.TooManyRequestsException``
``crash-before``   the invoke's process dies before the handler runs (``Runtime.ExitError``)
``crash-after``    the handler runs, and its writes are made, then the process dies before it answers
                   (``Runtime.ExitError``)
``timeout``        the handler runs, then the invoke is reported timed out (``Sandbox.Timedout``)
``throttle``       an AWS call of the service's code (StartExecution, SendTaskSuccess, SendTaskFailure,
                   StopExecution, every DynamoDB call) raises botocore's ``ClientError``, as if the client's
                   own retries were used up: ``ThrottlingException`` (Step Functions) or
                   ``ProvisionedThroughputExceededException`` (DynamoDB)
``throttle:NAME``  ``throttle`` for one operation (``throttle:SendTaskSuccess``) or every call of one service
                   (``throttle:dynamodb``, ``throttle:s3``), whatever ``throttle`` says
=================  ========================================================================================

Written ``lambda-error=0.1,crash-after=0.05,throttle=0.1,seed=7`` (``stepwise dev --faults`` and
``STEPWISE_FAULTS``), or as the same keys in JSON (``PUT /local/faults``, and the file below). The Lambda
kinds are exclusive, so their probabilities add up to at most 1.

Where they happen: Lambda faults in :mod:`stepwise.local.lambda_routing`, where the stack runs moto's Lambda
invokes in process; throttles in every process of the stack (the API's warm instances too), through a
hook on each boto3 client :mod:`stepwise.aws` builds. Each process reads the plan from one file (its path in
``STEPWISE_FAULTS_FILE``) and reads it again when it changes, so a plan changed while the stack runs reaches
every process at its next call. Each process draws from its own random generator: with a seed, the draws of
a process are the same on every run; which call meets which draw still depends on timing.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FAULTS_FILE_VARIABLE = "STEPWISE_FAULTS_FILE"
FAULTS_ROLE_VARIABLE = "STEPWISE_FAULTS_ROLE"
LAMBDA_FAULTS = ("lambda-error", "lambda-throttle", "crash-before", "crash-after", "timeout")
THROTTLE = "throttle"
# What `throttle` alone covers: the calls whose failure the service must survive (and every DynamoDB call).
THROTTLED_OPERATIONS = frozenset(
    {"StartExecution", "SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat", "StopExecution"}
)
THROTTLED_SERVICES = frozenset({"dynamodb"})
# A changed plan reaches a process within this long (it looks at the file's time at most this often).
RELOAD_SECONDS = 0.1


class InvalidFaults(ValueError):
    """A fault plan that cannot be read; the message says what is wrong."""


@dataclass(frozen=True)
class FaultPlan:
    """Probabilities by fault kind (see the module docstring), and the seed of the draws (None: random)."""

    probabilities: Mapping[str, float] = field(default_factory=dict)
    seed: int | None = None

    @classmethod
    def parse(cls, spec: str | None) -> FaultPlan:
        """A plan from ``kind=p,...[,seed=n]``; ``""``, ``None`` and ``off`` are no faults."""
        text = (spec or "").strip()
        if text.lower() in ("", "off", "none"):
            return cls()
        values: dict[str, Any] = {}
        for part in text.split(","):
            key, sep, value = part.partition("=")
            if not sep:
                raise InvalidFaults(f"{part.strip()!r}: write KIND=PROBABILITY (for instance crash-after=0.05)")
            values[key.strip()] = value.strip()
        return cls.from_json(values)

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> FaultPlan:
        """A plan from ``{"kind": p, ..., "seed": n}`` (numbers or their text)."""
        if not isinstance(values, Mapping):
            raise InvalidFaults('send {"KIND": PROBABILITY, ..., "seed": N}')
        seed: int | None = None
        probabilities: dict[str, float] = {}
        for key, value in values.items():
            if key == "seed":
                seed = _number(key, value, int)
                continue
            if key not in LAMBDA_FAULTS and key != THROTTLE and not key.startswith(f"{THROTTLE}:"):
                kinds = ", ".join((*LAMBDA_FAULTS, THROTTLE, f"{THROTTLE}:NAME"))
                raise InvalidFaults(f"{key!r} is not a fault kind; the kinds are {kinds}")
            probability = _number(key, value, float)
            if not 0.0 <= probability <= 1.0:
                raise InvalidFaults(f"{key}={value}: a probability is between 0 and 1")
            if probability:
                probabilities[key] = probability
        if sum(probabilities.get(kind, 0.0) for kind in LAMBDA_FAULTS) > 1.0:
            raise InvalidFaults(f"the Lambda faults ({', '.join(LAMBDA_FAULTS)}) add up to more than 1")
        return cls(probabilities, seed)

    def as_json(self) -> dict[str, Any]:
        """The plan in the JSON form :meth:`from_json` reads."""
        return {**self.probabilities, **({"seed": self.seed} if self.seed is not None else {})}

    @property
    def active(self) -> bool:
        """Whether any fault may happen."""
        return bool(self.probabilities)

    def describe(self) -> str:
        """One line for people: ``crash-after 5%, throttle 10% (seed 7)`` or ``off``."""
        if not self.active:
            return "off"
        kinds = ", ".join(f"{kind} {probability:.0%}" for kind, probability in self.probabilities.items())
        return kinds + (f" (seed {self.seed})" if self.seed is not None else "")

    def lambda_fault(self, draw: float) -> str | None:
        """The Lambda fault a draw in [0, 1) lands on, or None."""
        edge = 0.0
        for kind in LAMBDA_FAULTS:
            edge += self.probabilities.get(kind, 0.0)
            if draw < edge:
                return kind
        return None

    def throttle_probability(self, service: str, operation: str) -> float:
        """How likely a call of ``operation`` of ``service`` (botocore's names) is throttled."""
        for key in (f"{THROTTLE}:{operation}", f"{THROTTLE}:{service}"):
            if key in self.probabilities:
                return self.probabilities[key]
        if operation in THROTTLED_OPERATIONS or service in THROTTLED_SERVICES:
            return self.probabilities.get(THROTTLE, 0.0)
        return 0.0


def _number(key: str, value: Any, kind: type[int] | type[float]) -> Any:
    if isinstance(value, bool):
        raise InvalidFaults(f"{key}={value}: not a number")
    try:
        return kind(value)
    except (TypeError, ValueError) as error:
        raise InvalidFaults(f"{key}={value}: not a number") from error


class FaultInjector:
    """One process's view of the plan (kept in a file every process of the stack reads) and its draws."""

    def __init__(self, path: Path, role: str, out: Any = None) -> None:
        self.path = path
        self.role = role
        self.out = out if out is not None else sys.stdout
        self.injected: Counter[str] = Counter()
        self._plan = FaultPlan()
        self._random = random.Random()
        self._stamp: tuple[int, int, int] | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def plan(self) -> FaultPlan:
        """The plan in force, read again from the file when it changed (looked at most every RELOAD_SECONDS)."""
        now = time.monotonic()
        with self._lock:
            if now - self._checked >= RELOAD_SECONDS:
                self._checked = now
                self._reload()
            return self._plan

    def set(self, plan: FaultPlan) -> None:
        """Put ``plan`` in force in every process of the stack (written aside, then renamed over the file)."""
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(plan.as_json()) + "\n")
        partial.replace(self.path)
        with self._lock:
            self._checked = 0.0
        self.plan()

    def lambda_fault(self, function_name: str) -> str | None:
        """Draw for one Lambda invoke: the fault to inject, or None."""
        plan = self.plan()
        if not plan.active:
            return None
        with self._lock:
            fault = plan.lambda_fault(self._random.random())
        if fault is not None:
            self._report(fault, function_name)
        return fault

    def throttled(self, service: str, operation: str) -> bool:
        """Draw for one AWS call: whether to throttle it."""
        probability = self.plan().throttle_probability(service, operation)
        if not probability:
            return False
        with self._lock:
            hit = self._random.random() < probability
        if hit:
            self._report(THROTTLE, f"{service}.{operation}")
        return hit

    def _reload(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            stamp = None
        else:
            stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)  # set() renames a new file in: a new inode
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            plan = FaultPlan.from_json(json.loads(self.path.read_text())) if stamp else FaultPlan()
        except (OSError, ValueError) as error:  # half written by hand: keep the plan in force
            print(f"stepwise dev: faults file {self.path} ignored: {error}", file=sys.stderr, flush=True)
            return
        if plan != self._plan:
            self._plan = plan
            self._random.seed(f"{plan.seed}:{self.role}" if plan.seed is not None else None)

    def _report(self, kind: str, what: str) -> None:
        self.injected[kind] += 1
        # One write per line: other threads write to the same stream.
        self.out.write(f"{time.strftime('%H:%M:%S')} fault {kind} {what} ({self.role})\n")
        self.out.flush()


# ------------------------------------------------------------------------------- AWS calls (botocore)

_ERROR_CODES = {"dynamodb": "ProvisionedThroughputExceededException"}


def throttle_hook(injector: FaultInjector) -> Any:
    """A hook for :func:`stepwise.aws.on_new_client`: the client's calls are throttled as the plan says."""
    from botocore.awsrequest import AWSResponse, HTTPHeaders

    def before_call(model: Any, **_: Any) -> Any:
        service = model.service_model.service_name
        if not injector.throttled(service, model.name):
            return None
        code = _ERROR_CODES.get(service, "ThrottlingException")
        parsed = {
            "Error": {"Code": code, "Message": f"Rate exceeded (injected by the local stack: {model.name})"},
            "ResponseMetadata": {"HTTPStatusCode": 400, "RequestId": "local-fault", "HTTPHeaders": {}},
        }
        # An answer from a before-call hook takes the place of the request: botocore raises it as a ClientError.
        return AWSResponse("http://local-fault", 400, HTTPHeaders(), None), parsed

    def hook(client: Any) -> None:
        client.meta.events.register("before-call", before_call)

    return hook


@contextlib.contextmanager
def injecting(path: Path, role: str, out: Any = None) -> Iterator[FaultInjector]:
    """While active, this process injects the plan in ``path`` into every AWS client built (and into Lambda invokes
    routed with the injector's :meth:`FaultInjector.lambda_fault`)."""
    from stepwise import aws

    injector = FaultInjector(path, role, out)
    undo = aws.on_new_client(throttle_hook(injector))
    try:
        yield injector
    finally:
        undo()


def install_from_environment() -> FaultInjector | None:
    """Inject the plan in the file ``STEPWISE_FAULTS_FILE`` names for the life of this process (a warm instance of
    the local stack); None when it names none."""
    from stepwise import aws

    path = os.environ.get(FAULTS_FILE_VARIABLE)
    if not path:
        return None
    injector = FaultInjector(Path(path), os.environ.get(FAULTS_ROLE_VARIABLE, "instance"))
    aws.on_new_client(throttle_hook(injector))
    return injector
