"""``stepwise dev`` (what ``make dev`` runs): the whole service on 127.0.0.1, in the foreground.

One process holds it all:

* moto's server on ``127.0.0.1:<aws port>`` (default PORT + 1): DynamoDB, Step Functions running the real
  ASL file, Lambda, Secrets Manager, Scheduler, SQS, IAM and Cognito. Every boto3 client of this process
  (the handlers' too) talks to it through ``AWS_ENDPOINT_URL``; so can the AWS CLI (``--endpoint-url``).
  Its Step Functions interpreter calls Lambda back over HTTP at ``MOTO_PORT``, and those invokes run the
  project's handlers in this process (:func:`stepwise.local.stack.running`).
* the HTTP API on ``127.0.0.1:<port>`` (default 3000, or ``PORT``): each request becomes the payload 2.0
  event API Gateway would send (:func:`stepwise.local.events.http_api_event`) for the route the template
  declares (no authorizer: the API function checks the token itself, :mod:`stepwise.auth`); the handler's
  answer is written back as API Gateway writes it. Routes come from the template's ``HttpApi`` events.
  ``POST /local/token`` (local only) mints a token for a local user. Every request
  whose ``Host`` is not ``127.0.0.1``, ``localhost`` or ``[::1]`` with this port is refused (403) before
  anything else, so a web page cannot reach it by pointing a name of its own at 127.0.0.1 (DNS
  rebinding); ``/local/token`` also refuses requests a web page of another origin sends.
* the demo agents (:mod:`stepwise.local.demo`) on a free port, and the demo workflow, owned by the local
  user ``demo``, so ``stepwise token --user demo`` and the printed curl work at once.

Handlers' Powertools logs are at WARNING unless ``POWERTOOLS_LOG_LEVEL`` says otherwise; one access-log
line per request is printed instead. Ctrl-C (or SIGTERM) stops everything and exits 0.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import gc
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from stepwise.local.auth import USER_NAME_PATTERN, LocalUserPool
from stepwise.local.httpio import read_body

if TYPE_CHECKING:
    from moto.server import ThreadedMotoServer

from stepwise.local.stack import Deployment

DEFAULT_PORT = 3000
REGION = "us-east-1"
ACCOUNT = "123456789012"
# Seeds moto's random numbers before the user pool is made, so the pool, its client and the demo user's
# sub are the same on every start: tokens survive a restart, and events/api-*.json carry the demo user's
# real claims (tests/integration/test_local_stack.py checks it; regenerate them if the pool setup changes).
COGNITO_SEED = 20240601
LOCAL_TOKEN_PATH = "/local/token"  # noqa: S105 - a URL path, not a password
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit

Handler = Callable[[dict[str, Any], Any], Any]


class PortInUse(Exception):
    """A port the stack needs is taken; the message is the one line to show."""


def loopback_hosts(port: int) -> frozenset[str]:
    """The ``Host`` values the local API answers to: a loopback name with ``port`` (or alone on port 80)."""
    hosts = {f"{name}:{port}" for name in LOOPBACK_NAMES}
    if port == 80:
        hosts.update(LOOPBACK_NAMES)
    return frozenset(hosts)


def host_allowed(hosts: Sequence[str], port: int) -> bool:
    """Whether a request's ``Host`` headers are exactly one loopback name for ``port`` (DNS rebinding guard)."""
    return len(hosts) == 1 and hosts[0].strip().lower() in loopback_hosts(port)


# ------------------------------------------------------------------------------------------- routes


@dataclass(frozen=True)
class Route:
    """One ``HttpApi`` event of a template function: ``METHOD /path``."""

    method: str
    path: str
    function: str

    @property
    def key(self) -> str:
        """The route key API Gateway puts in the event, e.g. ``ANY /api/{proxy+}``."""
        return f"{self.method} {self.path}"

    @property
    def segments(self) -> list[str]:
        """The path's segments: literals, ``{name}`` and a final greedy ``{name+}``."""
        return self.path.strip("/").split("/")

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters if this route takes the request, else None."""
        if self.method not in ("ANY", method.upper()):
            return None
        parts = path.strip("/").split("/")
        parameters: dict[str, str] = {}
        for index, segment in enumerate(self.segments):
            if segment.startswith("{") and segment.endswith("+}"):
                rest = "/".join(parts[index:])
                if not rest:
                    return None
                parameters[segment[1:-2]] = rest
                return parameters
            if index >= len(parts):
                return None
            if segment.startswith("{") and segment.endswith("}"):
                if not parts[index]:
                    return None
                parameters[segment[1:-1]] = parts[index]
            elif segment != parts[index]:
                return None
        return parameters if len(parts) == len(self.segments) else None

    def specificity(self) -> tuple[int, int, int]:
        """Lower is more specific: API Gateway prefers literal paths, then variables, then greedy ones."""
        greedy = sum(1 for s in self.segments if s.endswith("+}"))
        variables = sum(1 for s in self.segments if s.startswith("{"))
        return (greedy, variables, 1 if self.method == "ANY" else 0)


def template_routes(template: Mapping[str, Any]) -> list[Route]:
    """Every ``HttpApi`` event of every function in the template."""
    from stepwise.local.template import resources_of_type

    routes: list[Route] = []
    for logical_id, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        for event in ((resource.get("Properties") or {}).get("Events") or {}).values():
            if event.get("Type") != "HttpApi":
                continue
            properties = event.get("Properties") or {}
            method = str(properties.get("Method", "ANY")).upper()
            routes.append(
                Route(
                    method="ANY" if method == "X-AMAZON-APIGATEWAY-ANY-METHOD" else method,
                    path=str(properties.get("Path", "/")),
                    function=logical_id,
                )
            )
    return routes


def select_route(routes: Sequence[Route], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The route API Gateway would pick for the request (the most specific match), with its parameters."""
    matches = [(route, params) for route in routes if (params := route.match(method, path)) is not None]
    if not matches:
        return None
    return min(matches, key=lambda match: match[0].specificity())


# ----------------------------------------------------------------------------------------- gateway


@dataclass(frozen=True)
class HttpRequest:
    """One HTTP request as it reached the local API: ``target`` is the path with its query string."""

    method: str
    target: str
    headers: Sequence[tuple[str, str]]
    body: bytes
    source_ip: str

    @property
    def path(self) -> str:
        """The path without the query string."""
        return self.target.split("?", 1)[0]

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        return next((value for key, value in self.headers if key.lower() == name), None)


@dataclass
class GatewayResponse:
    """What goes back to the HTTP client."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _json_response(status: int, body: Any, extra: Sequence[tuple[str, str]] = ()) -> GatewayResponse:
    return GatewayResponse(status, [("content-type", "application/json"), *extra], json.dumps(body).encode())


def lambda_result_to_response(result: Any) -> GatewayResponse:
    """Turn a handler's return value into the HTTP answer, as an HTTP API (payload 2.0) integration does.

    A dict with ``statusCode`` is a full response (``headers``, ``multiValueHeaders``, ``cookies``,
    ``body``, ``isBase64Encoded``); anything else is a 200 whose JSON body is the value.
    """
    if not isinstance(result, dict) or "statusCode" not in result:
        return _json_response(200, result)
    status = int(result["statusCode"])
    headers: list[tuple[str, str]] = []
    for name, value in (result.get("headers") or {}).items():
        headers.append((str(name), str(value)))
    for name, values in (result.get("multiValueHeaders") or {}).items():
        already = {existing.lower() for existing, _ in headers}
        if str(name).lower() in already:
            continue
        headers.extend((str(name), str(value)) for value in values)
    headers.extend(("set-cookie", str(cookie)) for cookie in result.get("cookies") or [])
    body = result.get("body")
    if body is None:
        payload = b""
    elif result.get("isBase64Encoded"):
        payload = base64.b64decode(str(body))
    else:
        payload = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return GatewayResponse(status, headers, payload)


class LocalGateway:
    """API Gateway's part: route, build the event, call the function, shape the answer."""

    def __init__(self, routes: Sequence[Route], users: LocalUserPool, deployment: Deployment, port: int) -> None:
        self.routes = list(routes)
        self.users = users
        self.deployment = deployment
        self.port = port
        self._handlers: dict[str, Handler] = {}
        # One request at a time per function, as one warm Lambda instance would take them (Powertools'
        # resolver keeps the current event on a module-level object).
        self._locks: dict[str, threading.Lock] = {}

    def load_handlers(self) -> None:
        """Import every routed function's handler now, so the first request is not a cold start."""
        for route in self.routes:
            if route.function not in self._handlers:
                name = self.deployment.function_names[route.function]
                self._handlers[route.function] = self.deployment.handler_for(name)
                self._locks[route.function] = threading.Lock()

    def handle(self, request: HttpRequest) -> GatewayResponse:
        """Answer one HTTP request."""
        if request.path == LOCAL_TOKEN_PATH:
            return self._local_token(request)
        selected = select_route(self.routes, request.method, request.path)
        if selected is None:
            return _json_response(404, {"message": "Not Found"})
        route, parameters = selected
        return self._invoke(route, parameters, request)

    def _invoke(self, route: Route, parameters: dict[str, str], request: HttpRequest) -> GatewayResponse:
        from stepwise.local.events import http_api_event
        from stepwise.local.lambda_routing import LocalLambdaContext

        forwarded = [
            ("x-forwarded-for", request.source_ip),
            ("x-forwarded-port", str(self.port)),
            ("x-forwarded-proto", "http"),
        ]
        event = http_api_event(
            request.method,
            request.target,
            headers=[*request.headers, *forwarded],
            body=request.body or None,
            source_ip=request.source_ip,
            domain=f"127.0.0.1:{self.port}",
        )
        event["routeKey"] = event["requestContext"]["routeKey"] = route.key
        if parameters:
            event["pathParameters"] = parameters
        else:
            event.pop("pathParameters", None)
        name = self.deployment.function_names[route.function]
        spec = self.deployment.specs[route.function]
        context = LocalLambdaContext(
            function_name=name,
            invoked_function_arn=f"arn:aws:lambda:{self.deployment.region}:{ACCOUNT}:function:{name}",
            memory_limit_in_mb=spec.memory,
            timeout_seconds=spec.timeout,
        )
        try:
            with self._locks[route.function]:
                result = self._handlers[route.function](event, context)
            response = lambda_result_to_response(result)
        except Exception:
            # API Gateway's answer when the integration fails; the traceback is for the developer.
            traceback.print_exc()
            response = _json_response(500, {"message": "Internal Server Error"})
        response.headers.append(("apigw-requestid", str(event["requestContext"]["requestId"])))
        return response

    def _local_token(self, request: HttpRequest) -> GatewayResponse:
        if request.method.upper() != "POST":
            return _json_response(405, {"success": False, "error": f"use POST {LOCAL_TOKEN_PATH}"})
        origin = request.header("origin")
        if origin is not None and origin.strip().lower() not in {f"http://{h}" for h in loopback_hosts(self.port)}:
            # A browser names the page that sent the request; the CLI and curl send no Origin.
            return _json_response(403, {"success": False, "error": "tokens are not given to other web pages"})
        try:
            asked = json.loads(request.body or b"{}")
        except ValueError:
            asked = None
        user = asked.get("user") if isinstance(asked, dict) else None
        admin = asked.get("admin", False) if isinstance(asked, dict) else False
        if not isinstance(user, str) or not re.match(USER_NAME_PATTERN, user) or not isinstance(admin, bool):
            return _json_response(
                400,
                {
                    "success": False,
                    "error": 'send {"user": "NAME", "admin": false}; NAME is 1-64 of A-Z a-z 0-9 . _ @ + -',
                },
            )
        try:
            issued = self.users.token_for(user, admin=admin)
        except Exception as error:
            traceback.print_exc()
            return _json_response(500, {"success": False, "error": f"the local user pool refused: {error}"})
        if "text/plain" in (request.header("accept") or ""):
            return GatewayResponse(200, [("content-type", "text/plain")], issued.token.encode())
        return _json_response(200, issued.as_json())


# ------------------------------------------------------------------------------------------- server


class _GatewayServer(ThreadingHTTPServer):
    daemon_threads = True
    gateway: LocalGateway | None = None
    out: TextIO = sys.stdout


class _GatewayRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "stepwise-local"
    server: _GatewayServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one access-log line per request is written by _serve

    def _read_body(self) -> bytes:
        return read_body(self)

    def _serve(self) -> None:
        started = time.monotonic()
        gateway = self.server.gateway
        body = self._read_body()  # read even when refused, so the connection stays usable
        if not host_allowed(self.headers.get_all("Host") or [], int(self.server.server_address[1])):
            response = _json_response(403, {"message": "Forbidden: the local stack answers only to localhost"})
        elif gateway is None:
            response = _json_response(503, {"message": "Service Unavailable"})
        elif len(body) > MAX_BODY_BYTES:
            response = _json_response(413, {"message": "Request Entity Too Large"})
        else:
            request = HttpRequest(self.command, self.path, list(self.headers.items()), body, self.client_address[0])
            response = gateway.handle(request)
        try:
            self.send_response(response.status)
            for name, value in response.headers:
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up waiting; nothing to tell it
        elapsed = (time.monotonic() - started) * 1000
        stamp = time.strftime("%H:%M:%S")
        print(
            f"{stamp} {self.command} {self.path} {response.status} {elapsed:.0f} ms", file=self.server.out, flush=True
        )

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve


def _port_in_use(port: int, hint: str) -> PortInUse:
    return PortInUse(f"stepwise dev: port {port} is already in use (set {hint}=... to use another)")


def bind_api_server(port: int) -> _GatewayServer:
    """Claim 127.0.0.1:``port`` now, so a taken port fails at once; :func:`listen` opens it when ready.

    Until then a client's connection is refused outright rather than left waiting in a backlog.
    """
    server = _GatewayServer(("127.0.0.1", port), _GatewayRequestHandler, bind_and_activate=False)
    try:
        server.server_bind()
    except OSError as error:
        server.server_close()
        if error.errno == errno.EADDRINUSE:
            raise _port_in_use(port, "PORT") from error
        raise
    return server


def listen(server: _GatewayServer, port: int) -> None:
    """Start accepting connections on a server from :func:`bind_api_server`."""
    try:
        server.server_activate()
    except OSError as error:
        if error.errno == errno.EADDRINUSE:  # another process bound the port at the same moment
            raise _port_in_use(port, "PORT") from error
        raise


def check_port_free(port: int, flag: str) -> None:
    """Raise :class:`PortInUse` if something listens on 127.0.0.1:``port``."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind(("127.0.0.1", port))
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise _port_in_use(port, flag) from error
        raise
    finally:
        probe.close()


# -------------------------------------------------------------------------------------------- stack


@contextlib.contextmanager
def _moto_server(port: int) -> Iterator[ThreadedMotoServer]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class LocalStack:
    """What :func:`local_stack` started."""

    api_url: str
    aws_url: str
    gateway: LocalGateway
    users: LocalUserPool
    deployment: Deployment
    demo_workflow_id: str
    demo_agents_url: str


@contextlib.contextmanager
def local_stack(port: int, aws_port: int, project_dir: Path) -> Iterator[LocalStack]:
    """Start moto's server, deploy the template into it, make the user pool and the demo; undo on exit."""
    import boto3
    import requests

    from stepwise import wiring
    from stepwise.local import demo
    from stepwise.local.schedule_clock import ScheduleClock
    from stepwise.local.stack import environment, provision, running
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
    }
    drop = ["AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_DEFAULT_PROFILE"]
    with contextlib.ExitStack() as stack:
        stack.enter_context(environment(values, drop))
        stack.enter_context(_moto_server(aws_port))
        requests.post(
            f"{aws_url}/moto-api/config", json={"stepfunctions": {"execute_state_machine": True}}, timeout=10
        ).raise_for_status()
        deployment = stack.enter_context(running(provision(project_dir, REGION)))

        # Every moto request draws on its random numbers (request ids at least): nothing else may call moto
        # from the seed until the pool, its client and the demo user exist, or their ids change.
        requests.post(f"{aws_url}/moto-api/seed", params={"a": str(COGNITO_SEED)}, timeout=10).raise_for_status()
        users = LocalUserPool.create(boto3.session.Session(region_name=REGION).client("cognito-idp"), REGION)
        demo_sub = users.ensure_user(demo.DEMO_USER, admin=False)
        stack.enter_context(environment(users.api_environment(aws_url)))  # the API function's token settings

        agents = stack.enter_context(demo.DemoAgentServer(aws_port + 1))
        seeded = demo.seed(wiring.api().store, demo_sub, agents.url)
        # moto stores schedules but never fires them: this clock does. It starts only now (its thread calls
        # moto every tick; see the seed above) and, entered after moto, stops before moto does.
        stack.enter_context(ScheduleClock.for_deployment(deployment).running())

        gateway = LocalGateway(template_routes(load_template(project_dir)), users, deployment, port)
        gateway.load_handlers()
        yield LocalStack(
            api_url=f"http://127.0.0.1:{port}",
            aws_url=aws_url,
            gateway=gateway,
            users=users,
            deployment=deployment,
            demo_workflow_id=seeded.workflow_id,
            demo_agents_url=agents.url,
        )


def _cli_command() -> str:
    # How the user can call the CLI: the venv's script, relative to where they stand when it is below.
    script = Path(sys.executable).parent / "stepwise"
    if not script.exists():
        return "stepwise"
    with contextlib.suppress(ValueError):
        return str(script.relative_to(Path.cwd()))
    return str(script)


def banner(stack: LocalStack, seconds: float) -> str:
    """The lines printed once the stack is up."""
    cli = _cli_command()
    if stack.api_url != f"http://127.0.0.1:{DEFAULT_PORT}":
        # The CLI's default URL is the default port: say where this stack is.
        cli = f"STEPWISE_URL={stack.api_url} {cli}"
    table = stack.deployment.environment["TABLE_NAME"]
    token_curl = f"curl -s -X POST {stack.api_url}{LOCAL_TOKEN_PATH} -H 'accept: text/plain' -d '{{\"user\":\"demo\"}}'"
    start_curl = (
        f"curl -s -X POST {stack.api_url}/api/workflows/execute/{stack.demo_workflow_id} "
        '-H "Authorization: Bearer $STEPWISE_TOKEN"'
    )
    return "\n".join(
        [
            f"stepwise dev: ready in {seconds:.1f} s (Ctrl-C stops it)",
            f"  API         {stack.api_url}   (OpenAPI: {stack.api_url}/api/openapi.json)",
            f"  AWS         {stack.aws_url}   (aws --endpoint-url {stack.aws_url} --region {REGION} "
            f"dynamodb scan --table-name {table}; any credentials)",
            f"  token       export STEPWISE_TOKEN=$({cli} token --user demo)",
            f"              or: export STEPWISE_TOKEN=$({token_curl})",
            f"  demo        workflow {stack.demo_workflow_id} of user demo; agents at {stack.demo_agents_url}",
            f"  run it      {start_curl}",
            f"              or: {cli} run {stack.demo_workflow_id} --watch",
        ]
    )


# --------------------------------------------------------------------------------------------- main


def _quiet_libraries() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request otherwise
    warnings.filterwarnings("ignore", message="No application metrics to publish")


def _interrupt(signum: int, frame: Any) -> None:
    # The first Ctrl-C or SIGTERM stops the stack; later ones must not cut the cleanup short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Executions still in flight fail as moto goes away; their warnings would only be noise now.
    logging.getLogger("moto").setLevel(logging.CRITICAL)
    raise KeyboardInterrupt


def serve(port: int = DEFAULT_PORT, aws_port: int | None = None, *, project_dir: Path | None = None) -> int:
    """Run the local stack until Ctrl-C or SIGTERM; returns the exit code (0; 1 when it cannot start)."""
    started = time.monotonic()
    aws_port = aws_port or port + 1
    _quiet_libraries()
    try:
        from stepwise.local.stack import project_root

        project_dir = project_dir or project_root()
        api_server = bind_api_server(port)
    except (PortInUse, FileNotFoundError) as error:
        print(error if isinstance(error, PortInUse) else f"stepwise dev: {error}", file=sys.stderr)
        return 1
    previous = {number: signal.signal(number, _interrupt) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        check_port_free(aws_port, "--aws-port")
        with local_stack(port, aws_port, project_dir) as stack:
            api_server.gateway = stack.gateway
            listen(api_server, port)
            thread = threading.Thread(
                target=api_server.serve_forever, kwargs={"poll_interval": 0.2}, name="http-api", daemon=True
            )
            thread.start()
            try:
                print(banner(stack, time.monotonic() - started), flush=True)
                threading.Event().wait()
            finally:
                api_server.shutdown()  # before the stack goes, so no request meets a stopped moto
    except PortInUse as error:
        print(error, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        api_server.server_close()
        for number, handler in previous.items():
            signal.signal(number, handler)
    print("stepwise dev: stopped", flush=True)
    # Everything is stopped: spare the exit a full collection of moto's large heap (seconds otherwise).
    gc.freeze()
    return 0
