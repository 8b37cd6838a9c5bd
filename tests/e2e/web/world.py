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
        await self.call("POST", "profiles", "/institutions", json={"id": inst, "name": name})
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
