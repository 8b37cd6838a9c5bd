"""Sign-in links by email: sent at once, whatever the person's preferences, never to the feed,
and the link does not stay in the service's records once it left."""

from __future__ import annotations

import uuid

from pymongo import AsyncMongoClient

from tests.notifications_support import Events, publish
from tests.support import eventually, stays


def _text(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


async def test_a_sign_in_link_is_sent_at_once_by_email_only_whatever_the_preferences(app_url, 
        api, platform, mailbox, network_id):
    events = Events(network_id)
    address = f"signin-{uuid.uuid4().hex[:8]}@example.org"
    person = events.person("mentee", "Ada Lovelace", address)
    await publish(platform.servers.kafka_bootstrap, person)
    await eventually(lambda: mailbox.to(address), lambda m: len(m) == 1)  # the welcome
    # Quiet hours all day and a daily digest: neither holds back a link asked for just now.
    mine = api.auth(network_id, role="mentee", person_id=person.subject)
    chosen = {"time_zone": "UTC", "quiet_hours": {"start": "00:00", "end": "23:59"}, "digest": "daily"}
    assert (await api.http.put(f"{platform.url('notifications')}/me/preferences", json=chosen,
                               headers=mine)).status_code == 200
    link = f"{app_url}/sign-in/email?token={uuid.uuid4().hex}"
    await publish(platform.servers.kafka_bootstrap, events.sign_in_link(person.subject, address, link))
    [message] = await eventually(lambda: [m for m in mailbox.to(address) if "sign-in link" in m["Subject"]],
                                 lambda m: len(m) == 1)
    assert link in _text(message) and f'href="{link}"' in message.get_body(("html",)).get_content()
    assert "mandatory" in _text(message) and message["List-Unsubscribe"] is None
    async def kinds() -> set[str]:
        return {i["kind"] for i in await api.feed(network_id, person.subject)}
    await stays(kinds, {"welcome"}, seconds=1.0)  # never to the feed
    client = AsyncMongoClient(platform.servers.mongodb_uri, tz_aware=True)
    try:
        [record] = [d async for d in client["mentorship_notifications"]["deliveries"].find(
            {"kind": "sign_in_link", "recipient": person.subject})]
        assert record["status"] == "sent" and record["channel"] == "email"
        assert not {"link_url", "email"} & set(record.get("context", {}))
    finally:
        await client.close()


async def test_staff_unknown_to_this_service_get_their_sign_in_link_at_the_address_in_the_event(app_url, 
        platform, mailbox, network_id):
    """An admin who takes part in no program is in no registration event: the link goes to the
    address the request named, greeting them by the name it carried."""
    address = f"admin-{uuid.uuid4().hex[:8]}@example.org"
    link = f"{app_url}/sign-in/email?token={uuid.uuid4().hex}"
    event = Events(network_id).sign_in_link(f"staff-{uuid.uuid4().hex[:6]}", address, link,
                                            display_name="Grace Hopper")
    await publish(platform.servers.kafka_bootstrap, event)
    [message] = await eventually(lambda: mailbox.to(address), lambda m: len(m) == 1)
    assert message["Subject"] == "Your sign-in link" and link in _text(message)
    assert "Hello Grace," in _text(message)
