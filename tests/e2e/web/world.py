"""A small network for one browser test, built through the services' APIs.

Each test gets its own network (a few requests), so journeys never see each other's people.
The builder uses a network admin's token of the test key pair, as a script would; the person
in the browser then signs in through the web app like anyone else.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx


def today(offset: int = 0) -> str:
    return (datetime.now(UTC).date() + timedelta(days=offset)).isoformat()


@dataclass
class World:
    platform: Any
    http: httpx.AsyncClient
    network: str = field(default_factory=lambda: f"net-{uuid.uuid4().hex[:8]}")

    @property
    def admin(self) -> dict[str, str]:
        token = self.platform.jwt_keys.token("network_admin", self.network)
        return {"Authorization": f"Bearer {token}"}

    def url(self, service: str, path: str) -> str:
        return f"{self.platform.url(service)}/networks/{self.network}{path}"

    async def call(self, method: str, service: str, path: str, **kwargs: Any) -> Any:
        response = await self.http.request(method, self.url(service, path), headers={
            **self.admin, **kwargs.pop("headers", {})}, **kwargs)
        assert response.status_code < 400, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content else None

    async def institution(self, inst: str = "inst-a", name: str = "St Elsewhere") -> str:
        response = await self.http.post(self.url("profiles", "/institutions"), headers=self.admin,
                                        json={"id": inst, "name": name})
        assert response.status_code in (201, 409), response.text  # 409: a shared network has it
        return inst

    async def program(self, name: str = "Near-peer 2026", **options: Any) -> str:
        body = {"name": name, "type": "near-peer", "institution_id": "inst-a",
                "cohort_start": today(-10), "cohort_end": today(300),
                "enrolment_opens": today(-10), "enrolment_closes": today(60), **options}
        return (await self.call("POST", "profiles", "/programs", json=body))["id"]

    async def person(self, role: str, name: str, program: str | None = None,
                     career_stage: str = "M2", **profile: Any) -> str:
        body = {"institution_id": "inst-a", "display_name": name, "career_stage": career_stage,
                "email": f"{uuid.uuid4().hex[:10]}@example.org", "program_id": program}
        if role == "mentor":
            body["capacity"] = profile.pop("capacity", 2)
        person = await self.call("POST", "profiles", f"/{role}s", json=body)
        if profile:
            await self.edit(person["id"], {role: profile})
        return person["id"]

    async def email_of(self, person_id: str) -> str:
        return (await self.call("GET", "profiles", f"/people/{person_id}"))["email"]

    async def edit(self, person_id: str, patch: dict[str, Any]) -> None:
        current = await self.http.get(self.url("profiles", f"/people/{person_id}"),
                                      headers=self.admin)
        await self.call("PATCH", "profiles", f"/people/{person_id}/profile", json=patch,
                        headers={"If-Match": current.headers["ETag"]})

    async def grant(self, person_id: str, role: str, **scope: str) -> None:
        await self.call("POST", "profiles", "/grants",
                        json={"person_id": person_id, "role": role, **scope})

    def as_(self, person_id: str, role: str = "mentee") -> dict[str, str]:
        token = self.platform.jwt_keys.token(role, self.network, person_id=person_id)
        return {"Authorization": f"Bearer {token}"}

    async def suggestions(self, program: str, mentee: str, count: int) -> list[dict[str, Any]]:
        """Wait until matching suggests `count` mentors to the mentee (its pool follows events)."""
        from tests.support import eventually

        async def probe() -> list[dict[str, Any]]:
            r = await self.http.get(self.url("matching", f"/programs/{program}/mentees/{mentee}/suggestions"),
                                    headers=self.as_(mentee))
            return r.json() if r.status_code == 200 else []

        return await eventually(probe, lambda s: len(s) >= count, timeout=60,
                                what=f"{count} suggestions in matching")

    async def mentorship(self, program: str, mentee: str, mentor: str, days_ago: int = 30) -> str:
        """A mentorship started `days_ago`: proposed by hand, accepted by both (backdated with
        the API's `at`, as a program backfilling history would)."""
        started = datetime.now(UTC) - timedelta(days=days_ago)
        from tests.support import eventually

        async def propose():
            return await self.http.post(self.url("matching", f"/programs/{program}/proposals"),
                                        json={"mentee_id": mentee, "mentor_id": mentor,
                                              "at": started.isoformat()},
                                        headers=self.admin)

        created = await eventually(propose, lambda r: r.status_code == 201, timeout=60,
                                   what="matching to know both people")
        mid = created.json()["mentorship_id"]
        for person, role in ((mentee, "mentee"), (mentor, "mentor")):
            at = (started + timedelta(hours=1)).isoformat()
            r = await self.http.post(self.url("matching", f"/mentorships/{mid}/accept"), json={"at": at},
                                     headers=self.as_(person, role))
            assert r.status_code == 200, r.text
        return mid
