"""Local users and bearer tokens: a Cognito user pool in moto, and an issuer of our own for tests.

:class:`LocalUserPool` creates what ``template.yaml`` creates for sign-in (a user pool, an app client
and the ``admin`` group) in the local stack's moto, and mints ID tokens for local users, creating a
user on first use. Every local user has the same fixed password, :data:`LOCAL_PASSWORD`: the pool
exists only inside moto on 127.0.0.1, and tokens are signed with the key that ships inside moto. A token
lives one hour (moto's fixed lifetime, whatever the pool says). The API function checks the tokens
itself (:mod:`stepwise.auth`) against the keys moto's server serves for the pool; the local gateway only
passes the ``Authorization`` header on, as API Gateway does for a route without an authorizer.

:class:`LocalTokenIssuer` is for runs without moto's server (tests and the bench drive the handler in
process): an RSA key made when it starts, its JWKS served on 127.0.0.1, tokens for any ``sub``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from stepwise.identity import ADMIN_GROUP

if TYPE_CHECKING:
    from mypy_boto3_cognito_idp import CognitoIdentityProviderClient

# Local only: moto's user pool on 127.0.0.1 needs some password to run ADMIN_USER_PASSWORD_AUTH.
LOCAL_PASSWORD = "Stepwise-local-only-1"  # noqa: S105 - not a secret; see the module docstring
USER_NAME_PATTERN = r"^[A-Za-z0-9._@+-]{1,64}$"
JWKS_PATH = "/.well-known/jwks.json"


# ------------------------------------------------------------------------------------------- the pool


@dataclass(frozen=True)
class IssuedToken:
    """An ID token for a local user, as ``POST /local/token`` answers it."""

    token: str
    user: str
    sub: str
    admin: bool
    expires_in: int

    def as_json(self) -> dict[str, Any]:
        """The answer body of ``POST /local/token``."""
        return {
            "token": self.token,
            "user": self.user,
            "sub": self.sub,
            "admin": self.admin,
            "expiresIn": self.expires_in,
        }


class LocalUserPool:
    """The local stack's Cognito user pool: users created on first use, ID tokens on request."""

    def __init__(self, client: CognitoIdentityProviderClient, pool_id: str, client_id: str, region: str) -> None:
        self.client = client
        self.pool_id = pool_id
        self.client_id = client_id
        self.region = region
        self._lock = threading.Lock()

    @classmethod
    def create(cls, client: CognitoIdentityProviderClient, region: str, name: str = "stepwise-local") -> LocalUserPool:
        """Create the pool, its app client and the ``admin`` group (as the template's UserPool does)."""
        pool_id = client.create_user_pool(
            PoolName=f"{name}-users",
            AdminCreateUserConfig={"AllowAdminCreateUserOnly": True},
        )["UserPool"]["Id"]
        client_id = client.create_user_pool_client(
            UserPoolId=pool_id,
            ClientName=f"{name}-client",
            GenerateSecret=False,
            ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        )["UserPoolClient"]["ClientId"]
        client.create_group(UserPoolId=pool_id, GroupName=ADMIN_GROUP, Description="May see every user's data.")
        return cls(client, pool_id, client_id, region)

    @classmethod
    def find(
        cls, client: CognitoIdentityProviderClient, region: str, name: str = "stepwise-local"
    ) -> LocalUserPool | None:
        """The pool and app client :meth:`create` made at a previous start (a resumed state), or None."""
        pools = client.list_user_pools(MaxResults=60)["UserPools"]
        pool_id = next((pool["Id"] for pool in pools if pool.get("Name") == f"{name}-users" and "Id" in pool), None)
        if pool_id is None:
            return None
        clients = client.list_user_pool_clients(UserPoolId=pool_id, MaxResults=60)["UserPoolClients"]
        client_id = next(
            (c["ClientId"] for c in clients if c.get("ClientName") == f"{name}-client" and "ClientId" in c), None
        )
        return cls(client, pool_id, client_id, region) if client_id is not None else None

    @property
    def issuer(self) -> str:
        """The ``iss`` of this pool's tokens (the API function's ``JWT_ISSUER``)."""
        return f"https://cognito-idp.{self.region}.amazonaws.com/{self.pool_id}"

    def jwks_url(self, endpoint: str) -> str:
        """Where the moto server at ``endpoint`` serves this pool's public keys."""
        return f"{endpoint.rstrip('/')}/{self.pool_id}{JWKS_PATH}"

    def api_environment(self, endpoint: str) -> dict[str, str]:
        """The API function's token settings for this pool, its keys served by the moto server at ``endpoint``."""
        return {"JWT_ISSUER": self.issuer, "JWT_AUDIENCE": self.client_id, "JWKS_URL": self.jwks_url(endpoint)}

    def ensure_user(self, name: str, *, admin: bool) -> str:
        """Create the user on first use and set its ``admin`` membership; returns its ``sub``."""
        with self._lock:
            try:
                user = self.client.admin_get_user(UserPoolId=self.pool_id, Username=name)
                attributes = user["UserAttributes"]
            except self.client.exceptions.UserNotFoundException:
                created = self.client.admin_create_user(
                    UserPoolId=self.pool_id, Username=name, MessageAction="SUPPRESS"
                )
                attributes = created["User"].get("Attributes", [])
                self.client.admin_set_user_password(
                    UserPoolId=self.pool_id, Username=name, Password=LOCAL_PASSWORD, Permanent=True
                )
            groups = {
                group["GroupName"]
                for group in self.client.admin_list_groups_for_user(UserPoolId=self.pool_id, Username=name)["Groups"]
                if "GroupName" in group
            }
            if admin and ADMIN_GROUP not in groups:
                self.client.admin_add_user_to_group(UserPoolId=self.pool_id, Username=name, GroupName=ADMIN_GROUP)
            elif not admin and ADMIN_GROUP in groups:
                self.client.admin_remove_user_from_group(UserPoolId=self.pool_id, Username=name, GroupName=ADMIN_GROUP)
        return next(a["Value"] for a in attributes if a["Name"] == "sub" and "Value" in a)

    def token_for(self, name: str, *, admin: bool = False) -> IssuedToken:
        """An ID token for user ``name`` (created on first use); ``admin`` puts it in the admin group."""
        sub = self.ensure_user(name, admin=admin)
        result = self.client.admin_initiate_auth(
            UserPoolId=self.pool_id,
            ClientId=self.client_id,
            AuthFlow="ADMIN_USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": name, "PASSWORD": LOCAL_PASSWORD},
        )["AuthenticationResult"]
        return IssuedToken(
            token=result["IdToken"], user=name, sub=sub, admin=admin, expires_in=int(result.get("ExpiresIn", 3600))
        )


# ------------------------------------------------------------------------------------------ the issuer


class LocalTokenIssuer:
    """An issuer of test tokens: its own RSA key, its JWKS on ``127.0.0.1:<free port>`` while running."""

    def __init__(self, issuer: str = "https://issuer.stepwise.test/pool", audience: str = "stepwise-test") -> None:
        self.issuer = issuer
        self.audience = audience
        self.key_id = "stepwise-test"
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
        self.jwks = {"keys": [{**public, "kid": self.key_id, "use": "sig", "alg": "RS256"}]}
        self.jwks_url = ""

    @contextmanager
    def serving(self) -> Iterator[LocalTokenIssuer]:
        """Serve the JWKS on a free port of 127.0.0.1 until the block ends."""
        body = json.dumps(self.jwks).encode()

        class Keys(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                found = self.path == JWKS_PATH
                self.send_response(200 if found else 404)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body) if found else 0))
                self.end_headers()
                if found:
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Keys)
        thread = threading.Thread(target=server.serve_forever, name="jwks", daemon=True)
        thread.start()
        self.jwks_url = f"http://127.0.0.1:{server.server_port}{JWKS_PATH}"
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()

    def api_environment(self) -> dict[str, str]:
        """The API function's token settings for this issuer (inside :meth:`serving`)."""
        return {"JWT_ISSUER": self.issuer, "JWT_AUDIENCE": self.audience, "JWKS_URL": self.jwks_url}

    def token(self, sub: str, groups: Sequence[str] = (), **claims: Any) -> str:
        """An ID token for ``sub`` in ``groups``, valid for an hour; ``claims`` add to or replace its claims."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "sub": sub,
            "iss": self.issuer,
            "aud": self.audience,
            "token_use": "id",
            "iat": now,
            "exp": now + 3600,
        }
        if groups:
            payload["cognito:groups"] = list(groups)
        return jwt.encode({**payload, **claims}, self._key, algorithm="RS256", headers={"kid": self.key_id})
