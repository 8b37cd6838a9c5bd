"""What the platform promises when parts of it fail (real processes, real protocols).

Each test runs on servers of its own (`private_platform`) because it breaks them.
"""

from __future__ import annotations

import asyncio

import httpx

from tests.e2e.conftest import Platform, in_thread
from tests.support import eventually, stays


async def _register_many(api, network_id: str, count: int, pause: float = 0.0) -> list[str]:
    ids = []
    for n in range(count):
        response = await api.register_mentee(network_id, n)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
        if pause:
            await asyncio.sleep(pause)
    return ids


async def _every_count_is_exactly(api, network_id: str, person_ids: list[str]) -> None:
    expected = len(person_ids)
    await eventually(
        lambda: api.registrations(network_id), lambda n: n >= expected, timeout=120, what="analytics"
    )
    await eventually(lambda: api.pool_size(network_id), lambda n: n >= expected, timeout=60)
    await stays(lambda: api.registrations(network_id), expected, seconds=3)
    assert await api.pool_size(network_id) == expected
    for person_id in person_ids:
        feed = await eventually(lambda p=person_id: api.feed(network_id, p), lambda f: len(f) >= 1)
        assert [m["kind"] for m in feed] == ["welcome"], feed


async def test_broker_stopped_between_write_and_publish_loses_nothing(
    private_api, private_platform, network_id
):
    await in_thread(private_platform.servers.stop_kafka)
    ids = await _register_many(private_api, network_id, 5)  # the API stays available
    ready = await eventually(
        lambda: private_api.http.get(f"{private_platform.url('profiles')}/readyz"),
        lambda r: r.status_code == 503, what="readiness to notice the broker is gone")
    assert "Kafka is not reachable" in ready.text
    await in_thread(private_platform.servers.start_kafka)
    await _every_count_is_exactly(private_api, network_id, ids)


async def test_broker_killed_mid_flow_with_its_log_lost_counts_stay_exact(
    private_api, private_platform, network_id
):
    # Analytics is down, so the first events exist only in the broker's log when it dies:
    # only the outbox can bring them back.
    private_platform.kill("analytics")
    first = await _register_many(private_api, network_id, 10)
    await eventually(lambda: private_api.pool_size(network_id), lambda n: n == 10, what="sent")
    writer = asyncio.create_task(_register_many(private_api, network_id, 20, pause=0.05))
    await asyncio.sleep(0.3)
    await in_thread(private_platform.servers.kill_kafka)
    await in_thread(private_platform.servers.start_kafka, True)  # the restarted log is empty
    second = await writer
    await in_thread(private_platform.start, "analytics")
    await _every_count_is_exactly(private_api, network_id, first + second)


async def test_a_service_killed_mid_stream_resumes_without_applying_twice(
    private_api, private_platform, network_id
):
    first = await _register_many(private_api, network_id, 10)
    await eventually(lambda: private_api.registrations(network_id), lambda n: n >= 5)
    private_platform.kill("analytics")  # SIGKILL: no leave-group, no clean shutdown
    second = await _register_many(private_api, network_id, 10)
    await in_thread(private_platform.start, "analytics")
    await _every_count_is_exactly(private_api, network_id, first + second)


async def test_a_service_stopped_with_sigterm_mid_stream_shuts_down_cleanly_and_resumes(
    private_api, private_platform, network_id
):
    first = await _register_many(private_api, network_id, 10)
    await eventually(lambda: private_api.notification_count(network_id, first), lambda n: n >= 3)
    notifications = private_platform.procs["notifications"]
    writer = asyncio.create_task(_register_many(private_api, network_id, 15, pause=0.02))
    await asyncio.sleep(0.1)
    started = asyncio.get_running_loop().time()
    await in_thread(notifications.stop, 20)  # SIGTERM: finish the batch, leave the group
    took = asyncio.get_running_loop().time() - started
    log = private_platform.log("notifications")
    # uvicorn re-raises the SIGTERM it handled once shutdown is complete, hence -15, not 0.
    assert notifications.returncode in (0, -15), log
    assert '"event": "service.stopped"' in log and "Application shutdown complete" in log, log
    assert took < 15, f"graceful shutdown took {took:.1f}s"
    second = await writer
    await in_thread(private_platform.start, "notifications")
    await _every_count_is_exactly(private_api, network_id, first + second)


async def test_readiness_holds_while_the_store_is_slow_and_fails_only_when_it_stays_away(
    private_infra, jwt_keys, tmp_path
):
    # A store too busy to answer for a few seconds (SIGSTOP: connections accepted, nothing
    # answered) is not a reason to take a healthy instance out; one that stays silent is.
    platform = Platform(private_infra, jwt_keys, tmp_path / "platform", extra_env={
        "READINESS_GRACE_SECONDS": "8", "READINESS_PROBE_TIMEOUT_SECONDS": "1",
        "READINESS_PROBE_INTERVAL_SECONDS": "0.5"})
    try:
        await in_thread(platform.start, "analytics")
        url = f"{platform.url('analytics')}/readyz"
        async with httpx.AsyncClient(timeout=10) as http:
            private_infra.pause_mongo()
            try:
                seen = []
                loop = asyncio.get_running_loop()
                stalled = loop.time()
                while loop.time() - stalled < 4:
                    seen.append((await http.get(url)).status_code)
                    await asyncio.sleep(0.25)
            finally:
                private_infra.resume_mongo()
            assert seen and set(seen) == {200}, seen
            # Let a probe find the store again (the grace counts from the first failed probe
            # of a streak), then take it away for good.
            await asyncio.sleep(2)
            private_infra.pause_mongo()
            stalled = loop.time()
            try:
                down = await eventually(lambda: http.get(url), lambda r: r.status_code == 503,
                                        timeout=30, what="readiness to give up on the store")
                assert loop.time() - stalled > 8, down.text
            finally:
                private_infra.resume_mongo()
            assert "MongoDB" in down.json()["reasons"][0], down.text
            await eventually(lambda: http.get(url), lambda r: r.status_code == 200, timeout=30)
    finally:
        await in_thread(platform.close)
