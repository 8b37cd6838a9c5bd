"""The request transaction holds a write's whole body before routing; it must stop reading
past the largest body any route takes instead of buffering whatever a client streams."""

from __future__ import annotations

import pytest

from shared.idempotency import BodyTooLarge, _read_body


async def test_a_body_past_the_limit_is_refused_without_reading_the_rest():
    sent = []

    async def endless():
        sent.append(1)
        return {"type": "http.request", "body": b"x" * 1024, "more_body": True}

    with pytest.raises(BodyTooLarge):
        await _read_body(endless, limit=10 * 1024)
    assert len(sent) == 11  # read up to the limit, not a byte further


async def test_a_body_within_the_limit_is_read_whole():
    chunks = iter([b"ab", b"cd", b""])

    async def receive():
        chunk = next(chunks)
        return {"type": "http.request", "body": chunk, "more_body": chunk != b""}

    assert await _read_body(receive, limit=10) == b"abcd"
