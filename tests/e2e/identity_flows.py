"""Calls the identity tests make on the running platform: the operator, networks, grants,
sign-in and sessions."""

from __future__ import annotations

import uuid

import httpx

from shared.auth import Kind, issue_token


class Identity:
    def __init__(self, api) -> None:
        self.api, self.http = api, api.http
        self.profiles = api.platform.url("profiles")

    def operator(self) -> dict[str, str]:
        token = issue_token(self.api.platform.jwt_keys.private_pem, kind=Kind.OPERATOR,
                            network_id=None, subject="operator-test")
        return {"Authorization": f"Bearer {token}"}

    @staticmethod
    def bearer(tokens: dict) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens['access_token']}"}

    async def create_network(self, network_id: str, admin_email: str | None = None) -> dict:
        response = await self.http.post(f"{self.profiles}/networks", headers=self.operator(), json={
            "network_id": network_id, "name": f"Network {network_id}",
            "admin_email": admin_email or f"admin-{uuid.uuid4().hex[:6]}@example.org"})
        assert response.status_code == 201, response.text
        return response.json()

    async def identity_provider_network(self, identity_providers) -> str:
        """Network `a` of the mock IdP, made once per test session whichever test needs it
        first, with institution `inst-a`; its first admin's person id."""
        if not hasattr(identity_providers, "admin_person_id"):
            network_id = identity_providers.networks["a"]
            created = await self.create_network(network_id)
            admin = await self.local(network_id, created["admin_person_id"])
            await self.institution(network_id, "inst-a", self.bearer(admin))
            identity_providers.admin_person_id = created["admin_person_id"]
        return identity_providers.admin_person_id

    async def local(self, network_id: str, person_id: str) -> dict:
        response = await self.http.post(f"{self.profiles}/auth/local/session",
                                         json={"network_id": network_id, "person_id": person_id})
        assert response.status_code == 200, response.text
        return response.json()

    async def refresh(self, refresh_token: str) -> httpx.Response:
        return await self.http.post(f"{self.profiles}/auth/refresh",
                                    json={"refresh_token": refresh_token})

    async def me(self, tokens: dict) -> httpx.Response:
        return await self.http.get(f"{self.profiles}/me", headers=self.bearer(tokens))

    async def oidc(self, network_id: str, id_token: str, nonce: str) -> httpx.Response:
        return await self.http.post(f"{self.profiles}/auth/oidc/session", json={
            "network_id": network_id, "id_token": id_token, "nonce": nonce})

    async def grant(self, network_id: str, headers: dict, **body) -> httpx.Response:
        return await self.http.post(f"{self.profiles}/networks/{network_id}/grants", json=body,
                                    headers=headers)

    async def institution(self, network_id: str, institution_id: str, headers: dict) -> None:
        response = await self.http.post(
            f"{self.profiles}/networks/{network_id}/institutions", headers=headers,
            json={"id": institution_id, "name": f"Institution {institution_id}"})
        assert response.status_code == 201, response.text

    async def register(self, network_id: str, headers: dict, role: str, name: str,
                       email: str, *, institution: str = "inst-a", stage: str = "M3",
                       program_id: str | None = None, capacity: int = 2) -> str:
        body = {"institution_id": institution, "display_name": name, "email": email,
                "career_stage": stage, **({"program_id": program_id} if program_id else {}),
                **({"capacity": capacity} if role == "mentor" else {})}
        response = await self.http.post(f"{self.profiles}/networks/{network_id}/{role}s",
                                        json=body, headers=headers)
        assert response.status_code == 201, response.text
        return response.json()["id"]
