"""Welcome emails over a real SMTP server: content, exactly once, retries, failures."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaProducer

from shared.events.topics import PROFILES_TOPIC
from tests.support import eventually, mentee_registered_event, stays


def _address() -> str:
    return f"mail-{uuid.uuid4().hex[:8]}@example.org"


async def _deliveries(api, network_id: str, **params) -> list[dict]:
    response = await api.http.get(
        f"{api.platform.url('notifications')}/networks/{network_id}/deliveries",
        params={"channel": "email", **params},
        headers=api.auth(network_id),
    )
    response.raise_for_status()
    return response.json()


async def test_a_registration_sends_a_welcome_with_text_and_html_parts(app_url, api, mailbox, network_id):
    address = _address()
    response = await api.register_mentee(network_id, 1, display_name="Ada Lovelace", email=address)
    assert response.status_code == 201
    [message] = await eventually(lambda: mailbox.to(address), lambda m: len(m) == 1)
    assert message["Subject"] == "Welcome to mentoring, Ada"
    assert "no-reply@mentorship.local" in message["From"]
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "Hello Ada," in text and "registered as a mentee" in text
    assert "<h1" in html and "Hello Ada," in html
    # It links to the web app's profile page, where the person completes their profile.
    assert f"Complete your profile: {app_url}/profile" in text and f'href="{app_url}/profile"' in html


async def test_the_same_event_twice_sends_one_email(api, platform, mailbox, network_id):
    first, fresh = _address(), _address()
    event = mentee_registered_event("twice-mail", network_id=network_id, email=first)
    after = mentee_registered_event("after-mail", network_id=network_id, email=fresh)
    producer = AIOKafkaProducer(bootstrap_servers=platform.servers.kafka_bootstrap)
    await producer.start()
    try:
        for value in (event.to_bytes(), event.to_bytes(), after.to_bytes()):
            await producer.send_and_wait(PROFILES_TOPIC, value, key=b"same-partition")
    finally:
        await producer.stop()
    await eventually(lambda: mailbox.to(fresh), lambda m: len(m) == 1)
    await stays(lambda: len(mailbox.to(first)), 1, seconds=1.0)


async def test_a_temporary_refusal_is_retried_until_it_is_delivered(api, mailbox, network_id):
    address = _address()
    mailbox.refuse[address] = 2  # 451 twice, then accepted
    assert (await api.register_mentee(network_id, 1, email=address)).status_code == 201
    await eventually(lambda: mailbox.to(address), lambda m: len(m) == 1)
    [delivery] = await eventually(
        lambda: _deliveries(api, network_id, status="sent"), lambda d: len(d) == 1
    )
    assert delivery["attempts"] == 3 and "451" in delivery["last_error"]
    assert delivery["to"] == address and delivery["subject"].startswith("Welcome to mentoring")


async def test_a_permanent_refusal_fails_at_once_with_the_servers_reason_and_can_be_retried_by_hand(
    api, platform, mailbox, network_id
):
    """A 5xx refusal is not retried (it was retried five times over 7.5 minutes): the delivery
    fails after its first attempt with the mail server's own words."""
    address = _address()
    mailbox.refuse[address] = "always"
    assert (await api.register_mentee(network_id, 1, email=address)).status_code == 201
    [failed] = await eventually(
        lambda: _deliveries(api, network_id, status="failed"), lambda d: len(d) == 1
    )
    assert failed["attempts"] == 1 and failed["to"] == address
    assert "550 5.1.1 Mailbox unavailable" in failed["last_error"]
    retry_url = f"{platform.url('notifications')}/networks/{network_id}/deliveries/{failed['id']}/retry"
    coordinator = api.auth(network_id, role="institution_coordinator", institution_id="inst-a")
    refused = await api.http.post(retry_url, headers=coordinator)
    assert refused.status_code == 403 and "deliveries" in refused.json()["detail"]
    assert (await api.http.post(retry_url, headers=api.auth("other-network"))).status_code == 403
    mailbox.refuse.pop(address)
    assert (await api.http.post(retry_url, headers=api.auth(network_id))).status_code == 202
    await eventually(lambda: mailbox.to(address), lambda m: len(m) == 1)
    again = await api.http.post(retry_url, headers=api.auth(network_id))
    assert again.status_code == 409  # sent now: nothing to retry
