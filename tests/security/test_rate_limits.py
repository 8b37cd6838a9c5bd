"""Abuse limits: one token, and one address, may only write so fast; the unsubscribe link too.

Services with small budgets of their own (the shared platform runs in development, where the
limits are off so the suites and the demo can write fast): a token over its budget gets 429
with Retry-After, another token from the same address is stopped by the address's budget,
reads are not counted, and the unsubscribe endpoint (no login) has a budget per address.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import Platform

LIMITS = {
    "RATE_LIMITS_ENABLED": "true",
    "RATE_LIMIT_WRITE": "3/minute",
    "RATE_LIMIT_WRITE_PER_IP": "5/minute",
    "RATE_LIMIT_UNSUBSCRIBE_PER_IP": "2/minute",
}


@pytest.fixture(scope="module")
def limited(infra, jwt_keys, tmp_path_factory) -> Iterator[Platform]:
    running = Platform(infra, jwt_keys, tmp_path_factory.mktemp("limited"), extra_env=LIMITS,
                       database_prefix="limited")
    try:
        running.start("profiles", "notifications")
        yield running
    finally:
        running.close()


async def test_writes_are_limited_per_token_and_per_address(limited, network_id):
    profiles = f"{limited.url('profiles')}/networks/{network_id}/institutions"

    def auth() -> dict[str, str]:  # each token has a subject of its own
        return {"Authorization": f"Bearer {limited.jwt_keys.token('network_admin', network_id)}"}

    first, second = auth(), auth()
    async with httpx.AsyncClient(timeout=30) as http:
        for n in range(3):
            r = await http.post(profiles, json={"id": f"a-{n}", "name": "A"}, headers=first)
            assert r.status_code == 201, r.text
        over = await http.post(profiles, json={"id": "a-3", "name": "A"}, headers=first)
        assert over.status_code == 429, over.text
        assert int(over.headers["Retry-After"]) >= 1
        assert "your token" in over.json()["detail"] and "3 per 1 minute" in over.json()["detail"]
        assert (await http.get(profiles, headers=first)).status_code == 200  # reads are free

        for n in range(2):  # the address has 5: 3 spent by the first token
            r = await http.post(profiles, json={"id": f"b-{n}", "name": "B"}, headers=second)
            assert r.status_code == 201, r.text
        by_address = await http.post(profiles, json={"id": "b-2", "name": "B"}, headers=second)
        assert by_address.status_code == 429 and "this address" in by_address.json()["detail"]
        listed = (await http.get(profiles, headers=first)).json()["items"]
        assert sorted(i["id"] for i in listed) == ["a-0", "a-1", "a-2", "b-0", "b-1"]


async def test_the_unsubscribe_link_is_limited_per_address(limited):
    url = f"{limited.url('notifications')}/unsubscribe"
    async with httpx.AsyncClient(timeout=30) as http:
        for _ in range(2):
            assert (await http.get(url, params={"token": "forged"})).status_code != 429
        over = await http.post(url, params={"token": "forged"})
        assert over.status_code == 429 and "Retry-After" in over.headers
