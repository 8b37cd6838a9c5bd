"""Optimistic concurrency over HTTP: ETag out, If-Match in, shared by every editable resource.

An edit must name the version it was based on, so two people editing the same record cannot
silently overwrite each other: no If-Match is 428, a stale one is 412 (raised by the store
that compares versions).
"""

from __future__ import annotations

from fastapi import HTTPException, status


def etag(version: int) -> str:
    return f'"{version}"'


def expected_version(if_match: str | None, what: str, how: str) -> int:
    """The version an If-Match header names; `what` ("program") and `how` ("GET the program
    first") make the message one a person can act on."""
    if if_match is None or not if_match.strip():
        raise HTTPException(
            status.HTTP_428_PRECONDITION_REQUIRED,
            f"Send the {what}'s ETag in an If-Match header ({how}), so your "
            "edit cannot overwrite someone else's.",
        )
    tag = if_match.strip().removeprefix("W/").strip('"')
    if not tag.isdigit():
        raise HTTPException(
            status.HTTP_428_PRECONDITION_REQUIRED,
            f"If-Match must be the {what}'s ETag, such as \"3\"; {if_match!r} names no version.",
        )
    return int(tag)
