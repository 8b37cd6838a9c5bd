"""Query documents for the people collection, shaped for the document store's planner.

The embedded store (SecantusDB) plans a query on an index only when its top level is plain
fields: a top-level `$and` or `$or` scans the whole collection, decoding every document in
Python. So clauses are merged into one flat document whenever their fields do not collide
(`flatten`), selective fields first (the planner tries one indexed clause at a time, in
order), and a one-branch `$or` is its branch.

Reading one person by id is a point lookup, and the caller's visibility (which has an `$or`)
is then checked on the document found with `shared.filters.admits`.
"""

from __future__ import annotations

from typing import Any

# Most selective first: the planner rides the first indexed clause it can.
ORDER = ("_id", "email", "specialties", "program_ids", "institution_id", "career_stage",
         "roles", "network_id")


def _rank(field: str) -> int:
    return ORDER.index(field) if field in ORDER else len(ORDER)


def flatten(*clauses: dict[str, Any]) -> dict[str, Any]:
    """One query document meaning all clauses together, flat where their fields allow."""
    flat: dict[str, Any] = {}
    rest: list[dict[str, Any]] = []
    for clause in clauses:
        if not clause:
            continue
        if set(clause) == {"$or"} and len(clause["$or"]) == 1:
            clause = clause["$or"][0]
        if any(k in flat for k in clause) or (
            any(k.startswith("$") for k in clause) and any(k.startswith("$") for k in flat)
        ):
            rest.append(clause)
            continue
        flat.update(clause)
    ordered = dict(sorted(flat.items(), key=lambda item: _rank(item[0])))
    if rest:
        ordered = {"$and": [ordered, *rest]} if ordered else (
            rest[0] if len(rest) == 1 else {"$and": rest})
    return ordered
