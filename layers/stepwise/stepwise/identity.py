"""Who is calling (a verified token's claims, see :mod:`stepwise.auth`), and who may see or change what."""

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


def caller_from_claims(claims: Mapping[str, Any]) -> Caller:
    """The caller named by a verified token's claims; no ``sub`` means no identity (401)."""
    if not claims.get("sub"):
        raise Unauthorized("The token names no user: it has no 'sub' claim")
    # Cognito puts the user's groups in a JSON list (absent when there are none).
    groups = claims.get("cognito:groups")
    return Caller(sub=str(claims["sub"]), groups=frozenset(map(str, groups if isinstance(groups, list) else [])))
