"""Unit tests touch no network, no moto and no subprocess: a test that needs one belongs in tests/integration.

Every unit test runs with socket connect and bind, name lookups (numeric addresses still resolve), moto's
mock start and subprocess launches replaced by a failure that names this rule, so a test that crosses the
line fails at once instead of quietly slowing the suite down. botocore's Stubber answers in process and
opens no socket, so tests built on it pass.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable
from typing import Any, NoReturn

import pytest

RULE = (
    "unit tests open no socket, start no moto and run no subprocess (tests/unit/conftest.py); "
    "move this test to tests/integration"
)


def _refusal(what: str) -> Callable[..., NoReturn]:
    def refuse(*args: Any, **kwargs: Any) -> NoReturn:
        # pytest.fail raises an exception that `except Exception` does not catch: no retry loop swallows it.
        pytest.fail(f"{what} in a unit test: {RULE}")

    return refuse


_real_getaddrinfo = socket.getaddrinfo


# The parameters keep socket.getaddrinfo's names: callers pass them by keyword (type=...).
def _numeric_getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> Any:
    try:
        return _real_getaddrinfo(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
    except socket.gaierror:
        pytest.fail(f"a name lookup of {host!r} in a unit test: {RULE}")


@pytest.fixture(autouse=True)
def _no_network_moto_or_subprocess(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.core.models import MockAWS, botocore_stubber

    if botocore_stubber.enabled:
        pytest.fail(f"moto is on as this unit test starts (an earlier test left it on): {RULE}")
    monkeypatch.setattr(socket.socket, "connect", _refusal("a socket connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", _refusal("a socket connect"))
    monkeypatch.setattr(socket.socket, "bind", _refusal("a socket bind"))
    monkeypatch.setattr(socket, "getaddrinfo", _numeric_getaddrinfo)
    monkeypatch.setattr(MockAWS, "start", _refusal("moto's mock_aws"))
    monkeypatch.setattr(subprocess.Popen, "_execute_child", _refusal("a subprocess"))
