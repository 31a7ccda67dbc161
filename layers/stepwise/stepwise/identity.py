"""Who is calling: the JWT authorizer's claims, and who may see or change what."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stepwise.errors import NotOwner, Unauthorized

ADMIN_GROUP = "admin"


@dataclass(frozen=True)
class Caller:
    """The authenticated user: ``sub`` owns what they create; the ``admin`` group may read everything."""

    sub: str
    groups: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        return ADMIN_GROUP in self.groups

    def ensure_can_read(self, owner: str, what: str) -> None:
        """Raise NotOwner unless the caller owns it or is an admin."""
        if owner != self.sub and not self.is_admin:
            raise NotOwner(f"You do not have access to {what}")

    def ensure_owns(self, owner: str, what: str) -> None:
        """Raise NotOwner unless the caller owns it (admins read, owners change)."""
        if owner != self.sub:
            raise NotOwner(f"You do not have access to change {what}")


def _groups(raw: Any) -> frozenset[str]:
    # HTTP API's JWT authorizer flattens a list claim to a string such as "[admin ops]".
    if isinstance(raw, list | tuple):
        return frozenset(str(group) for group in raw)
    if isinstance(raw, str):
        return frozenset(part for part in raw.strip("[]").replace(",", " ").split() if part)
    return frozenset()


def caller_from_claims(claims: Mapping[str, Any] | None) -> Caller:
    """The caller named by the authorizer's claims; no ``sub`` means no identity (401)."""
    if not claims or not claims.get("sub"):
        raise Unauthorized("Unauthorized: send a valid bearer token in the Authorization header")
    return Caller(sub=str(claims["sub"]), groups=_groups(claims.get("cognito:groups")))
