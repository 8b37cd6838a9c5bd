"""The attack replays run against the running platform: the e2e session's when the e2e tests
run in the same session (no second platform), else one of their own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.e2e import conftest as e2e


@pytest.fixture(scope="session")
def platform(infra, jwt_keys, tmp_path_factory) -> Iterator[e2e.Platform]:
    if e2e.SESSION_PLATFORM:
        yield e2e.SESSION_PLATFORM[0]
        return
    running = e2e.Platform(infra, jwt_keys, tmp_path_factory.mktemp("security-platform"),
                           extra_env={"LOCAL_SIGN_IN": "true"})
    try:
        running.start()
        yield running
    finally:
        running.close()


@pytest.fixture
async def api(platform) -> AsyncIterator[e2e.Api]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield e2e.Api(platform, client)


network_id = e2e.network_id
