"""The pooled sessions: connections that judge the address they actually reached, before sending a byte.

The guard (:mod:`stepwise.outbound.guard`) resolves the host, but the connection resolves it again: a name
that answers a public address to the guard and 127.0.0.1 to the connection (DNS rebinding) would slip
through. So the shared sessions use connection classes that check the address actually connected to (the
socket's peer) right after the TCP connect, before TLS and before a single byte of the request is sent.
TLS, SNI and the Host header are untouched: the connection is still made by name and only its peer is
judged.

There is one session per ``allow_private`` value, so a pooled connection accepted under a permissive
policy is never reused by a strict one. ``trust_env`` is off: no proxy from the environment (with a proxy
the peer would be the proxy, not the destination, and the check would be meaningless; the adapter refuses
proxies outright) and no .netrc credentials. REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE are still honoured (read
when the session is created), so TLS verification is what it was.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import socket
import threading
from typing import Any, ClassVar

import requests
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from stepwise.outbound.errors import BlockedDestination
from stepwise.outbound.guard import classify_address


class RefusedPeer(BlockedDestination):
    """A connection's peer is not allowed (raised inside urllib3; :func:`call` rewords it with the URL)."""

    def __init__(self, host: str, port: int, address: str, why: str) -> None:
        super().__init__(f"refusing to connect to {host}:{port}: it resolved to {address} at connect time, {why}")
        self.host = host
        self.address = address
        self.why = why


def _check_peer(sock: socket.socket, connection: urllib3.connection.HTTPConnection, allow_private: bool) -> None:
    """Close ``sock`` and raise :class:`RefusedPeer` unless its peer address is allowed."""
    try:
        peer = str(sock.getpeername()[0])
    except OSError as exc:
        sock.close()
        raise urllib3.exceptions.NewConnectionError(connection, f"Failed to establish a new connection: {exc}") from exc
    try:
        why = classify_address(ipaddress.ip_address(peer), allow_private=allow_private)
    except ValueError:
        why = "not an IP address"
    if why is not None:
        sock.close()
        raise RefusedPeer(connection.host, connection.port, peer.partition("%")[0], why)


class _GuardedHTTPConnection(urllib3.connection.HTTPConnection):
    """An HTTP connection that refuses to talk to a peer the guard would refuse."""

    allow_private: ClassVar[bool] = False

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _check_peer(sock, self, self.allow_private)
        return sock


class _GuardedHTTPSConnection(_GuardedHTTPConnection, urllib3.connection.HTTPSConnection):
    """The HTTPS counterpart: the peer is checked after the TCP connect, before the TLS handshake."""


@functools.cache
def _guarded_pool_classes(allow_private: bool) -> dict[str, type[urllib3.connectionpool.HTTPConnectionPool]]:
    class Connection(_GuardedHTTPConnection):
        pass

    class SecureConnection(_GuardedHTTPSConnection):
        pass

    Connection.allow_private = SecureConnection.allow_private = allow_private

    class Pool(urllib3.connectionpool.HTTPConnectionPool):
        ConnectionCls = Connection

    class SecurePool(urllib3.connectionpool.HTTPSConnectionPool):
        ConnectionCls = SecureConnection

    return {"http": Pool, "https": SecurePool}


class _GuardedAdapter(HTTPAdapter):
    """An adapter whose pools only hand out guarded connections (see :func:`_guarded_pool_classes`)."""

    def __init__(self, *, allow_private: bool) -> None:
        self._allow_private = allow_private  # before super().__init__, which builds the pool manager
        super().__init__(pool_connections=16, pool_maxsize=16, max_retries=0)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = _guarded_pool_classes(self._allow_private)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        # Through a proxy the peer is the proxy, so the connect-time check could not protect the call.
        raise BlockedDestination("refusing to call through a proxy: the destination could not be checked")


_sessions: dict[bool, requests.Session] = {}
_sessions_lock = threading.Lock()


def shared_session(allow_private: bool) -> requests.Session:
    """The pooled session for ``allow_private``, created on first use."""
    session = _sessions.get(allow_private)
    if session is None:
        with _sessions_lock:
            session = _sessions.get(allow_private)
            if session is None:
                session = requests.Session()
                session.trust_env = False
                # trust_env also governed the CA bundle variables: keep honouring them, as requests did.
                session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
                adapter = _GuardedAdapter(allow_private=allow_private)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                _sessions[allow_private] = session
    return session
