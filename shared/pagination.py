"""Opaque cursors for keyset pagination, shared by every service's list endpoints.

A cursor is the sort key of the last item of a page (one value, or several for a compound
sort), so the next page is a range query and stays right while items are added. Clients
treat it as opaque; a tampered one is a 422 that says what to do.
"""

from __future__ import annotations

import base64
import binascii
import json

from fastapi import HTTPException, status


def encode_cursor(*values: str) -> str:
    raw = json.dumps(list(values), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, *, parts: int = 1) -> list[str] | None:
    if cursor is None:
        return None
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError, ValueError):
        values = None
    if not (isinstance(values, list) and len(values) == parts and all(isinstance(v, str) for v in values)):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY,
            "The cursor is not one this API handed out; use `next_cursor` of the previous page.",
        )
    return values


def id_cursor(last_id: str) -> str:
    """The cursor after an item of a list sorted by id."""
    return encode_cursor(last_id)


def after_id(cursor: str | None) -> str | None:
    """The id a list sorted by id continues after (None for the first page)."""
    values = decode_cursor(cursor)
    return values[0] if values else None
