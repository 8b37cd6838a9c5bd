"""Roster import through the HTTP API with real tokens: dry run, idempotent apply, scope."""

from __future__ import annotations

import pytest

from tests.e2e.test_people import People
from tests.e2e.test_programs import Org
from tests.e2e.test_profiles_enrolment import published
from tests.support import eventually, finished_import

HEADER = ("Email,First_Name,Last_Name,Institution_ID,Role,Career_Stage,Program_ID,Specialty,"
          "Help_Offered,Capacity,Languages,Time_Zone,Specialty_Interests,Needs,Mentors_Wanted,"
          "Badge Number")


def _csv(*rows: str) -> str:
    return "\ufeff" + "\r\n".join([HEADER, *rows]) + "\r\n"


@pytest.fixture
async def people(api, network_id) -> People:
    org = Org(api, network_id)
    await org.setup("inst-a", "inst-b")
    people = People(api, org)
    await people.setup()
    return people


async def _start(people: People, text: str, headers=None, dry_run: bool = False):
    return await people.api.http.post(
        f"{people.base}/imports", params={"dry_run": str(dry_run).lower()},
        content=text.encode("utf-8"),
        headers={"Content-Type": "text/csv"} | (headers or people.auth()),
    )


async def _import(people: People, text: str, headers=None, dry_run: bool = False):
    """The dry run's report, or the finished job of a real import (or the refusal)."""
    started = await _start(people, text, headers, dry_run)
    return await finished_import(people.api.http, started, headers or people.auth())


async def _get(people: People, person_id: str):
    return await people.api.http.get(f"{people.base}/people/{person_id}", headers=people.auth())


def _roster(people: People) -> str:
    p_a, p_net = people.programs["P_a"], people.programs["P_net"]
    return _csv(
        f"kim@example.org,Kim,Park,inst-a,mentor,PGY-3,{p_a},pediatrics,research;wellbeing,2,"
        "en;ko,America/Chicago,,,,B1",
        f"KIM@example.org,Kim,Park,inst-a,mentee,PGY-3,{p_net},,,,,,cardiology,research,1,B1",
        f"lee@example.org,Lee,Chen,inst-a,mentee,M3,{p_a},,,,,,\"pediatrics;cardiology\","
        "\"residency-applications;research\",2,B2",
        f"sam@example.org,Sam,Odu,inst-b,mentor,fellow,,cardiology,,1,,,,,,B3",
    )


async def test_dry_run_reports_every_invalid_row_and_writes_nothing(people):
    p_a = people.programs["P_a"]
    text = _csv(
        f"ok@example.org,Ok,Person,inst-a,mentee,M2,{p_a},,,,,,,,,",
        "not-an-email,Bad,Email,inst-a,mentee,M2,,,,,,,,,,",
        "x@example.org,,Nofirst,inst-a,mentee,M2,,,,,,,,,,",
        "y@example.org,Y,Y,inst-a,teacher,M2,,,,,,,,,,",
        "z@example.org,Z,Z,inst-a,mentee,M9,,,,,,,,,,",
        "w@example.org,W,W,inst-a,mentor,fellow,,astrology,,,,,,,,",
        "v@example.org,V,V,inst-a,mentor,fellow,,,,lots,,,,,,",
        "u@example.org,U,U,inst-zz,mentee,M2,,,,,,,,,,",
        "t@example.org,T,T,inst-a,mentee,M2,prog-missing,,,,,,,,,",
        "s@example.org,S,S,inst-a,mentee,M2,,,,,,,pediatrics,research,1,,extra",
        "r@example.org,\"R\nMultiline\",R,inst-a,mentor,fellow,,,,,,Mars/Olympus,,,,",
        "ok@example.org,Ok,Different,inst-a,mentee,M2,,,,,,,,,,",
    )
    report = await _import(people, text, dry_run=True)
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["dry_run"] is True and body["rows"] == 12
    assert body["created"] == 1 and body["updated"] == 0 and body["unchanged"] == 0
    reasons = {row["line"]: row["reason"] for row in body["invalid"]}
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14]
    assert "not an email address" in reasons[3]
    assert "first_name is empty" in reasons[4]
    assert "mentor or mentee" in reasons[5]
    assert "Unknown career stage 'M9'" in reasons[6]
    assert "Unknown specialty 'astrology'" in reasons[7]
    assert "whole number" in reasons[8]
    assert "no institution 'inst-zz'" in reasons[9]
    assert "no program 'prog-missing'" in reasons[10]
    assert "more cells than the header" in reasons[11]
    assert "Unknown time zone" in reasons[13]  # the quoted name spans lines 12-13
    assert "differs from line 2" in reasons[14]
    assert "Ok" not in await people.names()


async def test_import_applies_valid_rows_idempotently(people, platform):
    text = _roster(people)
    dry = (await _import(people, text, dry_run=True)).json()
    applied = await _import(people, text)
    assert applied.status_code == 200, applied.text
    report = applied.json()
    assert report["invalid"] == []
    assert (report["created"], report["updated"], report["unchanged"]) == (3, 0, 0)
    assert report["status"] == "done" and report["rows_done"] == report["rows"] == 4
    assert {k: v for k, v in dry.items() if k != "dry_run"} == {
        k: report[k] for k in dry if k != "dry_run"}

    assert "Kim" in await people.names(program=people.programs["P_net"])
    assert "Kim" in await people.names(program=people.programs["P_a"], role="mentor")
    kim = (await people.list(q="kim park"))["items"][0]
    assert kim["roles"] == ["mentor", "mentee"] and kim["email"] == "kim@example.org"
    assert kim["mentor"]["help_offered"] == ["research", "wellbeing"]
    assert kim["mentor"]["capacity"] == 2 and kim["mentor"]["languages"] == ["en", "ko"]
    assert kim["mentee"]["specialty_interests"] == ["cardiology"]
    lee = (await people.list(q="lee chen"))["items"][0]
    assert lee["mentee"]["needs"] == ["residency-applications", "research"]
    events = await published(platform.servers.kafka_bootstrap, kim["id"], "MentorRegistered",
                             "MenteeRegistered", "ProfileUpdated", "PersonEnrolled")
    assert len(events["PersonEnrolled"]) == 2

    trail = (await people.api.http.get(f"{people.base}/audit", params={
        "action": "roster.created"}, headers=people.auth())).json()["items"]
    assert [(e["institution_id"], len(e["people"])) for e in trail] == [("inst-a", 2),
                                                                        ("inst-b", 1)]
    export = (await people.api.http.get(f"{people.base}/people/{kim['id']}/export",
                                        headers=people.auth())).json()
    assert [e["action"] for e in export["audit"]] == ["roster.created"]

    again = (await _import(people, text)).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 3)
    assert again["invalid"] == []
    before = (await _get(people, kim["id"])).json()["version"]
    changed = text.replace(",2,en;ko,", ",3,en;ko,")
    report = (await _import(people, changed)).json()
    assert (report["created"], report["updated"], report["unchanged"]) == (0, 1, 2)
    kim = (await _get(people, kim["id"])).json()
    assert kim["mentor"]["capacity"] == 3 and kim["version"] == before + 1
    # An import never moves people between institutions.
    moved = _csv("lee@example.org,Lee,Chen,inst-b,mentee,M3,,,,,,,,,,")
    report = (await _import(people, moved)).json()
    assert "does not move people" in report["invalid"][0]["reason"]


async def test_coordinators_import_only_into_their_scope(people, api):
    text = _roster(people)
    coordinator = people.coordinator("inst-a")
    report = (await _import(people, text, headers=coordinator)).json()
    # Kim's P_net (network-wide) row is fine for her own institution's coordinator.
    assert report["created"] == 2
    assert [r["line"] for r in report["invalid"]] == [5]
    assert "your own institution" in report["invalid"][0]["reason"]
    assert "Sam" not in await people.names()

    program_coordinator = people.coordinator("inst-b", "P_b", role="program_coordinator")
    p_a, p_b = people.programs["P_a"], people.programs["P_b"]
    report = (await _import(people, _csv(
        f"pc1@example.org,Pc,One,inst-b,mentee,M1,{p_b},,,,,,,,,",
        f"pc2@example.org,Pc,Two,inst-b,mentee,M1,{p_a},,,,,,,,,",
        "pc3@example.org,Pc,Three,inst-b,mentee,M1,,,,,,,,,,",
    ), headers=program_coordinator)).json()
    assert report["created"] == 1
    assert [r["line"] for r in report["invalid"]] == [3, 4]
    assert await people.names(program=p_b) == ["Barbara", "Pc"]

    for headers in (people.as_person("Grace"), people.org.auth(network_id="net-elsewhere")):
        refused = await _import(people, text, headers=headers)
        assert refused.status_code == 403


async def test_unreadable_files_are_refused_as_a_whole(people):
    missing = await _import(people, "email,first_name\nx@example.org,X\n")
    assert missing.status_code == 422 and "last_name" in missing.text
    empty = await _import(people, "")
    assert empty.status_code == 422 and "empty" in empty.text
    latin1 = await people.api.http.post(
        f"{people.base}/imports", content="email,first_name\nj\xe9r\xf4me".encode("latin-1"),
        headers={"Content-Type": "text/csv"} | people.auth(),
    )
    assert latin1.status_code == 422 and "UTF-8" in latin1.text


async def test_an_import_is_a_job_followed_until_its_events_are_published(people):
    p_a = people.programs["P_a"]
    text = _csv(
        f"job1@example.org,Job,One,inst-a,mentee,M2,{p_a},,,,,,,,,",
        "job-bad,Job,Bad,inst-a,mentee,M2,,,,,,,,,,",
        f"job2@example.org,Job,Two,inst-a,mentor,fellow,{p_a},pediatrics,,1,,,,,,",
    )
    started = await _start(people, text)
    assert started.status_code == 202, started.text
    job = started.json()
    assert job["status"] == "running" and job["rows"] == 3 and job["dry_run"] is False
    assert started.headers["Location"] == f"/networks/{people.network_id}/imports/{job['id']}"

    done = (await finished_import(people.api.http, started, people.auth())).json()
    assert done["status"] == "done" and done["id"] == job["id"]
    assert (done["rows_done"], done["created"], done["updated"], done["unchanged"]) == (3, 2, 0, 0)
    assert [(row["line"], row["email"]) for row in done["invalid"]] == [(3, "job-bad")]
    assert "not an email address" in done["invalid"][0]["reason"]
    # Staged with the people, then published: each registered and enrolled, and the mentor's
    # profile (specialty) updated.
    assert done["events_staged"] == 5
    url = str(started.request.url.join(started.headers["Location"]))
    published = await eventually(
        lambda: people.api.http.get(url, headers=people.auth()),
        lambda r: r.json()["events_published"] == done["events_staged"],
        timeout=60, what="the relay to publish the import's events")
    assert published.json()["events_published"] == done["events_staged"]


async def test_only_its_starter_and_network_admins_follow_an_import(people):
    coordinator = people.coordinator("inst-a")
    started = await _start(people, _csv(
        f"own@example.org,Own,Import,inst-a,mentee,M1,{people.programs['P_a']},,,,,,,,,"),
        headers=coordinator)
    assert started.status_code == 202, started.text
    url = str(started.request.url.join(started.headers["Location"]))
    assert (await finished_import(people.api.http, started, coordinator)).json()["created"] == 1
    assert (await people.api.http.get(url, headers=people.auth())).status_code == 200
    other = people.auth(role="institution_coordinator", institution_id="inst-a")  # another sub
    assert (await people.api.http.get(url, headers=other)).status_code == 404
    elsewhere = people.org.auth(network_id="net-elsewhere")
    assert (await people.api.http.get(url, headers=elsewhere)).status_code == 403
    missing = f"{people.base}/imports/import-0000000000000000-00000000"
    assert (await people.api.http.get(missing, headers=people.auth())).status_code == 404
