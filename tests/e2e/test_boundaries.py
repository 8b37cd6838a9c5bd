"""401/403 at the edge, and 422/409 that store nothing."""

from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support import eventually, stays


def _forged_token(network_id: str) -> str:
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    claims = {"sub": "x", "role": "network_admin", "network_id": network_id, "exp": 9999999999,
              "iss": "mentorship-local", "aud": "mentorship"}
    return jwt.encode(claims, pem, algorithm="RS256")


@pytest.mark.parametrize("service", ["profiles", "matching", "notifications", "analytics"])
async def test_every_api_wants_a_valid_token_but_health_and_metrics_do_not(api, platform, service):
    base = platform.url(service)
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert (await api.http.get(base + path)).status_code == 200, path
    protected = {
        "profiles": "/networks/n1/people/p1",
        "matching": "/networks/n1/pool/mentees",
        "notifications": "/me/notifications",
        "analytics": "/networks/n1/registrations",
    }[service]
    missing = await api.http.get(base + protected)
    assert missing.status_code == 401 and "bearer token is required" in missing.text
    forged = await api.http.get(base + protected, headers={"Authorization": f"Bearer {_forged_token('n1')}"})
    assert forged.status_code == 401 and "not valid" in forged.text


async def test_tokens_of_another_network_or_institution_are_refused(api, platform, network_id):
    other_network = await api.http.post(
        f"{platform.url('profiles')}/networks/{network_id}/mentees",
        json={"institution_id": "inst-a", "display_name": "X Y", "email": "x@y.org", "career_stage": "M1"},
        headers=api.auth("some-other-network"),
    )
    assert other_network.status_code == 403
    other_institution = await api.http.post(
        f"{platform.url('profiles')}/networks/{network_id}/mentees",
        json={"institution_id": "inst-a", "display_name": "X Y", "email": "x@y.org", "career_stage": "M1"},
        headers=api.auth(network_id, role="institution_coordinator", institution_id="inst-b"),
    )
    assert other_institution.status_code == 403
    assert "your own institution" in other_institution.json()["detail"]
    report = await api.http.get(
        f"{platform.url('analytics')}/networks/{network_id}/registrations",
        headers=api.auth("some-other-network"),
    )
    assert report.status_code == 403


async def test_invalid_input_is_422_with_field_errors_and_nothing_is_stored(api, platform, network_id):
    response = await api.http.post(
        f"{platform.url('profiles')}/networks/{network_id}/mentees",
        json={"institution_id": "inst-a", "display_name": "", "email": "not-an-email", "career_stage": "M2"},
        headers=api.auth(network_id),
    )
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"display_name", "email"}
    unknown_stage = await api.register_mentee(network_id, 1, career_stage="M9")
    assert unknown_stage.status_code == 422 and "Unknown career stage" in unknown_stage.text
    # Something valid afterwards is the only thing that ever arrives.
    assert (await api.register_mentee(network_id, 2)).status_code == 201
    await eventually(lambda: api.registrations(network_id), lambda n: n >= 1)
    await stays(lambda: api.registrations(network_id), 1, seconds=1.0)


async def test_a_duplicate_email_in_the_network_is_409_and_changes_nothing(api, network_id):
    first = await api.register_mentee(network_id, 1, email="Same.Person@example.org")
    assert first.status_code == 201
    again = await api.register_mentee(network_id, 2, email="same.person@EXAMPLE.org")
    assert again.status_code == 409
    assert "already registered with same.person@example.org" in again.json()["detail"]
    other_network = await api.register_mentee(f"{network_id}-b", 3, email="same.person@example.org")
    assert other_network.status_code == 201  # unique per network, not globally
    await eventually(lambda: api.registrations(network_id), lambda n: n >= 1)
    await stays(lambda: api.registrations(network_id), 1, seconds=1.0)
