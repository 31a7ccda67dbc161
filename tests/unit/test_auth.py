"""The bearer-token check (stepwise.auth) with keys made here: what it accepts, and what each refusal says.

The verifier's key source is PyJWT's own ``PyJWKClient``, given this module's JWKS instead of an HTTP
fetch, so kid lookup and the per-container cache are PyJWT's real ones and no socket is opened.
"""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from stepwise.auth import TokenRefused, TokenVerifier, bearer_token
from stepwise.identity import caller_from_claims

ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_pool"
CLIENT = "app-client"
KID = "key-1"


class Keys(jwt.PyJWKClient):
    """PyJWT's JWKS client over a key set held in memory; counts what would have been HTTP fetches."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        super().__init__("https://keys.example/jwks.json", cache_keys=True)
        self.jwks = jwks
        self.fetches = 0

    def fetch_data(self) -> Any:
        self.fetches += 1
        return self.jwks


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def keys(key: rsa.RSAPrivateKey) -> Keys:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return Keys({"keys": [{**public, "kid": KID, "use": "sig", "alg": "RS256"}]})


@pytest.fixture
def verifier(keys: Keys) -> TokenVerifier:
    return TokenVerifier(ISSUER, CLIENT, keys)


def token(key: Any, *, kid: str = KID, algorithm: str = "RS256", **changes: Any) -> str:
    now = int(time.time())
    claims = {"sub": "user-1", "iss": ISSUER, "aud": CLIENT, "token_use": "id", "iat": now, "exp": now + 3600}
    claims.update(changes)
    return jwt.encode(
        {k: v for k, v in claims.items() if v is not None}, key, algorithm=algorithm, headers={"kid": kid}
    )


def refusal(verifier: TokenVerifier, authorization: str | None) -> str:
    with pytest.raises(TokenRefused) as refused:
        verifier.claims(authorization)
    return refused.value.message


def test_a_valid_id_token_names_its_user_and_groups(verifier: TokenVerifier, key: rsa.RSAPrivateKey) -> None:
    claims = verifier.claims(f"Bearer {token(key, **{'cognito:groups': ['admin']})}")

    caller = caller_from_claims(claims)
    assert caller.sub == "user-1"
    assert caller.is_admin


def test_an_access_token_is_checked_by_its_client_id(verifier: TokenVerifier, key: rsa.RSAPrivateKey) -> None:
    # Cognito's access tokens carry client_id and no aud.
    access = token(key, aud=None, client_id=CLIENT, token_use="access")

    assert verifier.claims(access)["sub"] == "user-1"
    assert "not for this API's app client" in refusal(verifier, token(key, aud=None, client_id="other"))


def test_the_keys_are_fetched_once_per_container(verifier: TokenVerifier, keys: Keys, key: rsa.RSAPrivateKey) -> None:
    for _ in range(5):
        verifier.claims(token(key))

    assert keys.fetches == 1


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer   "])
def test_no_token(verifier: TokenVerifier, authorization: str | None) -> None:
    with pytest.raises(TokenRefused) as refused:
        verifier.claims(authorization)

    assert refused.value.message == "No token: send the header 'Authorization: Bearer <token>'"
    assert refused.value.status_code == 401
    assert refused.value.challenge == "Bearer"


@pytest.mark.parametrize("value", ["not-a-jwt", "Bearer a.b.c", "Bearer " + "x" * 40])
def test_not_a_jwt(verifier: TokenVerifier, value: str) -> None:
    assert refusal(verifier, value).startswith("The token is not a JWT")


def test_a_token_signed_by_another_key_with_the_pools_kid(
    verifier: TokenVerifier, other_key: rsa.RSAPrivateKey
) -> None:
    message = refusal(verifier, token(other_key))

    assert message == "The token's signature is invalid: it was not signed by this API's user pool"


def test_a_token_whose_kid_the_pool_does_not_have(verifier: TokenVerifier, other_key: rsa.RSAPrivateKey) -> None:
    message = refusal(verifier, token(other_key, kid="someone-elses"))

    assert message == "The token's signature is invalid: it was not signed by a key of this API's user pool"


def test_a_token_signed_with_a_shared_secret(verifier: TokenVerifier) -> None:
    # HS256 "signed" with anything: only the pool's RSA keys count.
    forged = jwt.encode({"sub": "x", "iss": ISSUER, "aud": CLIENT, "exp": 2**31}, "a" * 32, algorithm="HS256")

    assert refusal(verifier, forged) == "The token is signed with 'HS256'; this API accepts only RS256 tokens"


def test_an_expired_token_says_when(verifier: TokenVerifier, key: rsa.RSAPrivateKey) -> None:
    message = refusal(verifier, token(key, iat=1_700_000_000, exp=1_700_003_600))

    assert message == "The token expired at 2023-11-14T23:13:20.000Z; get a new one"


def test_a_token_not_valid_yet(verifier: TokenVerifier, key: rsa.RSAPrivateKey) -> None:
    later = int(time.time()) + 600

    assert refusal(verifier, token(key, nbf=later)).startswith("The token is not valid before 20")


def test_a_token_without_an_expiry(verifier: TokenVerifier, key: rsa.RSAPrivateKey) -> None:
    assert refusal(verifier, token(key, exp=None)) == "The token has no 'exp' claim"


def test_a_token_of_another_issuer(verifier: TokenVerifier, key: rsa.RSAPrivateKey) -> None:
    message = refusal(verifier, token(key, iss="https://issuer.example.com/pool"))

    assert message == "The token was issued by 'https://issuer.example.com/pool', not by this API's user pool"


def test_a_token_for_another_client(verifier: TokenVerifier, key: rsa.RSAPrivateKey) -> None:
    message = refusal(verifier, token(key, aud="some-other-client"))

    assert message == "The token is for client 'some-other-client', not for this API's app client"


def test_a_refusal_names_the_problem_in_the_challenge(verifier: TokenVerifier, key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(TokenRefused) as refused:
        verifier.claims(token(key, aud="other"))

    assert refused.value.challenge.startswith('Bearer error="invalid_token", error_description="The token is for')


@pytest.mark.parametrize(("authorization", "expected"), [("Bearer abc", "abc"), ("bearer abc ", "abc"), ("abc", "abc")])
def test_the_token_may_come_with_or_without_bearer(authorization: str, expected: str) -> None:
    assert bearer_token(authorization) == expected


@pytest.mark.parametrize(
    ("claims", "name"),
    [
        ({"sub": "u-1", "cognito:username": "ada", "preferred_username": "Ada L.", "email": "ada@example.com"}, "ada"),
        ({"sub": "u-1", "preferred_username": "Ada L.", "email": "ada@example.com"}, "Ada L."),
        ({"sub": "u-1", "email": "ada@example.com"}, "ada@example.com"),
        ({"sub": "u-1"}, "u-1"),
    ],
)
def test_a_caller_is_shown_by_the_first_name_its_token_gives(claims: dict[str, Any], name: str) -> None:
    caller = caller_from_claims(claims)

    assert (caller.sub, caller.display_name) == ("u-1", name)
