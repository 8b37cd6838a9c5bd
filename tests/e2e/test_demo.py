"""`mentorship demo` against the running platform: months of a program played through the real
APIs, and the analytics service (fed by events alone) telling the same story afterwards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ops.demo import demo_async
from tests.support import eventually


async def test_demo_plays_months_and_analytics_counts_what_was_played(api, platform, network_id):
    urls = {name: platform.url(name) for name in ("profiles", "matching", "analytics")}
    played = await demo_async(urls, private_key_pem=api.platform.jwt_keys.private_pem,
                              network_id=network_id, months=4, size=60, seed=5)

    assert played.runs >= 2 and played.proposals >= 10
    assert played.mentorships > 0 and played.meetings > played.mentorships
    assert len(played.characters) >= 2, played.characters  # not every pair behaves alike
    assert played.feedback > 0

    # Matching holds what the demo did; mentorships started months ago, not today.
    matching = f"{platform.url('matching')}/networks/{network_id}"
    active = (await api.http.get(f"{matching}/mentorships", params={"status": "active",
                                                                     "limit": 500},
                                 headers=api.auth(network_id))).json()["items"]
    assert active
    earliest = min(datetime.fromisoformat(m["started_at"]) for m in active)
    assert earliest < datetime.now(UTC) - timedelta(days=60)

    # Analytics saw every logged meeting, from the events alone.
    first = (played.started - timedelta(days=40)).date().isoformat()
    report = f"{platform.url('analytics')}/networks/{network_id}/reports/engagement"
    params = {"from": first, "to": datetime.now(UTC).date().isoformat()}

    async def engagement():
        response = await api.http.get(report, params=params, headers=api.auth(network_id))
        return response.json()

    body = await eventually(engagement, lambda b: _meetings(b) == played.meetings, timeout=60,
                            what=f"{played.meetings} meetings in the engagement report")
    assert _meetings(body) == played.meetings


def _meetings(body: dict) -> int | None:
    """The meetings of the network total in an engagement report."""
    for key in ("total", "network", "summary"):
        if isinstance(body.get(key), dict) and "meetings" in body[key]:
            return body[key]["meetings"]
    return body.get("meetings")
