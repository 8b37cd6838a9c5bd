"""Attack: a token of network `other` naming a person of this network read and changed that
person's in-app feed and preferences; a service token naming the person did too. The feed and
preferences are the token's own person's, in the token's own network, and a person's token
only."""

from __future__ import annotations

from tests.support import eventually


async def test_another_networks_token_cannot_read_or_change_a_persons_feed(api, network_id):
    registered = await api.register_mentee(network_id, 1, institution_id="inst-a")
    person_id = registered.json()["id"]
    await eventually(lambda: api.feed(network_id, person_id), lambda items: len(items) > 0,
                     timeout=60, what="the welcome in the person's own feed")
    base = api.platform.url("notifications")
    own = api.auth(network_id, role="mentee", person_id=person_id)
    before = (await api.http.get(f"{base}/me/preferences", headers=own)).json()
    for attacker in (api.auth("other", role="mentee", person_id=person_id),
                     api.auth(network_id, role="service", person_id=person_id)):
        feed = await api.http.get(f"{base}/me/notifications", headers=attacker)
        assert feed.status_code == 403, feed.text
        marked = await api.http.post(f"{base}/me/notifications/read", headers=attacker)
        assert marked.status_code == 403
        prefs = await api.http.get(f"{base}/me/preferences", headers=attacker)
        assert prefs.status_code == 403
        changed = await api.http.put(f"{base}/me/preferences", headers=attacker,
                                     json={**{k: before[k] for k in before if k != "kinds"},
                                           "digest": "weekly"})
        assert changed.status_code == 403
    after = (await api.http.get(f"{base}/me/preferences", headers=own)).json()
    assert after == before
    unread = (await api.http.get(f"{base}/me/notifications", headers=own)).json()["unread_count"]
    assert unread > 0  # nothing was marked read on the person's behalf
