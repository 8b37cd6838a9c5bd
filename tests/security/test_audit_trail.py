"""Every denied access and every privileged change is in the audit log, whichever service saw
it: who (token subject and role), what, when.

Other services never touch the profiles database: their entries travel as audit events
(`MatchingAuditRecorded`, ...) through their own outboxes and audit topics to profiles, which files each once in its log.
"""

from __future__ import annotations

from tests.security.attack_support import Network
from tests.support import eventually


async def test_denials_and_privileged_changes_of_every_service_reach_the_audit_log(api, network_id):
    network = Network(api, network_id)
    mentee = api.token("mentee", network_id, person_id="someone")
    as_mentee = {"Authorization": f"Bearer {mentee}"}
    url = api.platform.url
    refused = [
        await api.http.get(f"{network.profiles}/audit", headers=as_mentee),
        await api.http.put(f"{url('notifications')}/networks/{network_id}/templates/welcome",
                           json={"subject": "Hi"}, headers=as_mentee),
        await api.http.get(f"{url('matching')}/networks/{network_id}/mentorships",
                           headers=api.auth(f"{network_id}-elsewhere", role="mentee",
                                            person_id="someone")),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403]
    changed = await api.http.put(
        f"{url('notifications')}/networks/{network_id}/templates/welcome",
        json={"subject": "Welcome to the network"}, headers=network.admin())
    assert changed.status_code == 200, changed.text
    removed = await api.http.delete(
        f"{url('notifications')}/networks/{network_id}/templates/welcome", headers=network.admin())
    assert removed.status_code == 204

    async def log() -> list[dict]:
        r = await api.http.get(f"{network.profiles}/audit", params={"limit": 200},
                               headers=network.admin())
        return r.json()["items"]

    entries = await eventually(log, lambda items: len(items) >= 5, timeout=60,
                               what="five entries in the audit log")
    denied = sorted((e["service"], e["target_id"]) for e in entries if e["action"] == "access.denied")
    assert denied == [
        ("matching", f"GET /networks/{network_id}/mentorships"),
        ("notifications", f"PUT /networks/{network_id}/templates/welcome"),
        ("profiles", f"GET /networks/{network_id}/audit"),
    ]
    assert {(e["actor_role"], e["network_id"]) for e in entries if e["action"] == "access.denied"} == {
        ("participant", network_id)}
    templates = [(e["action"], e["target_type"], e["target_id"], e["actor_role"])
                 for e in entries if e["service"] == "notifications" and e["action"] != "access.denied"]
    assert templates == [("template.changed", "template", "welcome", "network_admin"),
                         ("template.removed", "template", "welcome", "network_admin")]
    assert all(e["at"] for e in entries)
