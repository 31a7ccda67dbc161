"""stepwise.outbound without a network: the destination guard, URLs shown in logs, and calls refused before
any connection. Calls over real HTTP are in tests/integration/test_outbound_calls.py."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

from stepwise.outbound import (
    BlockedDestination,
    CallPolicy,
    HttpAnswer,
    OutboundError,
    call,
    check_destination,
    classify_address,
    display_url,
)

# Lets 127.0.0.1 past the guard, so what refuses a call below is the check under test.
LOCAL = CallPolicy(allow_private=True)


def test_http_answer_json_error_without_a_url() -> None:
    answer = HttpAnswer(status=200, headers={}, body=b"x" * 500, attempts=1, elapsed_ms=1)

    with pytest.raises(OutboundError) as caught:
        answer.json()
    assert str(caught.value) == "the endpoint answered with a body that is not JSON: " + "x" * 200


# ----------------------------------------------------------------------------------------------- guard


ALWAYS_BLOCKED = [
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local/metadata address"),
    ("http://169.254.1.1/", "169.254.1.1 is a link-local/metadata address"),
    ("http://[fe80::1]/", "fe80::1 is a link-local/metadata address"),
    ("http://[fd00:ec2::254]/", "fd00:ec2::254 is a cloud metadata address"),
    ("http://100.100.100.200/", "100.100.100.200 is a cloud metadata address"),
    ("http://0.0.0.0:8080/", "0.0.0.0 is an unspecified address"),
    ("http://[::]/", ":: is an unspecified address"),
    ("http://224.0.0.1/", "224.0.0.1 is a multicast address"),
    ("http://[ff02::1]/", "ff02::1 is a multicast address"),
    ("http://240.0.0.1/", "240.0.0.1 is a reserved address"),
    ("http://255.255.255.255/", "255.255.255.255 is a reserved address"),
    ("http://[::ffff:169.254.169.254]/", "::ffff:169.254.169.254 is a link-local/metadata address"),
    ("http://[::ffff:a9fe:a9fe]/", "::ffff:a9fe:a9fe is a link-local/metadata address"),
    ("http://[64:ff9b::a9fe:a9fe]/", "64:ff9b::a9fe:a9fe is a link-local/metadata address"),
]


@pytest.mark.parametrize(("url", "why"), ALWAYS_BLOCKED)
@pytest.mark.parametrize("allow_private", [False, True])
def test_guard_always_refuses(url: str, why: str, allow_private: bool) -> None:
    with pytest.raises(BlockedDestination) as caught:
        check_destination(url, allow_private=allow_private)
    assert str(caught.value).endswith(f": {why}")
    assert str(caught.value).startswith("refusing to call http://")


PRIVATE = [
    "http://10.0.0.1/",
    "http://127.0.0.1:8080/agent",
    "http://172.16.5.4/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://[::1]/",
    "http://[fd12:3456::1]/",
    "http://[::ffff:10.0.0.1]/",
    "http://192.0.2.10/",  # documentation range: not public either
]


@pytest.mark.parametrize("url", PRIVATE)
def test_guard_refuses_private_unless_allowed(url: str) -> None:
    with pytest.raises(BlockedDestination, match=r"is a (private|non-public) address \(this policy does not"):
        check_destination(url, allow_private=False)
    assert check_destination(url, allow_private=True)


def test_guard_accepts_a_public_address_and_loopback_when_allowed() -> None:
    assert check_destination("https://93.184.215.14/x") == [ipaddress.ip_address("93.184.215.14")]
    assert check_destination("http://127.0.0.1:9/", allow_private=True) == [ipaddress.ip_address("127.0.0.1")]


def test_call_refuses_private_addresses_by_default() -> None:
    with pytest.raises(BlockedDestination, match=r"127\.0\.0\.1 is a private address"):
        call("GET", "http://127.0.0.1:9/agent", policy=CallPolicy())


def test_call_refuses_the_metadata_address_without_touching_the_network() -> None:
    with pytest.raises(BlockedDestination, match="link-local/metadata"):
        call("GET", "http://169.254.169.254/latest/", policy=CallPolicy(allow_private=True))


@pytest.mark.parametrize(
    "url", ["ftp://example.com/file", "file:///etc/passwd", "gopher://example.com/", "example.com/path"]
)
def test_guard_refuses_non_http_schemes(url: str) -> None:
    with pytest.raises(BlockedDestination, match="only http and https URLs can be called"):
        check_destination(url, allow_private=True)


def test_guard_refuses_a_url_without_host() -> None:
    with pytest.raises(BlockedDestination, match="the URL has no host"):
        check_destination("http:///agent", allow_private=True)


def _fake_getaddrinfo(*addresses: str) -> Any:
    def fake(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        infos: list[tuple[Any, ...]] = []
        for address in addresses:
            if ":" in address:
                infos.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)))
            else:
                infos.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
        return infos

    return fake


def test_guard_refuses_a_name_if_any_address_is_blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _fake_getaddrinfo("93.184.215.14", "10.1.2.3"))

    with pytest.raises(BlockedDestination) as caught:
        check_destination("https://agent.example.com/run?key=abc")

    assert str(caught.value) == (
        "refusing to call https://agent.example.com/run: agent.example.com resolves to 10.1.2.3, "
        "a private address (this policy does not allow private networks)"
    )


def test_guard_accepts_a_name_with_only_public_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _fake_getaddrinfo("93.184.215.14", "2606:2800:21f:cb07::1"))

    assert len(check_destination("https://agent.example.com/")) == 2


def test_unresolvable_name_is_a_retryable_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)

    with pytest.raises(OutboundError, match=r"could not resolve nowhere\.invalid") as caught:
        check_destination("https://nowhere.invalid/")
    assert caught.value.retryable
    assert not isinstance(caught.value, BlockedDestination)


def test_numeric_host_spellings_are_resolved_before_judging() -> None:
    # 2130706433 is 127.0.0.1 written as one number; getaddrinfo resolves it without any DNS query.
    with pytest.raises(BlockedDestination, match=r"resolves to 127\.0\.0\.1, a private address"):
        check_destination("http://2130706433/")


def test_display_url_drops_credentials_query_and_fragment() -> None:
    assert display_url("https://user:pw@api.example.com:8443/v1/run?token=s3cret#frag") == (
        "https://api.example.com:8443/v1/run"
    )
    assert display_url("http://[::1]:8080/x?a=1") == "http://[::1]:8080/x"
    assert display_url("http://[bad") == "<malformed URL>"


def test_classify_address_directly() -> None:
    assert classify_address(ipaddress.ip_address("8.8.8.8"), allow_private=False) is None
    assert classify_address(ipaddress.ip_address("10.0.0.1"), allow_private=True) is None
    assert classify_address(ipaddress.ip_address("169.254.169.254"), allow_private=True) == (
        "a link-local/metadata address"
    )


def test_header_with_a_line_break_is_refused_without_echoing_it() -> None:
    with pytest.raises(OutboundError) as caught:
        call(
            "GET",
            "http://127.0.0.1:9/",
            policy=LOCAL,
            headers={"Authorization": "Bearer abc\r\nX-Injected: 1"},
        )
    assert "Authorization" in str(caught.value)
    assert "abc" not in str(caught.value)


@pytest.mark.parametrize("headers", [{"X-Price": "s3cret \u20ac"}, {"X-\u20ac": "s3cret"}])
def test_a_header_http_cannot_send_is_an_error_not_a_crash(headers: dict[str, str]) -> None:
    # An httpRequest node's header values are interpolated: what they become is known only when called.
    with pytest.raises(OutboundError, match="has a character HTTP cannot send") as caught:
        call("GET", "http://127.0.0.1:9/", policy=LOCAL, headers=headers)

    assert "s3cret" not in str(caught.value)  # never the value


def test_json_body_and_data_together_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="not both"):
        call("POST", "http://127.0.0.1:9/", policy=LOCAL, json_body={}, data="x")
