"""What the web app's pages needed from the services and no API gave: retiring vocabulary
terms (profiles), feedback for a program's coordinators (matching), a nudge sent by hand and a
template preview (notifications). Each with its authorization, through HTTP."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from tests.support import eventually

TODAY = datetime.now(UTC).date()


class Net:
    def __init__(self, api, network_id: str) -> None:
        self.api, self.id = api, network_id
        self.p = f"{api.platform.url('profiles')}/networks/{network_id}"
        self.m = f"{api.platform.url('matching')}/networks/{network_id}"
        self.n = f"{api.platform.url('notifications')}/networks/{network_id}"

    def auth(self, role: str = "network_admin", **scope) -> dict[str, str]:
        return self.api.auth(self.id, role=role, **scope)

    async def ok(self, method: str, url: str, headers=None, **kwargs):
        r = await self.api.http.request(method, url, headers=headers or self.auth(), **kwargs)
        assert r.status_code < 400, f"{method} {url}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    async def setup(self) -> str:
        await self.ok("POST", f"{self.p}/institutions", json={"id": "inst-a", "name": "A"})
        program = await self.ok("POST", f"{self.p}/programs", json={
            "name": "P", "type": "near-peer", "institution_id": "inst-a",
            "cohort_start": str(TODAY - timedelta(days=40)), "cohort_end": str(TODAY + timedelta(days=200)),
            "enrolment_opens": str(TODAY - timedelta(days=40)), "enrolment_closes": str(TODAY + timedelta(days=20))})
        return program["id"]

    async def person(self, role: str, name: str, program: str | None = None, **profile) -> str:
        body = {"institution_id": "inst-a", "display_name": name, "career_stage": "M2" if role == "mentee" else "PGY-2",
                "email": f"{uuid.uuid4().hex[:8]}@example.org", "program_id": program}
        if role == "mentor":
            body["capacity"] = 2
        person = await self.ok("POST", f"{self.p}/{role}s", json=body)
        if profile:
            await self.edit(person["id"], {role: profile})
        return person["id"]

    async def edit(self, person_id: str, patch: dict, headers=None):
        current = await self.api.http.get(f"{self.p}/people/{person_id}", headers=self.auth())
        return await self.api.http.patch(f"{self.p}/people/{person_id}/profile", json=patch,
                                         headers={**(headers or self.auth()), "If-Match": current.headers["ETag"]})

    async def mentorship(self, program: str, mentee: str, mentor: str) -> str:
        started = datetime.now(UTC) - timedelta(days=20)

        async def propose():
            return await self.api.http.post(f"{self.m}/programs/{program}/proposals", headers=self.auth(),
                                            json={"mentee_id": mentee, "mentor_id": mentor, "at": started.isoformat()})
        mid = (await eventually(propose, lambda r: r.status_code == 201, timeout=60,
                                what="matching to know the pair")).json()["mentorship_id"]
        for person, role in ((mentee, "mentee"), (mentor, "mentor")):
            await self.ok("POST", f"{self.m}/mentorships/{mid}/accept", json={"at": (started + timedelta(hours=1)).isoformat()},
                          headers=self.auth(role, person_id=person))
        return mid


async def test_retired_terms_cannot_be_chosen_but_their_holders_keep_them(api, network_id):
    net = Net(api, network_id)
    program = await net.setup()
    holder = await net.person("mentee", "Holder", program, needs=["wellbeing", "research"])
    newcomer = await net.person("mentee", "Newcomer", program)
    url = f"{net.p}/vocabularies/help-categories/retirements"

    for who in (net.auth("program_coordinator", program_ids=[program]), net.auth("mentee", person_id=holder)):
        refused = await api.http.post(url, json={"terms": ["wellbeing"]}, headers=who)
        assert refused.status_code == 403 and "network admin" in refused.json()["detail"]
    unknown = await api.http.post(url, json={"terms": ["astrology"]}, headers=net.auth())
    assert unknown.status_code == 422 and "astrology" in unknown.json()["detail"]

    retired = await net.ok("POST", url, json={"terms": ["wellbeing"]})
    assert retired["retired"] == ["wellbeing"] and "wellbeing" not in retired["terms"]
    vocabulary = await net.ok("GET", f"{net.p}/vocabularies/help-categories")
    assert "wellbeing" not in vocabulary["terms"] and "research" in vocabulary["terms"]

    chosen = await net.edit(newcomer, {"mentee": {"needs": ["wellbeing"]}}, net.auth("mentee", person_id=newcomer))
    assert chosen.status_code == 422 and "retired" in chosen.json()["detail"]
    kept = await net.edit(holder, {"mentee": {"preferred_language": "en"}}, net.auth("mentee", person_id=holder))
    assert kept.status_code == 200, kept.text
    assert kept.json()["mentee"]["needs"] == ["wellbeing", "research"]

    audit = await net.ok("GET", f"{net.p}/audit", params={"action": "vocabulary.retired"})
    assert [e["fields"] for e in audit["items"]] == [["wellbeing"]]
    assert (await api.http.delete(f"{url}/wellbeing", headers=net.auth())).status_code == 204
    assert (await api.http.delete(f"{url}/wellbeing", headers=net.auth())).status_code == 404
    chosen = await net.edit(newcomer, {"mentee": {"needs": ["wellbeing"]}}, net.auth("mentee", person_id=newcomer))
    assert chosen.status_code == 200, chosen.text


async def test_feedback_reaches_the_programs_coordinators_without_private_notes(api, network_id):
    net = Net(api, network_id)
    program = await net.setup()
    mentor = await net.person("mentor", "Dr Fox", program, specialty="cardiology")
    mentee = await net.person("mentee", "Ann", program, needs=["research"])
    mid = await net.mentorship(program, mentee, mentor)
    held = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    await net.ok("POST", f"{net.m}/mentorships/{mid}/meetings/log", headers=net.auth("mentee", person_id=mentee),
                 json={"held_at": held, "duration_minutes": 30, "mode": "video", "private_notes": "SECRET-NOTE"})
    await net.ok("POST", f"{net.m}/mentorships/{mid}/feedback", headers=net.auth("mentee", person_id=mentee),
                 json={"satisfaction": 2, "working": False, "comment": "We rarely find a time"})

    for reader in (net.auth(), net.auth("program_coordinator", program_ids=[program]),
                   net.auth("institution_coordinator", institution_id="inst-a")):
        body = await net.ok("GET", f"{net.m}/feedback", headers=reader)
        assert [(i["mentorship_id"], i["side"], i["satisfaction"], i["comment"], i["by_name"])
                for i in body["items"]] == [(mid, "mentee", 2, "We rarely find a time", "Ann")]
        assert body["items"][0]["mentor_name"] == "Dr Fox"
        assert "SECRET-NOTE" not in json.dumps(body)
    other = await net.ok("GET", f"{net.m}/feedback", headers=net.auth("program_coordinator", program_ids=["prog-other"]))
    assert other["items"] == []
    refused = await api.http.get(f"{net.m}/feedback", headers=net.auth("mentee", person_id=mentee))
    assert refused.status_code == 403
    stranger = await api.http.get(f"{net.m}/feedback", headers=api.auth("net-elsewhere"))
    assert stranger.status_code == 403


async def test_a_coordinator_nudges_a_pair_by_hand_once_a_day(api, network_id):
    net = Net(api, network_id)
    program = await net.setup()
    mentor = await net.person("mentor", "Dr Quiet", program, specialty="cardiology")
    mentee = await net.person("mentee", "Silent Sam", program, needs=["research"])
    waiting = await net.person("mentee", "Waiting Wes", program, needs=["research"])
    mid = await net.mentorship(program, mentee, mentor)
    url = f"{net.n}/mentorships/{mid}/nudges"
    coordinator = net.auth("program_coordinator", program_ids=[program])

    sent = await eventually(lambda: api.http.post(url, json={}, headers=coordinator),
                            lambda r: r.status_code == 202, timeout=60,
                            what="notifications to hold the pair as active")
    assert sent.json()["messages"] >= 2

    async def nudges(person: str) -> list[dict]:
        r = await api.http.get(f"{api.platform.url('notifications')}/me/notifications",
                               headers=net.auth("mentee", person_id=person))
        return [n for n in r.json()["items"] if n["kind"] == "nudge"]

    await eventually(lambda: nudges(mentee), lambda found: len(found) == 1, timeout=60, what="the mentee's nudge")
    await eventually(lambda: nudges(mentor), lambda found: len(found) == 1, timeout=60, what="the mentor's nudge")
    again = await api.http.post(url, json={}, headers=coordinator)
    assert again.status_code == 202
    assert len(await nudges(mentee)) == 1  # the same day's nudge is not sent twice

    for outsider in (net.auth("program_coordinator", program_ids=["prog-other"]),
                     net.auth("mentee", person_id=mentee), api.auth("net-elsewhere")):
        refused = await api.http.post(url, json={}, headers=outsider)
        assert refused.status_code in (403, 404), refused.text
    proposed = await net.ok("POST", f"{net.m}/programs/{program}/proposals",
                            json={"mentee_id": waiting, "mentor_id": mentor})
    not_active = await eventually(
        lambda: api.http.post(f"{net.n}/mentorships/{proposed['mentorship_id']}/nudges", json={}, headers=coordinator),
        lambda r: r.status_code != 404, timeout=60, what="notifications to know the proposal")
    assert not_active.status_code == 409


async def test_template_preview_renders_sample_data_for_network_admins(api, network_id):
    net = Net(api, network_id)
    url = f"{net.n}/templates/welcome/preview"
    shown = await net.ok("POST", url, json={"subject": "Hello {{ recipient.first_name }}!"})
    assert shown["subject"] == "Hello Ada!" and shown["text"].strip() and "<" in shown["html"]
    broken = await api.http.post(url, json={"subject": "{{ recipient.nope.deeper }}"}, headers=net.auth())
    assert broken.status_code == 422 and "Template not valid" in broken.json()["detail"]
    unknown = await api.http.post(f"{net.n}/templates/no_such_kind/preview", json={"subject": "x"}, headers=net.auth())
    assert unknown.status_code == 404
    refused = await api.http.post(url, json={"subject": "x"}, headers=net.auth("program_coordinator", program_ids=["p"]))
    assert refused.status_code == 403
