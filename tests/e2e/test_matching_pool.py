"""Matching keeps its pool current from profile events alone (never the profiles database)."""

from __future__ import annotations

import json
import uuid

from aiokafka import AIOKafkaProducer

from shared.events.topics import PROFILES_TOPIC
from tests.e2e.test_people import People, people  # noqa: F401  (the fixture)
from tests.e2e.test_programs import _published
from tests.support import eventually, stays


async def _pool_entry(api, network_id: str, person_id: str) -> dict | None:
    response = await api.http.get(
        f"{api.platform.url('matching')}/networks/{network_id}/pool/mentors",
        headers=api.auth(network_id),
    )
    response.raise_for_status()
    return next((e for e in response.json() if e["person_id"] == person_id), None)


async def test_profile_edits_reach_the_pool_and_an_old_version_never_rolls_it_back(
    people: People, platform  # noqa: F811  (the imported fixture)
):
    api, network_id, ada = people.api, people.network_id, people.ids["Ada"]
    entry = await eventually(lambda: _pool_entry(api, network_id, ada), lambda e: e is not None)
    assert (entry["capacity"], entry["paused"], entry["profile_version"]) == (2, False, None)

    paused = await people.patch("Ada", {"mentor": {"capacity": 3, "paused": True}}, '"1"')
    assert paused.status_code == 200, paused.text
    entry = await eventually(
        lambda: _pool_entry(api, network_id, ada), lambda e: e["profile_version"] == 2
    )
    assert (entry["capacity"], entry["paused"]) == (3, True)

    resumed = await people.patch("Ada", {"mentor": {"paused": False}}, '"2"')
    assert resumed.status_code == 200, resumed.text
    await eventually(lambda: _pool_entry(api, network_id, ada), lambda e: e["profile_version"] == 3)

    # Version 2 arrives again as a new event (as after a broker lost and replayed it).
    old = await _published(platform.servers.kafka_bootstrap, ada, "ProfileUpdated")
    assert old["data"]["version"] == 2
    replay = {**old, "id": str(uuid.uuid4())}
    producer = AIOKafkaProducer(bootstrap_servers=platform.servers.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(PROFILES_TOPIC, json.dumps(replay).encode(), key=ada.encode())
    finally:
        await producer.stop()
    await stays(
        lambda: _pool_entry(api, network_id, ada),
        {**entry, "paused": False, "profile_version": 3},
        seconds=2.0,
    )
