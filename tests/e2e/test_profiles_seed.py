"""`mentorship seed` logic against the running platform: a realistic network through the real
API, deterministic for a seed, and harmless to run twice."""

from __future__ import annotations

from ops.seed import PROGRAMS, seed_async


async def test_seed_builds_the_demo_network_and_a_rerun_duplicates_nothing(api, platform,
                                                                           network_id):
    kwargs = dict(private_key_pem=api.platform.jwt_keys.private_pem, network_id=network_id,
                  size=40, seed=3)
    first = await seed_async({"profiles": platform.url("profiles")}, **kwargs)
    assert first.created == len(first.people) == 40
    assert first.mentors > 5 and first.mentees > 5 and first.enrolments >= 40
    assert set(first.programs) == {p.key for p in PROGRAMS}

    base = f"{platform.url('profiles')}/networks/{network_id}"
    institutions = (await api.http.get(f"{base}/institutions", headers=api.auth(network_id))).json()
    assert sorted(i["kind"] for i in institutions["items"]) == ["chapter"] * 3 + ["institution"] * 2
    programs = (await api.http.get(f"{base}/programs", params={"limit": 100},
                                   headers=api.auth(network_id))).json()["items"]
    assert len(programs) == len(PROGRAMS)
    assert {"near-peer", "faculty", "research", "career"} <= {p["type"] for p in programs}
    assert [p["name"] for p in programs if p["institution_id"] is None] == [
        "National career mentoring"]
    assert sum(p["auto_accept"] for p in programs) == 1
    assert sum(p["requires_approval"] for p in programs) == 1

    page = (await api.http.get(f"{base}/people", params={"limit": 100, "role": "mentee"},
                               headers=api.auth(network_id))).json()["items"]
    assert any(p["mentee"]["goals"] for p in page)
    assert all(p["mentee"]["needs"] for p in page if p.get("mentee"))
    mentors = (await api.http.get(f"{base}/people", params={"limit": 100, "role": "mentor"},
                                  headers=api.auth(network_id))).json()["items"]
    assert all(m["mentor"]["time_zone"] and m["mentor"]["specialty"] for m in mentors)

    again = await seed_async(platform.url("profiles"), **kwargs)
    assert again.created == 0
    assert again.people == first.people and again.programs == first.programs
    assert again.requests_pending == first.requests_pending
    everyone = (await api.http.get(f"{base}/people", params={"limit": 100},
                                   headers=api.auth(network_id))).json()["items"]
    assert len(everyone) == 40
    waiting = (await api.http.get(f"{base}/programs/{first.programs['faculty']}/enrolments",
                                  params={"status": "requested"},
                                  headers=api.auth(network_id))).json()["items"]
    assert sorted(e["id"] for e in waiting) == sorted(first.requests_pending)
