"""Query filters that MongoDB and the embedded SecantusDB both serve from an index.

Pure dictionaries (no driver import), so a service's domain can build its guards with them.
"""

from __future__ import annotations

from typing import Any


# Filters that stay on an index. SecantusDB (the embedded store) plans any filter with a
# top-level operator key (`$or`, `$and`) as a scan of the whole collection, even beside an
# `_id` equality; an `{_id, $or: [{v: {$lt: n}}, {v: {$exists: false}}]}` guard on a 20,000
# document projection cost 232 ms an update instead of 1.5 ms, which made catching up on a
# roster import quadratic. These say the same with one clause per field, which MongoDB and
# SecantusDB both serve from the `_id` (or the field's) index.


def below(field: str, version: Any) -> dict[str, Any]:
    """`field` is absent or less than `version` (a newer version of the fact may apply; a
    lease whose end is before that moment)."""
    return {field: {"$not": {"$gte": version}}}


def at_most(field: str, version: int) -> dict[str, Any]:
    """`field` is absent or at most `version` (a fact of this version or newer may apply)."""
    return {field: {"$not": {"$gt": version}}}


# A read of one document by id whose caller's reach is an `$or` (who may see it) is a point
# lookup followed by `admits` on the document found: the `$or` in the filter would scan.


class UnknownShape(ValueError):
    """`admits` met a query it does not evaluate (a programming error; it admits nobody)."""


def _value_matches(actual: Any, expected: Any) -> bool:
    values = actual if isinstance(actual, list) else [actual]
    if isinstance(expected, dict):
        if set(expected) != {"$in"} or not isinstance(expected["$in"], list):
            raise UnknownShape(str(expected))
        return any(v in expected["$in"] for v in values)
    return expected in values


def admits(document: dict[str, Any], query: dict[str, Any]) -> bool:
    """Does the document match `query` (equality, `$in`, `$or`, `$and`; arrays by member)?
    Exactly the shapes the services' reach queries are built of; it fails closed: a shape it
    does not know admits nobody."""
    try:
        for key, expected in query.items():
            if key == "$or":
                if not any(admits(document, branch) for branch in expected):
                    return False
            elif key == "$and":
                if not all(admits(document, branch) for branch in expected):
                    return False
            elif key.startswith("$"):
                raise UnknownShape(key)
            elif not _value_matches(document.get(key), expected):
                return False
    except UnknownShape:
        return False
    return True
