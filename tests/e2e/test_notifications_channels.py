"""The notifications service as a real process: preferences, a working unsubscribe link,
network template overrides, signed webhooks, and MessageDelivered on Kafka. Events come from
Kafka, produced as profiles and matching publish them."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from urllib.parse import parse_qs, urlsplit

from aiokafka import AIOKafkaConsumer

from shared.events.topics import NOTIFICATIONS_TOPIC
from tests.notifications_support import Events, WebhookReceiver, pair_ids, publish
from tests.support import eventually, stays


def _address(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}@example.org"


async def _people(platform, events: Events):
    program = events.program()
    mentor, mentee = _address("mentor"), _address("mentee")
    mentor_event = events.person("mentor", "Grace Hopper", mentor, program_id=program.subject)
    mentee_event = events.person("mentee", "Ada Lovelace", mentee, program_id=program.subject)
    await publish(platform.servers.kafka_bootstrap, program, mentor_event, mentee_event)
    return pair_ids(program.subject, mentor_event.subject, mentee_event.subject), mentor, mentee


def _text(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


async def test_preferences_belong_to_the_person_and_mandatory_kinds_stay_on(api, platform, network_id):
    url = f"{platform.url('notifications')}/me/preferences"
    mine = api.auth(network_id, role="mentee", person_id="p-pref")
    defaults = (await api.http.get(url, headers=mine)).json()
    kinds = {k["kind"]: k for k in defaults["kinds"]}
    assert kinds["welcome"]["mandatory"] and not kinds["nudge"]["mandatory"]
    assert defaults["time_zone"] == "UTC" and defaults["digest"] is None
    refused = await api.http.put(url, json={"channels": {"welcome": {"email": False}}}, headers=mine)
    assert refused.status_code == 422 and "mandatory" in refused.text
    bad_zone = await api.http.put(url, json={"time_zone": "Moon/Base"}, headers=mine)
    assert bad_zone.status_code == 422 and "time zone" in bad_zone.text
    chosen = {"time_zone": "Europe/Paris", "quiet_hours": {"start": "22:00", "end": "07:00"},
              "channels": {"nudge": {"email": False}}, "digest": None}
    assert (await api.http.put(url, json=chosen, headers=mine)).status_code == 200
    stored = (await api.http.get(url, headers=mine)).json()
    assert stored["channels"] == {"nudge": {"email": False}} and stored["quiet_hours"]["start"] == "22:00:00"
    other = (await api.http.get(url, headers=api.auth(network_id, role="mentee", person_id="p-other"))).json()
    assert other["channels"] == {}
    coordinator = api.auth(network_id, role="institution_coordinator", institution_id="inst-a")
    assert (await api.http.get(url, headers=coordinator)).status_code == 403


async def test_the_unsubscribe_link_in_an_email_works_without_a_login(app_url, api, platform, mailbox, network_id):
    events = Events(network_id)
    pair, mentor, mentee = await _people(platform, events)
    await publish(platform.servers.kafka_bootstrap, events.proposed(pair))
    await eventually(lambda: mailbox.to(mentee), lambda m: any("A mentor" in x["Subject"] for x in m))
    proposal = next(m for m in mailbox.to(mentee) if "A mentor" in m["Subject"])
    text, html = _text(proposal), proposal.get_body(("html",)).get_content()
    # Every link opens the web app: the proposal, the preferences, the unsubscribe page.
    assert f"{app_url}/mentorships/{pair.mentorship_id}" in text and f'href="{app_url}/mentorships/{pair.mentorship_id}"' in html
    assert f"{app_url}/notifications/preferences" in text
    link = re.search(r"Unsubscribe from these emails: (\S+)", text).group(1)
    assert link.startswith(f"{app_url}/unsubscribe?token=") and link in html
    assert proposal["List-Unsubscribe"].strip() == f"<{link}>"
    token = parse_qs(urlsplit(link).query)["token"][0]
    # The web app's page asks the service what the token turns off, then turns it off (JSON).
    api_url = f"{platform.url('notifications')}/unsubscribe"
    about = await api.http.get(api_url, params={"token": token}, headers={"Accept": "application/json"})
    assert about.status_code == 200 and about.json()["kind"] == "match_proposed"
    done = await api.http.post(api_url, json={"token": token})
    assert done.status_code == 200 and done.json()["unsubscribed"] is True
    tampered = await api.http.post(api_url, json={"token": token[:-3] + "abc"})
    assert tampered.status_code == 400 and "not valid" in tampered.text
    # A mail client's one-click POST (RFC 8058) with the token in the URL works too.
    one_click = await api.http.post(api_url, params={"token": token}, data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200 and "Unsubscribed" in one_click.text
    prefs = await api.http.get(f"{platform.url('notifications')}/me/preferences",
                               headers=api.auth(network_id, role="mentee", person_id=pair.mentee_id))
    assert prefs.json()["channels"] == {"match_proposed": {"email": False}}
    # The next proposal reaches the mentee's feed, not their inbox; the mentor still gets email.
    second = pair_ids(pair.program_id, pair.mentor_id, pair.mentee_id)
    await publish(platform.servers.kafka_bootstrap, events.proposed(second))
    feed = await eventually(lambda: api.feed(network_id, pair.mentee_id),
                            lambda f: sum(i["kind"] == "match_proposed" for i in f) == 2)
    assert {i["link"] for i in feed if i["kind"] == "match_proposed"} == {
        f"{app_url}/mentorships/{pair.mentorship_id}", f"{app_url}/mentorships/{second.mentorship_id}"}
    await eventually(lambda: mailbox.to(mentor), lambda m: sum("A mentee" in x["Subject"] for x in m) == 2)
    await stays(lambda: sum("A mentor" in x["Subject"] for x in mailbox.to(mentee)), 1, seconds=1.0)


async def test_each_admin_route_explains_its_own_refusal(api, platform, network_id):
    base = f"{platform.url('notifications')}/networks/{network_id}"
    coordinator = api.auth(network_id, role="institution_coordinator", institution_id="inst-a")
    expected = {"/deliveries": "deliveries", "/templates": "templates", "/webhooks": "webhooks",
                "/notification-settings": "notification settings"}
    for path, topic in expected.items():
        refused = await api.http.get(base + path, headers=coordinator)
        assert refused.status_code == 403 and topic in refused.json()["detail"], (path, refused.text)


async def test_a_network_overrides_its_wording_and_bad_templates_are_refused(api, platform, mailbox, network_id):
    url = f"{platform.url('notifications')}/networks/{network_id}/templates/welcome"
    broken = await api.http.put(url, json={"subject": "Hi {{ recipient.first_name "}, headers=api.auth(network_id))
    assert broken.status_code == 422 and "subject" in broken.json()["detail"]
    unknown = await api.http.put(url, json={"text": "{{ password }}"}, headers=api.auth(network_id))
    assert unknown.status_code == 422 and "password" in unknown.json()["detail"]
    escape = await api.http.put(url, json={"text": "{{ ''.__class__.__mro__ }}"}, headers=api.auth(network_id))
    assert escape.status_code == 422
    coordinator = api.auth(network_id, role="institution_coordinator", institution_id="inst-a")
    assert (await api.http.put(url, json={"subject": "x"}, headers=coordinator)).status_code == 403
    assert (await api.http.put(url, json={"subject": "x"}, headers=api.auth("other-net"))).status_code == 403
    assert (await api.http.put(url.replace("welcome", "nope"), json={"subject": "x"},
                               headers=api.auth(network_id))).status_code == 404
    ours = {"subject": "Bienvenue {{ recipient.first_name }} !",
            "html": "<div style=\"color:#0b5\"><h1>Bienvenue {{ recipient.display_name }}</h1></div>"}
    assert (await api.http.put(url, json=ours, headers=api.auth(network_id))).status_code == 200
    address, elsewhere = _address("brand"), _address("plain")
    await api.register_mentee(network_id, 1, display_name="Chloé <b>D</b>", email=address)
    await api.register_mentee(f"{network_id}-x", 2, display_name="Zoe Q", email=elsewhere)
    [branded] = await eventually(lambda: mailbox.to(address), lambda m: len(m) == 1)
    assert branded["Subject"] == "Bienvenue Chloé !"
    html = branded.get_body(("html",)).get_content()
    assert "Bienvenue Chloé &lt;b&gt;D&lt;/b&gt;" in html and "Hello Chloé," in _text(branded)
    [plain] = await eventually(lambda: mailbox.to(elsewhere), lambda m: len(m) == 1)
    assert plain["Subject"] == "Welcome to mentoring, Zoe"
    assert (await api.http.delete(url, headers=api.auth(network_id))).status_code == 204


async def test_webhooks_are_signed_per_network_and_message_delivered_is_published(api, platform, network_id):
    receiver = WebhookReceiver()
    try:
        url = f"{platform.url('notifications')}/networks/{network_id}/webhooks"
        bad = await api.http.post(url, json={"url": receiver.url, "kinds": ["nudge"]}, headers=api.auth(network_id))
        assert bad.status_code == 422 and "not announced" in bad.text
        created = await api.http.post(url, json={"url": receiver.url, "kinds": ["milestone"]},
                                      headers=api.auth(network_id))
        assert created.status_code == 201
        secret = created.json()["secret"]
        listed = (await api.http.get(url, headers=api.auth(network_id))).json()
        assert [w["secret"] for w in listed] == [None]
        assert (await api.http.get(url, headers=api.auth("other-net"))).status_code == 403
        events = Events(network_id)
        pair, mentor, mentee = await _people(platform, events)
        await publish(platform.servers.kafka_bootstrap, events.milestone(pair, "Board exam passed"))
        [hook] = await eventually(lambda: list(receiver.requests), lambda r: len(r) == 1)
        signed = hmac.new(secret.encode(), hook.headers["X-Mentorship-Timestamp"].encode() + b"." + hook.body,
                          hashlib.sha256).hexdigest()
        assert hook.headers["X-Mentorship-Signature"] == f"sha256={signed}"
        assert hook.json()["kind"] == "milestone" and hook.json()["network_id"] == network_id
        delivery_id = hook.headers["X-Mentorship-Delivery"]
    finally:
        receiver.close()
    consumer = AIOKafkaConsumer(NOTIFICATIONS_TOPIC, bootstrap_servers=platform.servers.kafka_bootstrap,
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    try:
        async def delivered() -> list[dict]:
            batch = await consumer.getmany(timeout_ms=500)
            found.extend(json.loads(r.value) for records in batch.values() for r in records)
            return [e for e in found if e["data"].get("delivery_id") == delivery_id]
        found: list[dict] = []
        [event] = await eventually(delivered, lambda e: len(e) >= 1)
        assert event["type"] == "MessageDelivered" and event["data"]["channel"] == "webhook"
    finally:
        await consumer.stop()
