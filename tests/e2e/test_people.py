"""People through the HTTP API with real tokens, on the running services: list, filters,
pagination, search, profile edits with ETag/If-Match, identity attributes, vocabularies, and
each tenancy boundary on list, search and get."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer

from shared.events import new_event
from shared.events.schemas import MatchProposed
from shared.events.topics import MATCHING_TOPIC
from tests.support import eventually

from tests.e2e.test_programs import Org, _program, _published


class People:
    """A network with two institutions, four programs and five people:

    - P_a (inst-a only): Ada Lovelace (mentor), Grace Hopper (mentee), both at inst-a;
    - P_b (inst-b only): Barbara Liskov (mentor) at inst-b;
    - P_cross (inst-b, cross-institution): Radia Perlman (mentee) at inst-b;
    - P_net (network-wide): Frances Allen (FA) (mentor) at inst-b.
    """

    def __init__(self, api, org: Org) -> None:
        self.api, self.org = api, org
        self.network_id, self.base = org.network_id, org.base
        self.programs: dict[str, str] = {}
        self.ids: dict[str, str] = {}

    async def setup(self) -> None:
        for key, body in {
            "P_a": _program("inst-a", name="A only"),
            "P_b": _program("inst-b", name="B only"),
            "P_cross": _program("inst-b", name="B cross", cross_institution=True),
            "P_net": _program(None, name="Network-wide"),
        }.items():
            created = await self.org.create(body)
            assert created.status_code == 201, created.text
            self.programs[key] = created.json()["id"]
        for name, role, institution, program, extra in (
            ("Ada Lovelace", "mentor", "inst-a", "P_a", {"capacity": 2}),
            ("Grace Hopper", "mentee", "inst-a", "P_a", {}),
            ("Barbara Liskov", "mentor", "inst-b", "P_b", {"capacity": 1}),
            ("Radia Perlman", "mentee", "inst-b", "P_cross", {}),
            ("Frances Allen (FA)", "mentor", "inst-b", "P_net", {"capacity": 0}),
        ):
            body = {
                "institution_id": institution,
                "program_id": self.programs[program],
                "display_name": name,
                "email": f"{name.split()[0].lower()}@example.org",
                "career_stage": "faculty-professor" if role == "mentor" else "M2",
                **extra,
            }
            response = await self.api.http.post(
                f"{self.base}/{role}s", json=body, headers=self.org.auth()
            )
            assert response.status_code == 201, response.text
            self.ids[name.split()[0]] = response.json()["id"]

    def auth(self, role: str = "network_admin", **scope) -> dict[str, str]:
        return self.org.auth(role=role, **scope)

    def as_person(self, first_name: str, role: str = "mentee") -> dict[str, str]:
        return self.auth(role=role, person_id=self.ids[first_name])

    def coordinator(self, institution: str = "inst-a", *programs: str,
                    role: str = "institution_coordinator") -> dict[str, str]:
        return self.auth(role=role, institution_id=institution,
                         program_ids=[self.programs[p] for p in programs])

    async def list(self, headers=None, **params):
        response = await self.api.http.get(
            f"{self.base}/people", params=params, headers=headers or self.auth()
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def names(self, headers=None, **params) -> list[str]:
        names, cursor = [], None
        while True:
            page = await self.list(headers, limit=100, **params, **({"cursor": cursor} if cursor else {}))
            names += [p["display_name"].split()[0] for p in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return sorted(names)

    async def get(self, first_name: str, headers=None):
        return await self.api.http.get(
            f"{self.base}/people/{self.ids[first_name]}", headers=headers or self.auth()
        )

    async def patch(self, first_name: str, body: dict, etag: str | None = None, headers=None):
        headers = (headers or self.auth()) | ({"If-Match": etag} if etag is not None else {})
        return await self.api.http.patch(
            f"{self.base}/people/{self.ids[first_name]}/profile", json=body, headers=headers
        )


@pytest.fixture
async def people(api, network_id) -> People:
    org = Org(api, network_id)
    await org.setup("inst-a", "inst-b")
    people = People(api, org)
    await people.setup()
    return people


EVERYONE = ["Ada", "Barbara", "Frances", "Grace", "Radia"]


async def test_pagination_walks_everyone_once(people):
    seen, cursor, pages = [], None, 0
    while True:
        page = await people.list(limit=2, **({"cursor": cursor} if cursor else {}))
        seen += [p["id"] for p in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5 and seen == sorted(seen)
    assert pages == 3


async def test_filters_by_program_role_stage_specialty_help_and_capacity(people):
    assert await people.names(role="mentor") == ["Ada", "Barbara", "Frances"]
    assert await people.names(role="mentee") == ["Grace", "Radia"]
    assert await people.names(program=people.programs["P_a"]) == ["Ada", "Grace"]
    assert await people.names(career_stage="M2") == ["Grace", "Radia"]
    assert await people.names(has_capacity="true") == ["Ada", "Barbara"]
    assert await people.names(has_capacity="false") == ["Frances", "Grace", "Radia"]
    edit = await people.patch("Ada", {"mentor": {"specialty": "general-surgery",
                                                 "help_offered": ["research", "wellbeing"]}}, '"1"')
    assert edit.status_code == 200, edit.text
    edit = await people.patch("Radia", {"mentee": {"specialty_interests": ["general-surgery"]}},
                              '"1"')
    assert edit.status_code == 200, edit.text
    assert await people.names(specialty="general-surgery") == ["Ada", "Radia"]
    assert await people.names(help_offered="wellbeing") == ["Ada"]
    assert await people.names(help_offered="wellbeing", role="mentee") == []
    paused = await people.patch("Ada", {"mentor": {"paused": True}}, '"2"')
    assert paused.status_code == 200, paused.text
    assert await people.names(has_capacity="true") == ["Barbara"]


async def test_search_by_name_is_case_insensitive_substring_and_escaped(people):
    assert await people.names(q="lOVe") == ["Ada"]
    assert await people.names(q="ada") == ["Ada"]
    assert await people.names(q="(fa)") == ["Frances"]  # regex characters are plain text
    assert await people.names(q=".*") == []
    assert await people.names(q="r", role="mentee") == ["Grace", "Radia"]


async def test_profile_edits_need_the_current_etag_and_are_published(people, platform):
    read = await people.get("Ada")
    assert read.status_code == 200 and read.headers["ETag"] == '"1"'
    assert read.json()["roles"] == ["mentor"] and read.json()["mentor"]["capacity"] == 2
    body = {"mentor": {"capacity": 3, "paused": True, "time_zone": "Europe/London",
                       "languages": ["en", "es"], "meeting_modes": ["virtual"],
                       "training_completed": True, "do_not_match": [people.ids["Grace"]]}}
    missing = await people.patch("Ada", body)
    assert missing.status_code == 428 and "If-Match" in missing.json()["detail"]
    first = await people.patch("Ada", body, '"1"')
    assert first.status_code == 200, first.text
    assert first.headers["ETag"] == '"2"'
    assert first.json()["mentor"]["time_zone"] == "Europe/London"
    assert first.json()["capacity"] == 3  # the first-flow field follows the profile
    stale = await people.patch("Ada", {"career_stage": "fellow"}, '"1"')
    assert stale.status_code == 412 and "changed since you read it" in stale.json()["detail"]
    assert (await people.get("Ada")).headers["ETag"] == '"2"'
    bootstrap = platform.servers.kafka_bootstrap
    updated = await _published(bootstrap, people.ids["Ada"], "ProfileUpdated")
    assert updated["data"]["version"] == 2 and updated["data"]["mentor"]["capacity"] == 3
    capacity = await _published(bootstrap, people.ids["Ada"], "MentorCapacityChanged")
    assert (capacity["data"]["capacity"], capacity["data"]["previous_capacity"]) == (3, 2)
    paused = await _published(bootstrap, people.ids["Ada"], "MentorPaused")
    assert paused["data"]["paused"] is True


async def test_concurrent_edits_of_one_version_let_exactly_one_through(people):
    results = await asyncio.gather(
        *(people.patch("Ada", {"mentor": {"capacity": n}}, '"1"') for n in (3, 4, 5, 6))
    )
    assert sorted(r.status_code for r in results) == [200, 412, 412, 412]
    assert (await people.get("Ada")).headers["ETag"] == '"2"'


async def test_malformed_bodies_are_422_never_500(people):
    for body in ({"mentor": "yes"}, {"mentor": {"capacity": "many"}}, {"mentee": {"goals": [1]}},
                 {"mentee": {"goals": [{"text": "x", "category": "research",
                                        "target_date": "someday"}]}},
                 {"display_name": None}, {"mentor": {"languages": "en"}}, [], "x"):
        response = await people.patch("Grace", body, '"1"')
        assert response.status_code == 422, (body, response.text)
    assert (await people.get("Grace")).headers["ETag"] == '"1"'


async def test_invalid_profiles_are_422_with_the_allowed_values_and_store_nothing(people):
    for body, message in (
        ({"mentor": {"time_zone": "Mars/Olympus"}}, "Unknown time zone"),
        ({"mentor": {"help_offered": ["astrology"]}}, "career-planning"),
        ({"career_stage": "M9"}, "Unknown career stage 'M9'"),
        ({"mentor": {"capacity": 500}}, "between 0 and 50"),
        ({"mentor": {"colour": "blue"}}, "colour"),
    ):
        response = await people.patch("Ada", body, '"1"')
        assert response.status_code == 422 and message in response.text, response.text
    assert (await people.get("Ada")).headers["ETag"] == '"1"'


async def test_vocabularies_are_extended_by_network_admins(people):
    read = await people.api.http.get(f"{people.base}/vocabularies/specialties",
                                     headers=people.as_person("Grace"))
    assert read.status_code == 200 and "pediatrics" in read.json()["terms"]
    refused = await people.api.http.post(
        f"{people.base}/vocabularies/specialties", json={"terms": ["global-surgery"]},
        headers=people.coordinator("inst-a"),
    )
    assert refused.status_code == 403
    unknown = await people.patch("Grace", {"mentee": {"specialty_interests": ["global-surgery"]}},
                                 '"1"')
    assert unknown.status_code == 422 and "Unknown specialty 'global-surgery'" in unknown.text
    added = await people.api.http.post(
        f"{people.base}/vocabularies/specialties", json={"terms": ["global-surgery"]},
        headers=people.auth(),
    )
    assert added.status_code == 200 and added.json()["added_by_network"] == ["global-surgery"]
    known = await people.patch("Grace", {"mentee": {"specialty_interests": ["global-surgery"]}},
                               '"1"')
    assert known.status_code == 200, known.text
    other = await people.api.http.get(f"{people.base}/vocabularies/nonsense", headers=people.auth())
    assert other.status_code == 422


async def test_identity_attributes_are_shown_to_the_person_only(people):
    me = people.as_person("Grace")
    identity = {"first_generation": True, "gender": "woman", "affinity_matching": True}
    by_coordinator = await people.patch("Grace", {"identity": identity}, '"1"',
                                        headers=people.coordinator("inst-a"))
    assert by_coordinator.status_code == 403 and "only the person" in by_coordinator.text
    own = await people.patch("Grace", {"identity": identity}, '"1"', headers=me)
    assert own.status_code == 200, own.text
    assert own.json()["identity"]["gender"] == "woman"
    assert (await people.get("Grace", me)).json()["identity"]["first_generation"] is True
    await pair(people, "Ada", "Grace", "P_a")  # Ada then sees Grace's public part
    for headers in (people.auth(), people.coordinator("inst-a"), people.as_person("Ada", "mentor")):
        seen = await people.get("Grace", headers)
        assert seen.status_code == 200 and "identity" not in seen.json()
        assert "woman" not in seen.text
        listed = await people.list(headers)
        assert "woman" not in str(listed)
        grace = next(p for p in listed["items"] if p["id"] == people.ids["Grace"])
        assert "identity" not in grace
        searched = await people.list(headers, q="hopper")
        assert [p["id"] for p in searched["items"]] == [people.ids["Grace"]]
        assert "identity" not in searched["items"][0]


async def pair(people: People, mentor: str, mentee: str, program: str) -> None:
    """Matching proposes them to each other (its event, as matching publishes it); wait until
    profiles has seen it."""
    payload = MatchProposed(
        mentorship_id=f"ms-{uuid.uuid4().hex[:8]}", network_id=people.network_id,
        program_id=people.programs[program], mentor_id=people.ids[mentor],
        mentee_id=people.ids[mentee], mentor_institution_id="inst-a",
        mentee_institution_id="inst-a", proposed_at=datetime.now(UTC),
    )
    event = new_event(payload, subject=payload.mentorship_id, tenant_id=people.network_id,
                      source="/tests")
    producer = AIOKafkaProducer(bootstrap_servers=people.api.platform.servers.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(MATCHING_TOPIC, event.to_bytes(),
                                     key=payload.mentorship_id.encode())
    finally:
        await producer.stop()
    await eventually(lambda: people.get(mentee, people.as_person(mentor, "mentor")),
                     lambda r: r.status_code == 200, what="profiles to see the pair")


async def test_participants_see_themselves_and_the_public_part_of_whom_they_are_paired_with(
    people,
):
    ada = people.as_person("Ada", "mentor")
    # Sharing a program is not enough: a participant does not browse its roster.
    assert await people.names(ada) == ["Ada"]
    assert (await people.get("Grace", ada)).status_code == 404
    await pair(people, "Ada", "Grace", "P_a")
    assert await people.names(ada) == ["Ada", "Grace"]
    listed = {p["display_name"]: p for p in (await people.list(ada))["items"]}
    assert listed["Ada Lovelace"]["email"] == "ada@example.org"  # herself: everything
    grace = listed["Grace Hopper"]
    assert "email" not in grace and "identity" not in grace
    assert "goals" not in grace["mentee"] and grace["program_ids"] == [people.programs["P_a"]]
    assert (await people.get("Barbara", ada)).status_code == 404
    assert await people.names(ada, q="liskov") == []
    assert (await people.get("Grace", ada)).json().get("email") is None
    edit_other = await people.patch("Grace", {"career_stage": "M3"}, '"1"', headers=ada)
    assert edit_other.status_code == 403
    own = await people.patch("Ada", {"career_stage": "fellow"}, '"1"', headers=ada)
    assert own.status_code == 200, own.text
    # The pair works both ways, and nobody else joins in.
    assert await people.names(people.as_person("Grace")) == ["Ada", "Grace"]
    assert await people.names(people.as_person("Radia")) == ["Radia"]


async def test_institution_coordinators_stay_in_their_institution(people):
    plain = people.coordinator("inst-a")
    assert await people.names(plain) == ["Ada", "Grace"]
    assert await people.names(plain, q="liskov") == []
    assert await people.names(plain, role="mentor") == ["Ada"]
    for other in ("Barbara", "Radia", "Frances"):
        assert (await people.get(other, plain)).status_code == 404
        assert (await people.patch(other, {"career_stage": "fellow"}, '"1"', plain)).status_code == 404
    # A program they coordinate that spans institutions brings its people into reach, no more.
    cross = people.coordinator("inst-a", "P_cross")
    assert await people.names(cross) == ["Ada", "Grace", "Radia"]
    assert (await people.get("Radia", cross)).status_code == 200
    assert (await people.get("Barbara", cross)).status_code == 404
    network_wide = people.coordinator("inst-a", "P_net")
    assert await people.names(network_wide, q="allen") == ["Frances"]
    # Coordinating a program of another institution as well (a grant a network admin or that
    # institution gives) adds that program's people: the reach is the union of the grants.
    both = people.coordinator("inst-a", "P_b")
    assert await people.names(both) == ["Ada", "Barbara", "Grace"]
    assert (await people.get("Radia", both)).status_code == 404


async def test_program_coordinators_see_their_programs_only(people):
    mine = people.coordinator("inst-a", "P_a", role="program_coordinator")
    assert await people.names(mine) == ["Ada", "Grace"]
    other = people.coordinator("inst-b", "P_cross", role="program_coordinator")
    assert await people.names(other) == ["Radia"]
    assert (await people.get("Barbara", other)).status_code == 404
    assert await people.names(people.coordinator("inst-b", role="program_coordinator")) == []


async def test_admins_see_everyone_and_other_networks_nobody(people):
    assert await people.names() == EVERYONE
    foreign = people.api.auth("some-other-network")
    response = await people.api.http.get(f"{people.base}/people", headers=foreign)
    assert response.status_code == 403
    assert (await people.get("Ada", foreign)).status_code == 403
