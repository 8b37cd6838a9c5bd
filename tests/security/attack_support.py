"""What the attack tests share: a network with institutions and programs, set up through the
profiles API the way a network admin would, and people registered in it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.e2e.conftest import Api


def open_program(institution_id: str | None, **fields: Any) -> dict[str, Any]:
    """A program whose enrolment window is open today (self-registration is possible)."""
    today = datetime.now(UTC).date()
    return {
        "institution_id": institution_id,
        "name": f"Program {uuid.uuid4().hex[:6]}",
        "type": "near-peer",
        "cohort_start": (today + timedelta(days=10)).isoformat(),
        "cohort_end": (today + timedelta(days=300)).isoformat(),
        "enrolment_opens": (today - timedelta(days=5)).isoformat(),
        "enrolment_closes": (today + timedelta(days=5)).isoformat(),
        **fields,
    }


class Network:
    """One network of the tests: its profiles URL, an admin's headers and what was made."""

    def __init__(self, api: Api, network_id: str) -> None:
        self.api, self.id = api, network_id
        self.profiles = f"{api.platform.url('profiles')}/networks/{network_id}"

    def admin(self) -> dict[str, str]:
        return self.api.auth(self.id)

    def person(self, person_id: str, role: str = "mentee") -> dict[str, str]:
        return self.api.auth(self.id, role=role, person_id=person_id)

    async def institution(self, institution_id: str) -> None:
        r = await self.api.http.post(
            f"{self.profiles}/institutions",
            json={"id": institution_id, "name": f"Institution {institution_id}"},
            headers=self.admin(),
        )
        assert r.status_code == 201, r.text

    async def program(self, institution_id: str | None, **fields: Any) -> str:
        r = await self.api.http.post(
            f"{self.profiles}/programs", json=open_program(institution_id, **fields),
            headers=self.admin(),
        )
        assert r.status_code == 201, r.text
        return r.json()["id"]

    async def register(self, role: str, institution_id: str, **fields: Any) -> dict[str, Any]:
        body = {
            "institution_id": institution_id,
            "display_name": f"Person {uuid.uuid4().hex[:6]}",
            "email": f"p-{uuid.uuid4().hex[:10]}@example.org",
            "career_stage": "M3",
            **fields,
        }
        r = await self.api.http.post(f"{self.profiles}/{role}s", json=body, headers=self.admin())
        assert r.status_code == 201, r.text
        return r.json()
