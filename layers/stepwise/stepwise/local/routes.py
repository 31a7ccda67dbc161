"""API Gateway's routing, read from the template: each ``HttpApi`` event of a function is a route.

:func:`template_routes` lists them (none has an authorizer: the API function checks the bearer token itself,
:mod:`stepwise.auth`), and :func:`select_route` picks the one API Gateway would pick for a request (literal
paths before ``{variables}`` before a greedy ``{proxy+}``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stepwise.local.template import resources_of_type


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
