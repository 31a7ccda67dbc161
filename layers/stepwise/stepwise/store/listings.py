"""Listings: one partition of an index, newest first, with an optional sort key range and filters.

A ``Listing`` says what one listing reads; ``Table.list_page`` reads a page of it. Every listing is a
Query on one partition (never a Scan): the sort key range narrows what is read, the filters narrow what is
returned. Its ``fingerprint`` binds the cursors it hands out to it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

Comparison = Literal["=", ">=", "<"]


@dataclass(frozen=True)
class Filter:
    """Keep only the items whose ``attribute`` compares so with ``value`` (a FilterExpression term)."""

    attribute: str
    comparison: Comparison
    value: str


@dataclass(frozen=True)
class Listing:
    """A Query over ``partition`` of ``index`` (``GSI1``, ``GSI2``), newest first.

    ``sort_range`` (lowest, highest), both included, bounds the index's sort key; ``filters`` all hold for
    every item listed.
    """

    partition: str
    index: str = "GSI1"
    sort_range: tuple[str, str] | None = None
    filters: tuple[Filter, ...] = ()

    @property
    def key_names(self) -> tuple[str, str, str, str]:
        """The attributes of a key in this index (the table's and the index's): what a cursor holds."""
        return ("PK", "SK", f"{self.index}PK", f"{self.index}SK")

    def fingerprint(self) -> str:
        """A short digest of everything that decides what this listing returns (not the page size)."""
        described = json.dumps(
            [self.index, self.partition, self.sort_range, [[f.attribute, f.comparison, f.value] for f in self.filters]]
        )
        return hashlib.sha256(described.encode()).hexdigest()[:16]

    def query(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The Query request (names and expressions) and its values (plain), without page size or start key."""
        pk, sk = self.key_names[2:]
        condition = f"{pk} = :pk"
        values: dict[str, Any] = {":pk": self.partition}
        if self.sort_range:
            condition += f" AND {sk} BETWEEN :lowest AND :highest"
            values[":lowest"], values[":highest"] = self.sort_range
        request: dict[str, Any] = {
            "IndexName": self.index,
            "KeyConditionExpression": condition,
            "ScanIndexForward": False,
        }
        if self.filters:
            names: dict[str, str] = {}
            terms = []
            for number, term in enumerate(self.filters):
                names[f"#f{number}"] = term.attribute
                values[f":f{number}"] = term.value
                terms.append(f"#f{number} {term.comparison} :f{number}")
            request["FilterExpression"] = " AND ".join(terms)
            request["ExpressionAttributeNames"] = names
        return request, values
