"""The local stack's demo: an agent server that answers deterministically, and a workflow that uses it.

:class:`DemoAgentServer` is a small HTTP server on 127.0.0.1 (a free port) that speaks both agent
protocols of ``stepwise.models.agent``:

* ``POST /json`` (protocol ``json``): reads ``prompt`` and answers ``{"answer", "sentiment", "score",
  "positiveWords", "negativeWords", "agent"}``. The sentiment is ``positive`` when the prompt holds more
  words such as *good*, *great* or *love* than words such as *bad*, *broken* or *hate*, else
  ``negative`` (see :func:`analyse`).
* ``POST /v1/chat/completions`` (protocol ``openai-chat``): a chat completion whose message is a fixed
  function of the last user message (see :func:`chat_reply`).

:func:`seed` stores two agents that point at it and the demo workflow (setVariables → agentTask →
condition → agentTask → setVariables), all owned by the local user ``demo``. Their ids are fixed
(:data:`DEMO_WORKFLOW_ID` and friends: well-formed ids whose time part is zero), so the README's curl
and the sample events under ``events/`` name them without a lookup. Real ids are random; these are
local data only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from stepwise.clock import now_iso
from stepwise.local.httpio import LocalHttpServer
from stepwise.models.agent import AgentRecord
from stepwise.models.workflow import WorkflowDefinition, WorkflowView
from stepwise.store import Store

DEMO_USER = "demo"
DEMO_WORKFLOW_ID = "wf_0000000000000000000000DEM0"
DEMO_JSON_AGENT_ID = "ag_0000000000000000000000DEM1"
DEMO_CHAT_AGENT_ID = "ag_0000000000000000000000DEM2"
DEMO_CHAT_MODEL = "stepwise-demo-chat"
JSON_PATH = "/json"
CHAT_PATH = "/v1/chat/completions"

POSITIVE_WORDS = frozenset(
    {
        *("good", "great", "love", "loved", "lovely", "like", "liked", "excellent", "amazing", "awesome"),
        *("wonderful", "happy", "nice", "fantastic", "best", "perfect", "fast", "helpful", "thanks"),
    }
)
NEGATIVE_WORDS = frozenset(
    {
        *("bad", "poor", "hate", "hated", "awful", "terrible", "horrible", "worst", "broken", "slow"),
        *("useless", "angry", "disappointed", "refund", "problem", "sad"),
    }
)
_WORD = re.compile(r"[a-z']+")


# ------------------------------------------------------------------------------------------ answers


def analyse(prompt: str) -> dict[str, Any]:
    """The ``json`` agent's answer to ``prompt``: the same prompt always gets the same answer."""
    words = _WORD.findall(prompt.lower())
    positive = [word for word in words if word in POSITIVE_WORDS]
    negative = [word for word in words if word in NEGATIVE_WORDS]
    sentiment = "positive" if len(positive) > len(negative) else "negative"
    return {
        "answer": f"The text reads as {sentiment}: {len(positive)} positive and {len(negative)} negative words.",
        "sentiment": sentiment,
        "score": len(positive) - len(negative),
        "positiveWords": positive,
        "negativeWords": negative,
        "agent": "stepwise-demo",
    }


def chat_reply(prompt: str) -> str:
    """The ``openai-chat`` agent's message for the last user message ``prompt``."""
    digest = hashlib.sha256(prompt.encode()).hexdigest()[:8]
    return f"Demo reply {digest}: {prompt.strip()}"


def chat_completion(request: Any) -> dict[str, Any]:
    """A chat-completions answer to an OpenAI-style request body."""
    messages = request.get("messages") if isinstance(request, dict) else None
    prompt = ""
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            prompt = str(message.get("content") or "")
            break
    content = chat_reply(prompt)
    model = request.get("model") if isinstance(request, dict) and request.get("model") else DEMO_CHAT_MODEL
    prompt_tokens, completion_tokens = len(prompt.split()), len(content.split())
    return {
        "id": "chatcmpl-" + hashlib.sha256(prompt.encode()).hexdigest()[:16],
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


# ------------------------------------------------------------------------------------------- server


class _AgentHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "stepwise-demo-agent"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the dev stack's own access log is enough

    def _send(self, status: int, body: Any) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._send(200, {"agent": "stepwise-demo", "endpoints": {"json": JSON_PATH, "openai-chat": CHAT_PATH}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        try:
            request: Any = json.loads(raw) if raw else {}
        except ValueError:
            self._send(400, {"error": "the body is not JSON"})
            return
        path = self.path.split("?", 1)[0]
        if path == JSON_PATH:
            prompt = request.get("prompt") if isinstance(request, dict) else None
            self._send(200, analyse(str(prompt or "")))
        elif path == CHAT_PATH:
            self._send(200, chat_completion(request))
        else:
            self._send(404, {"error": f"no agent at {path}; try {JSON_PATH} or {CHAT_PATH}"})


class DemoAgentServer:
    """The demo agents on 127.0.0.1, served from a daemon thread.

    ``port`` is tried first (the local stack asks for PORT + 2, so examples can name it); when it is taken,
    or 0, any free port.
    """

    def __init__(self, port: int = 0) -> None:
        try:
            self._server = LocalHttpServer(("127.0.0.1", port), _AgentHandler)
        except OSError:
            self._server = LocalHttpServer(("127.0.0.1", 0), _AgentHandler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> DemoAgentServer:
        """Serve in the background."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="demo-agent", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=2)
            self._thread = None
        with contextlib.suppress(OSError):
            self._server.server_close()

    def __enter__(self) -> DemoAgentServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# -------------------------------------------------------------------------------------------- seed


def demo_workflow(
    json_agent_id: str = DEMO_JSON_AGENT_ID, chat_agent_id: str = DEMO_CHAT_AGENT_ID
) -> WorkflowDefinition:
    """Read a review, ask the json agent for its sentiment, and have the chat agent thank or apologise."""
    return WorkflowDefinition.model_validate(
        {
            "name": "Demo: answer a customer review",
            "description": "setVariables, agentTask (json), condition, agentTask (openai-chat); "
            "try --var review='The update is slow and broken'",
            "variables": {"customer": "Ada", "review": "I love the new editor, it is fast and the support was great"},
            "nodes": [
                {
                    "id": "prepare",
                    "type": "setVariables",
                    "config": {"values": {"request": "Sentiment of this review by ${customer}: ${review}"}},
                },
                {
                    "id": "classify",
                    "type": "agentTask",
                    "config": {"agentId": json_agent_id, "prompt": "${request}", "outputVariable": "analysis"},
                },
                {
                    "id": "route",
                    "type": "condition",
                    "config": {
                        "left": "${analysis.sentiment}",
                        "op": "eq",
                        "right": "positive",
                        "then": "thank",
                        "else": "apologize",
                    },
                },
                {
                    "id": "thank",
                    "type": "agentTask",
                    "config": {
                        "agentId": chat_agent_id,
                        "prompt": "Write one line thanking ${customer} for the review.",
                        "outputVariable": "reply",
                    },
                    "next": "finish",
                },
                {
                    "id": "apologize",
                    "type": "agentTask",
                    "config": {
                        "agentId": chat_agent_id,
                        "prompt": "Write one line to ${customer} saying sorry and offering help.",
                        "outputVariable": "reply",
                    },
                },
                {
                    "id": "finish",
                    "type": "setVariables",
                    "config": {"values": {"outcome": "answered a ${analysis.sentiment} review by ${customer}"}},
                },
            ],
            "output": ["analysis", "reply", "outcome"],
        }
    )


@dataclass(frozen=True)
class DemoSeed:
    """What :func:`seed` stored."""

    workflow_id: str
    json_agent_id: str
    chat_agent_id: str
    owner: str


def seed(store: Store, owner: str, agents_url: str) -> DemoSeed:
    """Store the demo agents (pointing at ``agents_url``) and the demo workflow, owned by ``owner``.

    What a resumed state holds already is kept as it is, except a demo agent's endpoint, which follows the demo
    agents' server to the port it has now.
    """
    timestamp = now_iso()
    agents = [
        (DEMO_JSON_AGENT_ID, "Demo sentiment agent (json)", "json", JSON_PATH, None),
        (DEMO_CHAT_AGENT_ID, "Demo writer agent (openai-chat)", "openai-chat", CHAT_PATH, DEMO_CHAT_MODEL),
    ]
    for agent_id, name, protocol, path, model in agents:
        endpoint = agents_url.rstrip("/") + path
        stored = store.get_agent(agent_id)
        if stored is not None:
            if stored.endpoint != endpoint:
                store.put_agent(stored.model_copy(update={"endpoint": endpoint, "updatedAt": timestamp}), new=False)
            continue
        record = AgentRecord(
            id=agent_id,
            owner=owner,
            name=name,
            endpoint=endpoint,
            protocol=protocol,
            model=model,
            timeoutSeconds=10,
            createdAt=timestamp,
            updatedAt=timestamp,
        )
        store.put_agent(record, new=True)
    if store.get_workflow(DEMO_WORKFLOW_ID) is None:
        definition = demo_workflow()
        view = WorkflowView(
            **definition.model_dump(),
            id=DEMO_WORKFLOW_ID,
            version=1,
            owner=owner,
            createdAt=timestamp,
            updatedAt=timestamp,
        )
        store.put_new_workflow(view)
    return DemoSeed(DEMO_WORKFLOW_ID, DEMO_JSON_AGENT_ID, DEMO_CHAT_AGENT_ID, owner)
