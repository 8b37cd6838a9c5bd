"""The in-app feed: newest first, cursor pages, unread count, mark read, only its owner."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from shared.events.topics import PROFILES_TOPIC
from tests.support import eventually, mentee_registered_event


async def _five_notifications_for(platform, network_id: str, person_id: str) -> list[str]:
    """Five registration events for one person: each deserves its own welcome (whose id is
    the event's, the recipient's and the channel's). Returns the feed ids, oldest first."""
    ids = []
    producer = AIOKafkaProducer(bootstrap_servers=platform.servers.kafka_bootstrap)
    await producer.start()
    try:
        for n in range(5):
            # The store keeps milliseconds: distinct times make "newest first" unambiguous
            # (ties are ordered by id, which the test cannot predict).
            await asyncio.sleep(0.005)
            event = mentee_registered_event(person_id, network_id=network_id, display_name=f"N{n} X")
            await producer.send_and_wait(PROFILES_TOPIC, event.to_bytes(), key=person_id.encode())
            ids.append(f"{event.id}:{person_id}:in_app")
    finally:
        await producer.stop()
    return ids


async def test_pages_unread_count_and_mark_read_belong_to_the_owner(api, platform, network_id):
    owner, other = f"{network_id}-owner", f"{network_id}-other"
    sent = await _five_notifications_for(platform, network_id, owner)
    url = f"{platform.url('notifications')}/me/notifications"
    mine = api.auth(network_id, role="mentee", person_id=owner)
    theirs = api.auth(network_id, role="mentee", person_id=other)
    await eventually(lambda: api.feed(network_id, owner), lambda f: len(f) == 5)

    pages, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.http.get(url, params=params, headers=mine)).json()
        pages.append([item["id"] for item in page["items"]])
        assert page["unread_count"] == 5
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [t for p in pages for t in p] == sent[::-1]
    # Names are looked up when a message is composed (the name known at that moment).
    assert all(item["title"].startswith("Welcome, N") for item in await api.feed(network_id, owner))

    first_id = (await api.http.get(url, params={"limit": 1}, headers=mine)).json()["items"][0]["id"]
    assert (await api.http.post(f"{url}/{first_id}/read", headers=theirs)).status_code == 404
    assert (await api.http.get(url, headers=theirs)).json() == {
        "items": [], "next_cursor": None, "unread_count": 0
    }
    marked = await api.http.post(f"{url}/{first_id}/read", headers=mine)
    assert marked.json() == {"marked_read": 1, "unread_count": 4}
    again = await api.http.post(f"{url}/{first_id}/read", headers=mine)
    assert again.json() == {"marked_read": 0, "unread_count": 4}
    unread = (await api.http.get(url, params={"unread_only": "true"}, headers=mine)).json()
    assert len(unread["items"]) == 4 and first_id not in {i["id"] for i in unread["items"]}
    everything = await api.http.post(f"{url}/read", headers=mine)
    assert everything.json() == {"marked_read": 4, "unread_count": 0}


async def test_a_feed_needs_a_person_token_and_an_honest_cursor(api, platform, network_id):
    url = f"{platform.url('notifications')}/me/notifications"
    coordinator = api.auth(network_id, role="institution_coordinator", institution_id="inst-a")
    refused = await api.http.get(url, headers=coordinator)
    assert refused.status_code == 403 and "own token" in refused.text
    mine = api.auth(network_id, role="mentee", person_id="someone")
    tampered = await api.http.get(url, params={"cursor": "bm90LWEtY3Vyc29y"}, headers=mine)
    assert tampered.status_code == 422 and "next_cursor" in tampered.text
