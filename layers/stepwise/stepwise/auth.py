"""Bearer tokens: the API function checks each request's JWT itself, against the user pool's keys.

Why here and not in API Gateway: an HTTP API's JWT authorizer answers a refusal itself, with a body of
its own (``{"message": "Unauthorized"}``) that no setting can shape, so a client could neither parse it
as the API's error envelope nor learn what was wrong. The HTTP API's routes carry no authorizer; this
module decides instead, with the same code in AWS and on the laptop (where the local stack's gateway
passes the ``Authorization`` header through, as API Gateway does for a route without an authorizer).

What a token must be, as API Gateway's JWT authorizer checks it: a JWT signed with RS256 by a key of the
issuer's JWKS (fetched once per container and cached by ``kid``), ``iss`` equal to the configured issuer,
``aud`` (or, for an access token, which has none, ``client_id``) equal to the configured app client,
and ``exp`` in the future, ``nbf`` and ``iat`` not in the future. Each refusal says which rule the token
broke (:class:`TokenRefused`, a 401); :func:`stepwise.identity.caller_from_claims` then wants a ``sub``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import jwt

from stepwise.errors import Unauthorized

# Cognito signs with RS256; accepting only it rules out "alg": "none" and HMAC-with-the-public-key tricks.
ALGORITHM = "RS256"
# Clocks of the token's issuer and of Lambda may differ by a little.
LEEWAY_SECONDS = 5


class TokenRefused(Unauthorized):
    """A request's token cannot be accepted (401); the message says why, ``token_presented`` if there was one."""

    def __init__(self, message: str, *, token_presented: bool = True) -> None:
        super().__init__(message)
        self.token_presented = token_presented

    @property
    def challenge(self) -> str:
        """The ``www-authenticate`` value for this refusal (RFC 6750)."""
        if not self.token_presented:
            return "Bearer"
        description = self.message.replace('"', "'")
        return f'Bearer error="invalid_token", error_description="{description}"'


def bearer_token(authorization: str | None) -> str:
    """The token in an ``Authorization`` value: what follows ``Bearer``, or the value itself."""
    value = (authorization or "").strip()
    scheme, _, rest = value.partition(" ")
    if scheme.lower() == "bearer":
        value = rest.strip()
    if not value:
        raise TokenRefused("No token: send the header 'Authorization: Bearer <token>'", token_presented=False)
    return value


def _timestamp(seconds: Any) -> str:
    try:
        moment = datetime.fromtimestamp(float(seconds), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return str(seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TokenVerifier:
    """Checks bearer tokens of one issuer and app client against the issuer's keys."""

    def __init__(self, issuer: str, audience: str, keys: jwt.PyJWKClient) -> None:
        self.issuer = issuer
        self.audience = audience
        self.keys = keys

    @classmethod
    def for_jwks_url(cls, issuer: str, audience: str, jwks_url: str) -> TokenVerifier:
        """A verifier whose keys are fetched from ``jwks_url`` on first use and then kept by ``kid``."""
        return cls(issuer, audience, jwt.PyJWKClient(jwks_url, cache_keys=True, timeout=5))

    def claims(self, authorization: str | None) -> dict[str, Any]:
        """The verified claims of the token in an ``Authorization`` value, else :class:`TokenRefused`.

        A JWKS that cannot be fetched is the service's failure, not the caller's: PyJWT's
        ``PyJWKClientConnectionError`` goes up as it is (a 500, logged).
        """
        token = bearer_token(authorization)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as error:
            raise TokenRefused("The token is not a JWT: expected three base64url parts joined by dots") from error
        algorithm = header.get("alg")
        if algorithm != ALGORITHM:
            raise TokenRefused(f"The token is signed with {algorithm!r}; this API accepts only {ALGORITHM} tokens")
        key = self._key_for(token)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[ALGORITHM],
                leeway=LEEWAY_SECONDS,
                options={"verify_aud": False, "verify_iss": False, "require": ["exp"]},
            )
        except jwt.InvalidSignatureError as error:
            raise TokenRefused("The token's signature is invalid: it was not signed by this API's user pool") from error
        except jwt.ExpiredSignatureError as error:
            expired = jwt.decode(token, options={"verify_signature": False}).get("exp")
            raise TokenRefused(f"The token expired at {_timestamp(expired)}; get a new one") from error
        except jwt.ImmatureSignatureError as error:
            unverified = jwt.decode(token, options={"verify_signature": False})
            start = unverified.get("nbf", unverified.get("iat"))
            raise TokenRefused(f"The token is not valid before {_timestamp(start)}") from error
        except jwt.MissingRequiredClaimError as error:
            raise TokenRefused(f"The token has no '{error.claim}' claim") from error
        except jwt.InvalidTokenError as error:
            raise TokenRefused(f"The token is invalid: {error}") from error
        self._check_issuer_and_audience(claims)
        return claims

    def _key_for(self, token: str) -> jwt.PyJWK:
        try:
            return self.keys.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError:
            raise
        except jwt.PyJWKClientError as error:
            # No key of the pool has the token's kid: someone else signed it.
            raise TokenRefused(
                "The token's signature is invalid: it was not signed by a key of this API's user pool"
            ) from error
        except jwt.DecodeError as error:
            raise TokenRefused("The token is not a JWT: its claims are not valid base64url JSON") from error

    def _check_issuer_and_audience(self, claims: Mapping[str, Any]) -> None:
        if claims.get("iss") != self.issuer:
            raise TokenRefused(f"The token was issued by {claims.get('iss')!r}, not by this API's user pool")
        # An ID token names its app client in aud; an access token in client_id (and has no aud).
        audience = claims["aud"] if "aud" in claims else claims.get("client_id")
        values = audience if isinstance(audience, list) else [audience]
        if self.audience not in values:
            raise TokenRefused(f"The token is for client {audience!r}, not for this API's app client")


@lru_cache(maxsize=4)
def verifier_for(issuer: str, audience: str, jwks_url: str) -> TokenVerifier:
    """The container's verifier for these settings: its keys are fetched once and cached with it."""
    return TokenVerifier.for_jwks_url(issuer, audience, jwks_url)
