"""Attack: a `service` token, minted for another network, read a network's people with their
emails, every report and the mentor-list CSV, and created people in a network of its choice.
Service tokens serve service-to-service calls only; no participant or admin route accepts
them, whatever network they name."""

from __future__ import annotations

import pytest

from tests.e2e.test_programs import Org


@pytest.mark.parametrize("token_network", ["other", "same"])
async def test_a_service_token_reaches_no_participant_or_admin_route(api, network_id,
                                                                     token_network):
    org = Org(api, network_id)
    await org.setup("inst-a")
    assert (await api.register_mentee(network_id, 1)).status_code == 201
    service = api.auth(network_id if token_network == "same" else "other", role="service")
    profiles, analytics = api.platform.url("profiles"), api.platform.url("analytics")
    matching, notifications = api.platform.url("matching"), api.platform.url("notifications")
    reads = [
        f"{profiles}/networks/{network_id}/people",
        f"{profiles}/networks/{network_id}/audit",
        f"{analytics}/networks/{network_id}/registrations",
        f"{analytics}/networks/{network_id}/reports/summary",
        f"{analytics}/networks/{network_id}/reports/mentor-list?format=csv",
        f"{matching}/networks/{network_id}/pool/mentees",
        f"{matching}/networks/{network_id}/mentorships",
        f"{notifications}/networks/{network_id}/deliveries",
    ]
    for url in reads:
        response = await api.http.get(url, headers=service)
        assert response.status_code == 403, (url, response.status_code, response.text[:200])
        assert "@example.org" not in response.text
    created = await api.http.post(
        f"{profiles}/networks/brand-new-{network_id}/mentees", headers=service,
        json={"institution_id": "inst-a", "display_name": "Planted", "email": "p@example.org",
              "career_stage": "M1"})
    assert created.status_code == 403
    institution = await api.http.post(f"{profiles}/networks/{network_id}/institutions",
                                      headers=service, json={"id": "inst-x", "name": "X"})
    assert institution.status_code == 403
