"""Attack (information leak): a 401 body echoed the validation library's internals
(`1 validation error for Principal ...`). A 401 says what the caller can act on, nothing more."""

from __future__ import annotations

import time

import jwt
import pytest

INTERNALS = ("validation error", "pydantic", "Input should be", "For further information",
             "Traceback", "KeyError")


def _signed(api, **claims) -> str:
    base = {"sub": "someone", "iss": "mentorship-local", "aud": "mentorship",
            "exp": int(time.time()) + 300}
    return jwt.encode({**base, **claims}, api.platform.jwt_keys.private_pem, algorithm="RS256")


@pytest.mark.parametrize(("claims", "says"), [
    ({"role": "dean", "network_id": "n1"}, "role"),
    ({"role": "network_admin", "network_id": 42}, "network_id"),
    ({"role": "mentee"}, "network_id"),
    ({"role": "network_admin", "network_id": "n1", "program_ids": "p1"}, "program_ids"),
    ({"network_id": "n1"}, "role"),
])
@pytest.mark.parametrize("service", ["profiles", "matching", "notifications", "analytics"])
async def test_a_refused_token_is_told_why_in_words(api, service, claims, says):
    path = {"profiles": "/networks/n1/people", "matching": "/networks/n1/pool/mentees",
            "notifications": "/me/notifications", "analytics": "/networks/n1/registrations"}[service]
    response = await api.http.get(api.platform.url(service) + path,
                                  headers={"Authorization": f"Bearer {_signed(api, **claims)}"})
    assert response.status_code == 401, response.text
    detail = response.json()["detail"]
    assert says in detail and detail.startswith("The bearer token is not valid")
    assert not any(word in detail for word in INTERNALS), detail
    assert response.headers["www-authenticate"] == "Bearer"
