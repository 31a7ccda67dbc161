"""``stepwise dev`` (what ``make dev`` runs): the whole service on 127.0.0.1, in the foreground.

One process holds it all, assembled here:

* moto's server on ``127.0.0.1:<aws port>`` (default PORT + 1): DynamoDB, Step Functions running the real
  ASL file, Lambda, Secrets Manager, Scheduler, SQS, IAM and Cognito. Every boto3 client (the handlers'
  too) talks to it through ``AWS_ENDPOINT_URL``; so can the AWS CLI (``--endpoint-url``). Its Step
  Functions interpreter calls Lambda back over HTTP at ``MOTO_PORT``, and those invokes run the project's
  handlers in this process (:func:`stepwise.local.stack.running`).
* the HTTP API on ``127.0.0.1:<port>`` (default 3000, or ``PORT``): the server
  (:mod:`stepwise.local.api_server`) hands each request to API Gateway's part
  (:mod:`stepwise.local.gateway`), which runs the API function in warm instances of its own, side by side
  (:mod:`stepwise.local.warm_instances`), with the routes the template declares
  (:mod:`stepwise.local.routes`). No authorizer: the API function checks each bearer token itself
  (:mod:`stepwise.auth`), against the keys moto's server serves for the local user pool
  (:mod:`stepwise.local.auth`), as it does in AWS.
* the demo agents (:mod:`stepwise.local.demo`) on a free port, and the demo workflow, owned by the local
  user ``demo``, so ``stepwise token --user demo`` and the printed curl work at once
  (:mod:`stepwise.local.banner`).
* the clocks of what AWS runs on a schedule: due schedules fire (:mod:`stepwise.local.schedule_clock`), and the
  reconciler runs every few seconds (:mod:`stepwise.local.reconcile_clock`).

* what moto stores, kept in a state directory (default ``.stepwise`` in the checkout): restored before moto's
  server answers anyone, every write journaled before its answer leaves (:mod:`stepwise.local.persistence`).
* the fault plan (``--faults``, ``PUT /local/faults``), injected into Lambda invokes and AWS calls
  (:mod:`stepwise.local.faults`).

The log is quiet: one line per request (:mod:`stepwise.local.api_server`), one per execution state change
(:mod:`stepwise.local.execution_states`); handlers' Powertools logs at WARNING unless
``POWERTOOLS_LOG_LEVEL`` says otherwise, no metrics. Ctrl-C (or SIGTERM) stops everything and exits 0.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stepwise.clock import now_iso
from stepwise.local.api_server import DEFAULT_PORT, PortInUse, bind_api_server, check_port_free, listen
from stepwise.local.banner import banner
from stepwise.local.gateway import LocalGateway
from stepwise.local.stack import ACCOUNT, Deployment
from stepwise.local.started import LocalStack

if TYPE_CHECKING:
    from stepwise.local.faults import FaultPlan
    from stepwise.local.persistence import Journal, Restored
    from stepwise.local.routes import Route
    from stepwise.local.state_directory import StateDirectory
    from stepwise.local.warm_instances import WarmInstances

__all__ = ["DEFAULT_PORT", "LocalStack", "PortInUse", "local_stack", "serve"]

REGION = "us-east-1"
# Seeds moto's random numbers before the user pool is made, so the pool, its client and the demo user's
# sub are the same on every start: tokens survive a restart, and events/api-*.json carry the demo user's
# real claims (tests/integration/test_local_stack.py checks it; regenerate them if the pool setup changes).
COGNITO_SEED = 20240601
# Where moto's Step Functions interpreter logs an execution that ended on an exception (see StoppedMidState).
MOTO_PROGRAM_LOGGER = "moto.stepfunctions.parser.asl.component.program.program"


@contextlib.contextmanager
def _moto_server(port: int, journal: Journal | None) -> Iterator[Restored | None]:
    """moto's server on 127.0.0.1:``port``, on a thread; with a journal, its state restored first and kept after."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)
    restored = journal.restore(app) if journal is not None else None  # before it serves anyone
    served = journal.wrap(app) if journal is not None else app
    server = make_server("127.0.0.1", port, served, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="moto-server", daemon=True)
    thread.start()
    try:
        yield restored
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def _warm_instances(
    deployment: Deployment, routes: list[Route], environment: Mapping[str, str]
) -> dict[str, WarmInstances]:
    """The warm instances of every function a route leads to, each instance started with ``environment``."""
    from stepwise.local.warm_instances import WarmInstances

    functions: dict[str, WarmInstances] = {}
    for logical_id in dict.fromkeys(route.function for route in routes):
        name = deployment.function_names[logical_id]
        functions[logical_id] = WarmInstances(
            deployment.project_dir,
            deployment.specs[logical_id],
            function_name=name,
            function_arn=f"arn:aws:lambda:{deployment.region}:{ACCOUNT}:function:{name}",
            environment=environment,
        )
    return functions


@contextlib.contextmanager
def local_stack(
    port: int,
    aws_port: int,
    project_dir: Path,
    *,
    state: StateDirectory | None = None,
    faults: FaultPlan | None = None,
) -> Iterator[LocalStack]:
    """Start moto's server, deploy the template into it, make the user pool and the demo; undo on exit.

    With ``state``, what moto stores is restored from that directory first and kept there (see
    :mod:`stepwise.local.persistence`); without, the stack starts empty and forgets everything. ``faults`` is the
    fault plan in force at start (see :mod:`stepwise.local.faults`); ``PUT /local/faults`` changes it.
    """
    import boto3
    import requests

    from stepwise import wiring
    from stepwise.local import demo
    from stepwise.local.auth import LocalUserPool
    from stepwise.local.execution_states import print_state_changes
    from stepwise.local.faults import FAULTS_FILE_VARIABLE, FaultPlan, injecting
    from stepwise.local.persistence import Journal
    from stepwise.local.reconcile_clock import ReconcileClock
    from stepwise.local.routes import template_routes
    from stepwise.local.schedule_clock import ScheduleClock
    from stepwise.local.stack import DYNAMODB_LOCK, environment, provision, running, serialize_dynamodb
    from stepwise.local.template import load_template

    aws_url = f"http://127.0.0.1:{aws_port}"
    values = {
        "AWS_ENDPOINT_URL": aws_url,
        "MOTO_PORT": str(aws_port),
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",  # moto takes any credentials
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
        # Every invocation of a stack that ran before this one died with it (stepwise.service.claims.holds).
        "CLAIMS_LAPSED_BEFORE": now_iso(),
    }
    drop = ["AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_DEFAULT_PROFILE"]
    with contextlib.ExitStack() as stack:
        # The fault plan lives in a file every process of the stack reads (the API's instances are processes).
        faults_dir = state.path if state is not None else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        faults_file = faults_dir / "faults.json"
        values[FAULTS_FILE_VARIABLE] = str(faults_file)
        injector = stack.enter_context(injecting(faults_file, "stack"))
        injector.set(faults or FaultPlan())  # what --faults says; never the plan of the previous run

        stack.enter_context(environment(values, drop))
        serialize_dynamodb()
        journal = Journal(state, locks={"dynamodb": DYNAMODB_LOCK}) if state is not None else None
        restored = stack.enter_context(_moto_server(aws_port, journal))
        requests.post(
            f"{aws_url}/moto-api/config", json={"stepfunctions": {"execute_state_machine": True}}, timeout=10
        ).raise_for_status()
        deployment = stack.enter_context(running(provision(project_dir, REGION), injector.lambda_fault))
        stack.enter_context(print_state_changes(deployment.environment["TABLE_NAME"], REGION, sys.stdout))

        cognito = boto3.session.Session(region_name=REGION).client("cognito-idp")
        users = LocalUserPool.find(cognito, REGION)  # kept from a previous start: its users and tokens carry on
        if users is None:
            # Every moto request draws on its random numbers (request ids at least): nothing else may call moto
            # from the seed until the pool, its client and the demo user exist, or their ids change.
            requests.post(f"{aws_url}/moto-api/seed", params={"a": str(COGNITO_SEED)}, timeout=10).raise_for_status()
            users = LocalUserPool.create(cognito, REGION)
        demo_sub = users.ensure_user(demo.DEMO_USER, admin=False)
        stack.enter_context(environment(users.api_environment(aws_url)))  # the API function's token settings

        # The API function's instances are processes: each takes the environment it starts with, so they
        # start only now that it holds the token settings (a cold start later gets the same copy).
        routes = template_routes(load_template(project_dir))
        functions = _warm_instances(deployment, routes, dict(os.environ))
        for instances in functions.values():
            stack.callback(instances.close)
            instances.prewarm()  # its cold start overlaps what follows

        agents = stack.enter_context(demo.DemoAgentServer(aws_port + 1))
        seeded = demo.seed(wiring.api().store, demo_sub, agents.url)
        # moto stores schedules but never fires them: this clock does. It starts only now (its thread calls
        # moto every tick; see the seed above) and, entered after moto, stops before moto does.
        stack.enter_context(ScheduleClock.for_deployment(deployment).running())
        stack.enter_context(ReconcileClock.for_deployment(deployment).running())  # and the reconciler's schedule

        for instances in functions.values():
            instances.ready()  # so the first request is not a cold start
        if journal is not None:
            # Stopping starts here: no write is kept after this, so what is kept is the state the API last answered.
            stack.callback(journal.close)
            if restored is not None and restored.calls + restored.backends:
                journal.compact_in_background()  # the next start need not replay this journal again
        yield LocalStack(
            api_url=f"http://127.0.0.1:{port}",
            aws_url=aws_url,
            gateway=LocalGateway(routes, users, functions, port, faults=injector),
            users=users,
            deployment=deployment,
            demo=seeded,
            demo_agents_url=agents.url,
            state=state,
            restored=restored,
            faults=injector,
        )


class StoppedMidState(logging.Filter):
    """Drops moto's line for an execution stopped in the middle of a state, keeps its other errors.

    A cancel stops the execution in Step Functions while moto's interpreter may be evaluating a state; the
    state then finds its value stack empty and the interpreter logs ``Stepfunctions computation ended with
    exception 'IndexError(...)'`` (moto 5.2.5, whose StopExecution is not faithful). The execution record
    already says CANCELED, and the log has that line.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """False for the stopped-mid-state line (an IndexError), True for anything else."""
        cause = record.args[0] if isinstance(record.args, tuple) and record.args else None
        return not (isinstance(cause, str) and cause.startswith("IndexError("))


def _quiet_libraries() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request otherwise
    # moto's Step Functions interpreter dumps its parse tree for every failed state; the record holds the error.
    logging.getLogger("moto.stepfunctions.parser.asl.component.eval_component").setLevel(logging.CRITICAL)
    logging.getLogger(MOTO_PROGRAM_LOGGER).addFilter(StoppedMidState())
    # A Task that failed on a Lambda error goes to the state machine's Catch, which records it in the execution.
    logging.getLogger("moto.stepfunctions.parser.asl.component.state.exec.execute_state").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="No application metrics to publish")


def _interrupt(signum: int, frame: Any) -> None:
    # The first Ctrl-C or SIGTERM stops the stack; later ones must not cut the cleanup short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Executions still in flight fail as moto goes away (their writes refused once the state is kept, see
    # stepwise.local.persistence), and go on at the next start; their warnings and errors would only be noise now.
    logging.getLogger("moto").setLevel(logging.CRITICAL)
    logging.getLogger(os.environ.get("POWERTOOLS_SERVICE_NAME", "stepwise")).setLevel(logging.CRITICAL)
    raise KeyboardInterrupt


def serve(
    port: int = DEFAULT_PORT,
    aws_port: int | None = None,
    *,
    project_dir: Path | None = None,
    state_dir: Path | None = None,
    fresh: bool = False,
    faults: str | None = None,
) -> int:
    """Run the local stack until Ctrl-C or SIGTERM; returns the exit code (0; 1 when it cannot start).

    Its state is kept in ``state_dir`` (default ``.stepwise`` in the checkout; ``fresh`` forgets what it held);
    ``faults`` is a fault plan (:meth:`stepwise.local.faults.FaultPlan.parse`).
    """
    from stepwise.local.faults import FaultPlan, InvalidFaults
    from stepwise.local.state_directory import DEFAULT_DIRECTORY, StateDirectory, StateError

    started = time.monotonic()
    aws_port = aws_port or port + 1
    _quiet_libraries()
    try:
        from stepwise.local.stack import project_root

        plan = FaultPlan.parse(faults)
        project_dir = project_dir or project_root()
        api_server = bind_api_server(port)
    except (PortInUse, FileNotFoundError, InvalidFaults) as error:
        print(error if isinstance(error, PortInUse) else f"stepwise dev: {error}", file=sys.stderr)
        return 1
    previous = {number: signal.signal(number, _interrupt) for number in (signal.SIGINT, signal.SIGTERM)}
    state: StateDirectory | None = None
    try:
        check_port_free(aws_port, "--aws-port")
        state = StateDirectory.open(state_dir or project_dir / DEFAULT_DIRECTORY, fresh=fresh)
        with local_stack(port, aws_port, project_dir, state=state, faults=plan) as stack:
            api_server.gateway = stack.gateway
            listen(api_server, port)
            thread = threading.Thread(
                target=api_server.serve_forever, kwargs={"poll_interval": 0.2}, name="http-api", daemon=True
            )
            thread.start()
            try:
                print(banner(stack, time.monotonic() - started), flush=True)
                # Waited in slices: when the kernel hands Ctrl-C to another thread, only a main thread that wakes
                # up runs its handler (an endless wait would sleep through it).
                idle = threading.Event()
                while not idle.wait(0.5):
                    pass
            finally:
                api_server.shutdown()  # before the stack goes, so no request meets a stopped moto
    except (PortInUse, StateError) as error:
        print(error if isinstance(error, PortInUse) else f"stepwise dev: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        api_server.server_close()
        if state is not None:
            state.close()
        for number, handler in previous.items():
            signal.signal(number, handler)
    print("stepwise dev: stopped", flush=True)
    # Everything is stopped: spare the exit a full collection of moto's large heap (seconds otherwise).
    gc.freeze()
    return 0
