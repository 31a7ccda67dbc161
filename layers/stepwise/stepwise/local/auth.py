"""Local users and bearer tokens: a Cognito user pool in moto, and the HTTP API's JWT authorizer.

:class:`LocalUserPool` creates what ``template.yaml`` creates for sign-in (a user pool, an app client
and the ``admin`` group) in the local stack's moto, and mints ID tokens for local users, creating a
user on first use. Every local user has the same fixed password, :data:`LOCAL_PASSWORD`: the pool
exists only inside moto on 127.0.0.1, and tokens are signed with the key that ships inside moto.

:class:`JwtAuthorizer` checks a request's ``Authorization`` header the way API Gateway's HTTP API JWT
authorizer does before the function runs: the token (alone or after ``Bearer``), an RSA algorithm, a
``kid`` naming a key of the pool's JWKS, the signature, ``iss`` equal to the configured issuer, ``aud``
(or, only when there is no ``aud``, ``client_id``) among the configured audiences, ``exp`` in the
future, and ``nbf`` / ``iat`` (when present) not in the future. Any failure is a 401 before the handler
runs; a valid token's claims go into the event as the authorizer would put them.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt

from stepwise.identity import ADMIN_GROUP

if TYPE_CHECKING:
    from mypy_boto3_cognito_idp import CognitoIdentityProviderClient

# Local only: moto's user pool on 127.0.0.1 needs some password to run ADMIN_USER_PASSWORD_AUTH.
LOCAL_PASSWORD = "Stepwise-local-only-1"  # noqa: S105 - not a secret; see the module docstring
USER_NAME_PATTERN = r"^[A-Za-z0-9._@+-]{1,64}$"
# API Gateway accepts only RSA-signed tokens.
RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512"})


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

    @property
    def issuer(self) -> str:
        """The ``iss`` of this pool's tokens (and the JWT authorizer's configured issuer)."""
        return f"https://cognito-idp.{self.region}.amazonaws.com/{self.pool_id}"

    def jwks_url(self, endpoint: str) -> str:
        """Where the moto server at ``endpoint`` serves this pool's public keys."""
        return f"{endpoint.rstrip('/')}/{self.pool_id}/.well-known/jwks.json"

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


# ------------------------------------------------------------------------------------- the authorizer


class AuthorizationFailed(Exception):
    """The authorizer refuses the request (401); ``reason`` is what API Gateway puts in www-authenticate."""

    def __init__(self, reason: str, *, token_presented: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.token_presented = token_presented

    def www_authenticate(self) -> str | None:
        """The ``www-authenticate`` header API Gateway sends with this refusal (none without a token)."""
        if not self.token_presented:
            return None
        return f'Bearer scope="" error="invalid_token" error_description="{self.reason}"'


def bearer_token(authorization: str | None) -> str:
    """The token in an ``Authorization`` value: the value itself, or what follows ``Bearer``."""
    value = (authorization or "").strip()
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    if not value:
        raise AuthorizationFailed("no token", token_presented=False)
    return value


class JwtAuthorizer:
    """API Gateway's JWT authorizer for one issuer and its audiences, with the issuer's keys."""

    def __init__(self, issuer: str, audiences: Sequence[str], jwks: Mapping[str, Any]) -> None:
        self.issuer = issuer
        self.audiences = frozenset(audiences)
        keys = jwt.PyJWKSet.from_dict(dict(jwks))
        self._keys: dict[str, jwt.PyJWK] = {key.key_id: key for key in keys.keys if key.key_id}

    @classmethod
    def from_jwks_url(cls, issuer: str, audiences: Sequence[str], jwks_url: str) -> JwtAuthorizer:
        """Fetch the keys once (API Gateway caches them too) and build the authorizer."""
        import requests

        answer = requests.get(jwks_url, timeout=10)
        answer.raise_for_status()
        return cls(issuer, audiences, answer.json())

    def authorize(self, authorization: str | None) -> dict[str, Any]:
        """The token's claims, or :class:`AuthorizationFailed` saying why API Gateway would refuse it."""
        token = bearer_token(authorization)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as error:
            raise AuthorizationFailed("the token is malformed") from error
        algorithm = header.get("alg")
        if algorithm not in RSA_ALGORITHMS:
            raise AuthorizationFailed("the token is not signed with a supported algorithm")
        key = self._keys.get(str(header.get("kid")))
        if key is None:
            raise AuthorizationFailed("the token is not signed by a key of the issuer")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[str(algorithm)],
                options={"verify_aud": False, "verify_iss": False, "require": ["exp"]},
            )
        except jwt.ExpiredSignatureError as error:
            raise AuthorizationFailed("the token has expired") from error
        except jwt.ImmatureSignatureError as error:
            raise AuthorizationFailed("the token is not valid yet") from error
        except jwt.InvalidSignatureError as error:
            raise AuthorizationFailed("the token's signature is invalid") from error
        except jwt.InvalidTokenError as error:
            raise AuthorizationFailed(f"the token is invalid: {error}") from error
        if claims.get("iss") != self.issuer:
            raise AuthorizationFailed("the token does not have a valid issuer")
        if not self._audience_ok(claims):
            raise AuthorizationFailed("the token does not have a valid audience")
        return claims

    def _audience_ok(self, claims: Mapping[str, Any]) -> bool:
        # API Gateway evaluates aud when it is there, and client_id only when there is no aud.
        audience = claims["aud"] if "aud" in claims else claims.get("client_id")
        values = audience if isinstance(audience, list) else [audience]
        return any(isinstance(value, str) and value in self.audiences for value in values)
