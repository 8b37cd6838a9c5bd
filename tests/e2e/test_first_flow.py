"""The first flow end to end, through the HTTP APIs of the four running services."""

from __future__ import annotations

from tests.support import eventually, stays


async def test_a_registered_mentee_reaches_matching_notifications_and_analytics(api, network_id):
    before = await api.registrations(network_id)
    response = await api.register_mentee(network_id, 1, display_name="Ada Lovelace")
    assert response.status_code == 201, response.text
    person = response.json()

    assert await eventually(lambda: api.registrations(network_id), lambda n: n == before + 1) == 1
    assert await eventually(lambda: api.pool_size(network_id), lambda n: n == 1) == 1
    feed = await eventually(lambda: api.feed(network_id, person["id"]), lambda f: len(f) == 1)
    assert feed[0]["kind"] == "welcome"
    assert feed[0]["title"] == "Welcome, Ada"
    await stays(lambda: api.registrations(network_id), 1, seconds=1.0)


async def test_the_correlation_id_of_the_request_travels_into_the_event(api, network_id, platform):
    await api.ensure_institution(network_id)
    response = await api.http.post(
        f"{platform.url('profiles')}/networks/{network_id}/mentees",
        json={
            "institution_id": "inst-a",
            "display_name": "Traced Person",
            "email": "traced@example.org",
            "career_stage": "M1",
        },
        headers={**api.auth(network_id), "X-Correlation-ID": "trace-me-42"},
    )
    assert response.status_code == 201
    assert response.headers["X-Correlation-ID"] == "trace-me-42"
    await eventually(lambda: api.registrations(network_id), lambda n: n == 1)
    # Every consumer logged its handling with the same correlation id.
    for service in ("matching", "notifications", "analytics"):
        await eventually(
            lambda s=service: "trace-me-42" in (platform.root / "logs" / f"{s}.log").read_text(),
            bool,
            what=f"correlation id in the {service} log",
        )


async def test_the_first_flow_on_tansu_with_the_idempotent_producer_off(tansu_api, network_id):
    """The second broker implementation: no idempotent producer, slower rebalances, and the
    same flow, exactly once in effect."""
    response = await tansu_api.register_mentee(network_id, 1, display_name="Grace Hopper")
    assert response.status_code == 201, response.text
    person = response.json()
    await eventually(lambda: tansu_api.registrations(network_id), lambda n: n == 1, timeout=60)
    await eventually(lambda: tansu_api.pool_size(network_id), lambda n: n == 1, timeout=60)
    feed = await eventually(
        lambda: tansu_api.feed(network_id, person["id"]), lambda f: len(f) == 1, timeout=60
    )
    assert feed[0]["title"] == "Welcome, Grace"
    await stays(lambda: tansu_api.registrations(network_id), 1, seconds=1.0)
