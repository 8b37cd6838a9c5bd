"""Analytics reports over HTTP, from events published to the platform's broker.

The hand-computed scenario (tests/unit/test_analytics_measures.py) is published as profiles
and matching would publish it; the running analytics service must report exactly what the
domain computes from the same events, to each role only within its scope, as JSON and CSV.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from services.analytics.measures import Period, Report, Scope
from services.analytics.projection import Projection
from services.analytics.scenario import Scenario, hand_computed
from shared.events.registry import spec_for
from tests.e2e.conftest import Api, Platform
from tests.support import eventually

PERIOD = {"from": "2026-01-05", "to": "2026-02-01"}


# Analytics alone, on servers of its own (these fixtures override the session's platform in
# the analytics modules): the scenarios' registrations must not reach the shared platform's
# notifications, where hundreds of welcome emails would delay the email tests.
@pytest.fixture(scope="module")
def platform(infra, jwt_keys, tmp_path_factory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("analytics-e2e")
    servers = type(infra)(root / "infra")
    running = Platform(servers, jwt_keys, root / "platform")
    try:
        servers.start_mongo()
        servers.start_kafka()
        running.start("analytics")
        yield running
    finally:
        running.close()
        servers.close()


@pytest.fixture
async def api(platform) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield Api(platform, client)


async def publish(bootstrap: str, scenario: Scenario) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        for event in scenario.cloud_events():
            await producer.send(spec_for(event.type).topic, event.to_bytes(), key=event.subject.encode())
        await producer.flush()
    finally:
        await producer.stop()


def expected(scenario: Scenario, scope: Scope) -> dict:
    projection = Projection()
    for name, payload in scenario.events:
        projection.apply(name, payload)
    from datetime import date

    return Report(projection, scope, Period.of_days(date(2026, 1, 5), date(2026, 2, 1))).summary()


@pytest.fixture
async def story(api, platform):
    """The scenario under a fresh network, applied by the running analytics service."""
    suffix = f"-{uuid.uuid4().hex[:6]}"
    network = f"net{suffix}"
    scenario = hand_computed(network).suffixed(suffix)
    await publish(platform.servers.kafka_bootstrap, scenario)
    want = expected(scenario, Scope("program", network, f"P1{suffix}"))

    async def summary():
        r = await api.http.get(
            f"{platform.url('analytics')}/networks/{network}/reports/summary",
            params={"scope": "program", "id": f"P1{suffix}", **PERIOD}, headers=api.auth(network),
        )
        return r.json().get("total")

    await eventually(summary, lambda got: got == want, timeout=60, what="the hand-computed summary")
    return network, suffix


async def get(api, platform, network, report="summary", token=None, **params):
    headers = {"Authorization": f"Bearer {token}"} if token else api.auth(network)
    return await api.http.get(
        f"{platform.url('analytics')}/networks/{network}/reports/{report}",
        params={**PERIOD, **params}, headers=headers,
    )


async def test_numbers_over_http_are_the_hand_computed_ones(api, platform, story):
    network, s = story
    body = (await get(api, platform, network, scope="program", id=f"P1{s}")).json()
    assert body["scope"] == {"kind": "program", "id": f"P1{s}", "label": "Research mentoring"}
    total = body["total"]
    assert (total["matching"]["match_rate_pct"], total["matching"]["time_to_match_days_median"]) == (75.0, 5.5)
    assert (total["engagement"]["stalled"], total["engagement"]["never_met"]) == (1, 1)
    assert total["outcomes"]["nps"]["score"] == 33
    stalled = (await get(api, platform, network, "stalled", scope="program", id=f"P1{s}")).json()
    assert [p["mentorship_id"] for p in stalled["pairs"]] == [f"X3{s}", f"X2{s}"]
    series = (await get(api, platform, network, "series", scope="program", id=f"P1{s}")).json()
    assert [w["meetings"] for w in series["weeks"]] == [1, 3, 0, 0]


async def test_network_admin_sees_chapters_side_by_side_with_the_total(api, platform, story):
    network, s = story
    body = (await get(api, platform, network, scope="network")).json()
    chapters = {c["institution_id"]: c for c in body["chapters"]}
    assert set(chapters) == {f"A{s}", f"B{s}"}
    assert chapters[f"A{s}"]["label"] == "Alpha Medical School"
    # Mentees E1, E2, E4 at A and E3, E5 at B: the chapters add up to the network.
    assert (chapters[f"A{s}"]["enrolment"]["mentees"], chapters[f"B{s}"]["enrolment"]["mentees"]) == (3, 2)
    assert body["total"]["enrolment"]["mentees"] == 5
    assert (chapters[f"A{s}"]["engagement"]["meetings"] + chapters[f"B{s}"]["engagement"]["meetings"]
            == body["total"]["engagement"]["meetings"] == 4)


async def test_each_role_sees_only_its_scope(api, platform, story):
    network, s = story
    token = api.token
    inst_a = token("institution_coordinator", network, institution_id=f"A{s}")
    inst_b = token("institution_coordinator", network, institution_id=f"B{s}")
    prog = token("program_coordinator", network, program_ids=[f"P1{s}"])
    other_prog = token("program_coordinator", network, program_ids=["elsewhere"])
    cases = [
        (inst_a, {"scope": "institution", "id": f"A{s}"}, 200),
        (inst_a, {"scope": "program", "id": f"P1{s}"}, 200),  # a program of institution A
        (inst_a, {"scope": "institution", "id": f"B{s}"}, 403),
        (inst_a, {"scope": "network"}, 403),
        (inst_b, {"scope": "program", "id": f"P1{s}"}, 403),
        (prog, {"scope": "program", "id": f"P1{s}"}, 200),
        (prog, {"scope": "institution", "id": f"A{s}"}, 403),
        (prog, {"scope": "network"}, 403),
        (other_prog, {"scope": "program", "id": f"P1{s}"}, 403),
        (token("mentor", network, person_id=f"M1{s}"), {"scope": "program", "id": f"P1{s}"}, 403),
        (token("mentee", network, person_id=f"E1{s}"), {}, 403),
        (token("network_admin", "another-network"), {"scope": "network"}, 403),
    ]
    for bearer, params, status in cases:
        for report in ("summary", "stalled", "mentor-list"):
            r = await get(api, platform, network, report, token=bearer, **params)
            assert r.status_code == status, (report, params, r.text)
    # Without a scope, each coordinator gets their own.
    assert (await get(api, platform, network, token=inst_a)).json()["scope"]["id"] == f"A{s}"
    assert (await get(api, platform, network, token=prog)).json()["scope"]["id"] == f"P1{s}"
    scopes = await api.http.get(f"{platform.url('analytics')}/networks/{network}/report-scopes",
                                headers={"Authorization": f"Bearer {inst_a}"})
    assert [(x["kind"], x["id"]) for x in scopes.json()["scopes"]] == [("institution", f"A{s}"), ("program", f"P1{s}")]
    assert (await api.http.get(f"{platform.url('analytics')}/networks/{network}/reports/summary")).status_code == 401


async def test_public_recognition_names_only_mentors_who_opted_in(api, platform, story):
    network, s = story
    admin = (await get(api, platform, network, "mentors", scope="program", id=f"P1{s}")).json()
    assert [r["mentor_id"] for r in admin["total"]["recognised"]] == [f"M1{s}"]
    r = await api.http.get(f"{platform.url('analytics')}/networks/{network}/recognition", params=PERIOD,
                           headers=api.auth(network, "mentee", person_id=f"E1{s}"))
    assert r.status_code == 200
    assert [m["mentor_id"] for m in r.json()["mentors"]] == [f"M1{s}"]  # M1 opted in


async def test_csv_exports_carry_the_json_numbers(api, platform, story):
    network, s = story
    r = await get(api, platform, network, scope="network", format="csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["unit"] for row in rows] == ["Network total", "Alpha Medical School", "Beta Chapter"]
    assert rows[0]["enrolment.mentees"] == "5" and rows[0]["matching.match_rate_pct"] == "60.0"
    stalled = list(csv.DictReader(io.StringIO(
        (await get(api, platform, network, "stalled", scope="program", id=f"P1{s}", format="csv")).text)))
    assert [(row["mentorship_id"], row["status"]) for row in stalled] == [(f"X3{s}", "never_met"), (f"X2{s}", "stalled")]
    weeks = list(csv.DictReader(io.StringIO(
        (await get(api, platform, network, "series", scope="program", id=f"P1{s}", format="csv")).text)))
    assert [row["open_mentorships"] for row in weeks] == ["2", "4", "3", "3"]


@pytest.mark.parametrize("params, message", [
    ({"scope": "program"}, "needs its id"),
    ({"from": "2026-03-01", "to": "2026-02-01"}, "must not be after"),
    ({"from": "2020-01-01", "to": "2026-02-01"}, "at most three years"),
    ({"from": "yesterday"}, "from"),
    ({"scope": "galaxy"}, "scope"),
    ({"format": "xlsx"}, "format"),
])
async def test_bad_requests_say_what_is_wrong(api, platform, network_id, params, message):
    r = await api.http.get(f"{platform.url('analytics')}/networks/{network_id}/reports/summary",
                           params={**PERIOD, **params}, headers=api.auth(network_id))
    assert r.status_code == 422 and message in r.text, r.text
    unknown = await api.http.get(f"{platform.url('analytics')}/networks/{network_id}/reports/nonsense",
                                 headers=api.auth(network_id))
    assert unknown.status_code == 422
