"""Small JSON records under a key of the caller's choosing (schedules): the record is the item's ``body``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stepwise.store.codec import from_json, to_json
from stepwise.store.errors import ConditionFailed
from stepwise.store.table import Put, Table


class BodyStore(Table):
    """``(pk, sk)`` → ``{"body": <JSON>}``, optionally listed through the index."""

    def put_body(
        self,
        pk: str,
        sk: str,
        body: Mapping[str, Any],
        *,
        index: tuple[str, str] | None = None,
        condition: str | None = None,
    ) -> None:
        """Store a small JSON record under (pk, sk) (``ConditionFailed`` when ``condition`` does not hold)."""
        item: dict[str, Any] = {"PK": pk, "SK": sk, "body": to_json(dict(body))}
        if index:
            item["GSI1PK"], item["GSI1SK"] = index
        self.put(Put(item, condition=condition))

    def get_body(self, pk: str, sk: str) -> dict[str, Any] | None:
        """The JSON record under (pk, sk), or None."""
        item = self.get(pk, sk)
        return dict(from_json(item["body"])) if item else None

    def query_bodies(self, pk: str, sk_prefix: str) -> list[dict[str, Any]]:
        """Every JSON record under pk whose sort key starts with ``sk_prefix``."""
        return [dict(from_json(item["body"])) for item in self.query(pk, sk_prefix=sk_prefix)]

    def delete_item(self, pk: str, sk: str) -> None:
        """Delete one item."""
        self.delete(pk, sk)

    def replace_body(self, pk: str, sk: str, body: Mapping[str, Any], *, previous: Mapping[str, Any]) -> bool:
        """Overwrite the record under (pk, sk) only if it still holds ``previous`` (as ``get_body`` read it).

        False when it changed or was deleted meanwhile. ``previous`` serializes to the stored string exactly,
        because both are written by the same ``to_json`` from a dict in the same key order.
        """
        put = Put(
            {"PK": pk, "SK": sk, "body": to_json(dict(body))},
            condition="#body = :previous",
            names={"#body": "body"},
            values={":previous": to_json(dict(previous))},
        )
        try:
            self.put(put)
        except ConditionFailed:
            return False
        return True
