"""Demo data: a realistic mentorship network, created through the real profiles HTTP API.

One network holds a national association's three chapters and two institutions of a health
system; programs of several types (near-peer, faculty, research, specialty, leadership and a
network-wide career program; one auto-accepts proposals, one requires approval); a few hundred
mentors and mentees with plausible stages, specialties, help offered, needs, goals, capacity,
languages and time zones; and their enrolments, a few of them as requests waiting for (or
given) a coordinator's approval.

Everything goes through the public API with locally signed tokens (as `mentorship token`
does): institutions and programs by POST, people by roster import (CSV, idempotent by email),
mentees' goals by PATCH with If-Match, self-registration by the person's own token. The same
`seed` (the random generator's seed) gives the same people; re-running creates nothing twice
(institutions that exist are 409, programs are found by name, the import reports people
unchanged, goals already set are left alone, requests already made are 409).

`seed(...)` / `seed_async(...)` return a `SeedResult` for other code (the analytics demo).
"""

from __future__ import annotations

import asyncio
import csv
import io
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from shared.auth import Role, issue_token

PARALLEL = 8  # requests in flight: the services keep up, the cores stay busy

INSTITUTIONS = (
    ("chapter-northeast", "National Association of Medical Mentors: Northeast Chapter", "chapter"),
    ("chapter-midwest", "National Association of Medical Mentors: Midwest Chapter", "chapter"),
    ("chapter-west", "National Association of Medical Mentors: West Chapter", "chapter"),
    ("riverside-university-hospital", "Riverside Health: University Hospital", "institution"),
    ("riverside-medical-school", "Riverside Health: School of Medicine", "institution"),
)
TIME_ZONES = {
    "chapter-northeast": "America/New_York", "chapter-midwest": "America/Chicago",
    "chapter-west": "America/Los_Angeles", "riverside-university-hospital": "America/Denver",
    "riverside-medical-school": "America/Denver",
}


@dataclass(frozen=True)
class ProgramSpec:
    key: str
    name: str
    type: str
    institution_id: str | None  # None: network-wide
    mentors: tuple[str, ...]  # career stages that mentor in it
    mentees: tuple[str, ...]  # career stages mentored in it
    options: dict[str, Any] = field(default_factory=dict)


FACULTY = ("faculty-instructor", "faculty-assistant-professor", "faculty-associate-professor",
           "faculty-professor")
STUDENTS = ("M1", "M2", "M3", "M4")
RESIDENTS = ("PGY-1", "PGY-2", "PGY-3", "PGY-4")
SENIOR_RESIDENTS = ("PGY-3", "PGY-4", "PGY-5")

PROGRAMS = (
    ProgramSpec("near-peer", "Residents mentoring students", "near-peer",
                "riverside-university-hospital", SENIOR_RESIDENTS, STUDENTS,
                {"max_mentors_per_mentee": 1, "cadence_days": 14}),
    ProgramSpec("faculty", "Junior faculty development", "faculty", "riverside-medical-school",
                ("faculty-associate-professor", "faculty-professor"),
                ("faculty-instructor", "faculty-assistant-professor"),
                {"requires_approval": True, "cadence_days": 30, "reassessment_days": 120}),
    ProgramSpec("research", "Research mentorship", "research", "riverside-university-hospital",
                FACULTY + ("fellow",), RESIDENTS + ("M3", "M4"),
                {"ranked_preferences": True, "max_mentors_per_mentee": 2, "cadence_days": 21,
                 "cross_institution": True}),
    ProgramSpec("network-career", "National career mentoring", "career", None,
                FACULTY + ("practising-physician", "fellow"), STUDENTS + RESIDENTS,
                {"max_mentors_per_mentee": 3, "cadence_days": 30}),
    ProgramSpec("wellbeing", "Wellbeing peer circles", "peer", "chapter-midwest",
                SENIOR_RESIDENTS + ("fellow",), RESIDENTS,
                {"auto_accept": True, "cadence_days": 14, "reassessment_days": 60}),
    ProgramSpec("surgery", "Surgery pathway", "specialty-specific", "chapter-northeast",
                FACULTY + ("practising-physician",), STUDENTS + RESIDENTS,
                {"cadence_days": 30}),
    ProgramSpec("leadership", "Emerging leaders", "leadership", "chapter-west",
                FACULTY + ("practising-physician",), ("fellow",) + SENIOR_RESIDENTS,
                {"cadence_days": 45}),
)

FIRST = ("Amara Ben Chloe Dmitri Elena Farid Grace Hiro Imani Jonas Keiko Luis Maya Nikhil "
         "Olga Priya Quentin Rosa Samir Tara Uma Victor Wen Xavier Yara Zane Aisha Bruno "
         "Carmen Diego Esther Felix Gita Hassan Ines Jamal Kofi Lena Mateo Nadia Omar Pilar "
         "Rahul Sofia Tomas Valentina Yusuf Zara").split()
LAST = ("Abara Bianchi Chen Dubois Eriksen Fernandes Gupta Haddad Ibrahim Jensen Kim Lopez "
        "Mensah Nakamura Okafor Petrov Quinn Rossi Singh Tanaka Usman Varga Wang Xu Yilmaz "
        "Zhou Adeyemi Brennan Castillo Demir Evans Fischer Garcia Hughes Iyer Johansson "
        "Kowalski Lindqvist Moreau Novak O'Brien Park Reyes Santos Torres Walsh").split()
SPECIALTIES = ("internal-medicine", "pediatrics", "general-surgery", "family-medicine",
               "emergency-medicine", "psychiatry", "cardiology", "obstetrics-gynecology",
               "neurology", "radiology", "anesthesiology", "oncology", "orthopaedic-surgery",
               "dermatology", "public-health")
SUBSPECIALTIES = {
    "internal-medicine": ("hospital medicine", "infectious diseases", "nephrology"),
    "pediatrics": ("neonatology", "pediatric cardiology", "adolescent medicine"),
    "general-surgery": ("trauma surgery", "surgical oncology", "minimally invasive surgery"),
    "cardiology": ("interventional cardiology", "electrophysiology", "heart failure"),
    "psychiatry": ("child and adolescent psychiatry", "addiction psychiatry"),
    "emergency-medicine": ("toxicology", "ultrasound"),
}
HELP = ("research", "career-planning", "residency-applications", "clinical-skills",
        "academic-exam-strategy", "wellbeing", "leadership", "networking", "work-life-balance")
LANGUAGES = ("en",) * 6 + ("es", "es", "fr", "zh", "hi", "ar", "pt", "ko", "tl")
GOALS = {
    "research": ("Submit a first-author abstract to a national meeting",
                 "Design a quality-improvement project with measurable outcomes"),
    "residency-applications": ("Build a balanced residency application list",
                               "Get feedback on my personal statement"),
    "academic-exam-strategy": ("Make a study plan for Step 2 CK", "Pass the in-training exam"),
    "career-planning": ("Decide between fellowship and hospitalist work",
                        "Map a path to an academic appointment"),
    "clinical-skills": ("Get comfortable leading family meetings",
                        "Improve procedural confidence on night shifts"),
    "wellbeing": ("Build a sustainable sleep and exercise routine",
                  "Find strategies to manage burnout on wards"),
    "leadership": ("Lead a resident committee project", "Learn to give structured feedback"),
    "networking": ("Meet three people working in my target specialty",
                   "Present at a chapter meeting"),
    "work-life-balance": ("Plan parental leave around training milestones",
                          "Protect one evening a week for family"),
}
HEADER = ("email", "first_name", "last_name", "institution_id", "role", "career_stage",
          "program_id", "specialty", "subspecialty", "help_offered", "capacity",
          "training_completed", "languages", "meeting_modes", "time_zone",
          "specialty_interests", "needs", "mentors_wanted", "preferred_language",
          "preferred_mode")


@dataclass
class SeedResult:
    network_id: str
    institutions: list[str]
    programs: dict[str, str]  # program key (see PROGRAMS) -> program id
    people: dict[str, str]  # email -> person id
    mentors: int
    mentees: int
    enrolments: int
    created: int  # people created by this run (0 when re-run)
    requests_pending: list[str] = field(default_factory=list)  # enrolment ids
    requests_approved: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f"network {self.network_id}: {len(self.institutions)} institutions/chapters, "
            f"{len(self.programs)} programs, {len(self.people)} people "
            f"({self.mentors} mentor roles, {self.mentees} mentee roles), "
            f"{self.enrolments} enrolments; {self.created} people created by this run; "
            f"{len(self.requests_pending)} enrolment requests pending, "
            f"{len(self.requests_approved)} approved",
            "institutions: " + ", ".join(self.institutions),
        ]
        lines += [f"program {key}: {pid}" for key, pid in self.programs.items()]
        return "\n".join(lines)


@dataclass(frozen=True)
class SeedPerson:
    email: str
    first_name: str
    last_name: str
    institution_id: str
    career_stage: str
    rows: tuple[dict[str, str], ...]  # one per (role, program)
    goals: tuple[dict[str, str], ...] = ()


def _stages_roles(stage: str) -> tuple[bool, bool]:
    """(may mentor, may be mentored) in some program, by career stage."""
    mentors = any(stage in p.mentors for p in PROGRAMS)
    mentees = any(stage in p.mentees for p in PROGRAMS)
    return mentors, mentees


def people_plan(size: int, rng: random.Random, today: date) -> list[SeedPerson]:
    """`size` people, each with their roster rows (deterministic for a given generator)."""
    stages = (STUDENTS * 3 + RESIDENTS * 2 + ("PGY-5", "fellow", "fellow")
              + FACULTY * 2 + ("practising-physician",) * 2)
    institutions = [i for i, _, _ in INSTITUTIONS]
    planned = []
    for n in range(size):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        email = f"{first}.{last}.{n}@demo.example.org".lower().replace("'", "")
        stage = rng.choice(stages)
        institution = rng.choice(institutions)
        specialty = rng.choice(SPECIALTIES)
        rows, goals = [], []
        tz = TIME_ZONES[institution]
        for program in PROGRAMS:
            reachable = program.institution_id in (None, institution) or (
                program.options.get("cross_institution") and rng.random() < 0.3
            )
            if not reachable:
                continue
            for role, stages_in in (("mentor", program.mentors), ("mentee", program.mentees)):
                if stage not in stages_in or rng.random() < 0.35:
                    continue
                row = {"role": role, "program_id": program.key}
                if role == "mentor":
                    row |= {
                        "specialty": specialty,
                        "subspecialty": rng.choice(SUBSPECIALTIES.get(specialty, ("",))),
                        "help_offered": ";".join(rng.sample(HELP, rng.randint(2, 4))),
                        "capacity": str(rng.choice((1, 1, 2, 2, 3, 4))),
                        "training_completed": rng.choice(("yes", "yes", "no")),
                        "languages": ";".join(dict.fromkeys(["en", rng.choice(LANGUAGES)])),
                        "meeting_modes": rng.choice(("virtual", "in-person;virtual",
                                                     "in-person")),
                        "time_zone": tz,
                    }
                else:
                    needs = rng.sample(HELP, rng.randint(1, 3))
                    wanted = rng.choice((1, 1, 1, 2)) if program.options.get(
                        "max_mentors_per_mentee", 1) > 1 else 1
                    row |= {
                        "specialty_interests": ";".join(
                            dict.fromkeys([specialty, rng.choice(SPECIALTIES)])),
                        "needs": ";".join(needs),
                        "mentors_wanted": str(wanted),
                        "preferred_language": rng.choice(("en", "en", "en", "es")),
                        "preferred_mode": rng.choice(("virtual", "in-person")),
                    }
                    if not goals:
                        target = today + timedelta(days=rng.randint(60, 400))
                        goals = [{"text": rng.choice(GOALS[need]), "category": need,
                                  "target_date": str(target)} for need in needs[:2]]
                rows.append(row)
                break  # one role per program
        if not rows:  # everyone takes part somewhere: the network-wide program, by stage
            role = "mentor" if stage in FACULTY + ("practising-physician",) else "mentee"
            rows.append({"role": role, "program_id": "network-career",
                         **({"specialty": specialty, "help_offered": "career-planning",
                             "capacity": "1", "time_zone": tz} if role == "mentor"
                            else {"specialty_interests": specialty, "needs": "career-planning"})})
        # One role's profile is the same on every row of it (the import merges rows).
        by_role: dict[str, dict[str, str]] = {}
        for row in rows:
            first_row = by_role.setdefault(row["role"], row)
            for k, v in first_row.items():
                if k not in ("program_id",):
                    row[k] = v
        planned.append(SeedPerson(email, first, last, institution, stage, tuple(rows),
                                  tuple(goals) if "mentee" in by_role else ()))
    return planned


def roster_csv(planned: list[SeedPerson], program_ids: Mapping[str, str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(HEADER), restval="")
    writer.writeheader()
    for person in planned:
        for row in person.rows:
            writer.writerow({
                "email": person.email, "first_name": person.first_name,
                "last_name": person.last_name, "institution_id": person.institution_id,
                "career_stage": person.career_stage,
                **row, "program_id": program_ids.get(row["program_id"], ""),
            })
    return out.getvalue()


def _program_body(spec: ProgramSpec, today: date) -> dict[str, Any]:
    opens = today - timedelta(days=14)
    start = today + timedelta(days=45)
    return {
        "institution_id": spec.institution_id,
        "name": spec.name,
        "type": spec.type,
        "cohort_start": str(start),
        "cohort_end": str(start + timedelta(days=300)),
        "enrolment_opens": str(opens),
        "enrolment_closes": str(today + timedelta(days=30)),
        "coordinator_emails": [f"{spec.key}-coordinator@demo.example.org"],
        **spec.options,
    }


class SeedError(RuntimeError):
    """The API refused something the seed needs; the message says what."""


class _Client:
    def __init__(self, http: httpx.AsyncClient, base: str, token: Callable[..., str]) -> None:
        self.http, self.base, self.token = http, base, token
        self._tokens: dict[tuple[Any, ...], str] = {}
        self.gate = asyncio.Semaphore(PARALLEL)

    def auth(self, role: Role = Role.NETWORK_ADMIN, **scope: Any) -> dict[str, str]:
        """Signed once per role and scope (an RS256 signature costs more than a request)."""
        key = (role, *sorted(scope.items()))
        if key not in self._tokens:
            self._tokens[key] = self.token(role, **scope)
        return {"Authorization": f"Bearer {self._tokens[key]}"}

    async def each(self, items: Any, step: Callable[[Any], Any]) -> None:
        """`step` for every item, `PARALLEL` at a time."""

        async def gated(item: Any) -> None:
            async with self.gate:
                await step(item)

        await asyncio.gather(*(gated(item) for item in items))

    async def call(self, method: str, path: str, ok: tuple[int, ...] = (200, 201),
                   **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("headers", self.auth())
        response = await self.http.request(method, self.base + path, **kwargs)
        if response.status_code not in ok:
            raise SeedError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response


async def _import(client: _Client, text: str, effective_on: date | None) -> dict[str, Any]:
    """Import the roster and follow the job until it is done; its final report."""
    headers = client.auth()
    started = await client.call(
        "POST", "/imports", ok=(200, 202), content=text.encode(),
        params={"effective_on": effective_on.isoformat()} if effective_on else None,
        headers={**headers, "Content-Type": "text/csv"})
    job = started.json()
    while job.get("status") == "running":
        await asyncio.sleep(0.1)
        job = (await client.call("GET", f"/imports/{job['id']}", headers=headers)).json()
    if job.get("status", "done") != "done":
        raise SeedError(f"the roster import {job['status']}: {job.get('error')}")
    return job


async def _programs(client: _Client, today: date) -> dict[str, str]:
    existing: dict[tuple[str | None, str], str] = {}
    cursor = None
    while True:
        page = (await client.call("GET", "/programs", params={
            "limit": 100, **({"cursor": cursor} if cursor else {})})).json()
        existing |= {(p["institution_id"], p["name"]): p["id"] for p in page["items"]}
        cursor = page["next_cursor"]
        if cursor is None:
            break
    ids = {}
    for spec in PROGRAMS:
        found = existing.get((spec.institution_id, spec.name))
        if found is None:
            created = await client.call("POST", "/programs", json=_program_body(spec, today))
            found = created.json()["id"]
        ids[spec.key] = found
    return ids


async def _everyone(client: _Client) -> list[dict[str, Any]]:
    people, cursor = [], None
    while True:
        page = (await client.call("GET", "/people", params={
            "limit": 100, **({"cursor": cursor} if cursor else {})})).json()
        people += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return people


async def seed_async(
    base_urls: Mapping[str, str] | str,
    *,
    private_key_pem: bytes,
    network_id: str = "demo",
    size: int = 300,
    seed: int = 7,
    issuer: str = "mentorship-local",
    audience: str = "mentorship",
    echo: Callable[[str], None] = lambda _: None,
    effective_on: date | None = None,
) -> SeedResult:
    """Create (or complete) the demo network through the profiles API at `base_urls`
    (a URL, or a mapping with a "profiles" entry)."""
    base = base_urls if isinstance(base_urls, str) else base_urls["profiles"]
    rng = random.Random(seed)
    today = datetime.now(UTC).date()

    def token(role: Role, **scope: Any) -> str:
        return issue_token(private_key_pem, role=role, network_id=network_id, issuer=issuer,
                           audience=audience, subject=f"seed-{role.value}", **scope)

    async with httpx.AsyncClient(timeout=120) as http:
        client = _Client(http, f"{base.rstrip('/')}/networks/{network_id}", token)
        for institution_id, name, kind in INSTITUTIONS:
            await client.call("POST", "/institutions", ok=(201, 409),
                              json={"id": institution_id, "name": name, "kind": kind})
        echo(f"institutions: {len(INSTITUTIONS)}")
        program_ids = await _programs(client, effective_on or today)
        echo(f"programs: {len(program_ids)}")

        planned = people_plan(size, rng, today)
        # The approval program is joined by request (below), not by import.
        faculty = program_ids["faculty"]
        requesters = [p for p in planned
                      if any(r["program_id"] == "faculty" and r["role"] == "mentee"
                             for r in p.rows)]
        text = roster_csv(
            [SeedPerson(p.email, p.first_name, p.last_name, p.institution_id, p.career_stage,
                        tuple(r for r in p.rows
                              if not (r["program_id"] == "faculty" and r["role"] == "mentee"))
                        or ({**p.rows[0], "program_id": ""},), p.goals)
             for p in planned],
            program_ids,
        )
        report = await _import(client, text, effective_on)
        if report["invalid"]:
            raise SeedError(f"the roster had invalid rows: {report['invalid'][:3]}")
        echo(f"people: {report['created']} created, {report['updated']} updated, "
             f"{report['unchanged']} unchanged")

        everyone = {p["email"]: p for p in await _everyone(client)}
        by_email = {p.email: p for p in planned}

        async def set_goals(person: dict[str, Any]) -> None:
            wanted = by_email.get(person["email"])
            if wanted is None or not wanted.goals or person.get("mentee") is None:
                return
            if person["mentee"].get("goals"):
                return  # set by an earlier run: left alone
            await client.call(
                "PATCH", f"/people/{person['id']}/profile",
                json={"mentee": {"goals": list(wanted.goals)}},
                headers={**client.auth(), "If-Match": f'"{person["version"]}"'},
            )

        await client.each(everyone.values(), set_goals)

        pending, approved = [], []

        async def request(numbered: tuple[int, SeedPerson]) -> None:
            n, person = numbered
            person_id = everyone[person.email]["id"]
            own = client.auth(Role.MENTEE, person_id=person_id,
                              institution_id=person.institution_id)
            await client.call(
                "POST", f"/programs/{faculty}/enrolments", ok=(201, 409), headers=own,
                json={"person_id": person_id, "role": "mentee"})
            key = f"{person_id}:{faculty}:mentee"
            if n % 3 == 2:
                pending.append(key)
                return
            await client.call("POST", f"/programs/{faculty}/enrolments/{key}/approve",
                              ok=(200, 409))
            approved.append(key)

        await client.each(list(enumerate(requesters)), request)
        pending.sort()
        approved.sort()
        everyone = {p["email"]: p for p in await _everyone(client)}

    people = {p.email: everyone[p.email]["id"] for p in planned if p.email in everyone}
    mine = [everyone[e] for e in people]
    return SeedResult(
        network_id=network_id,
        institutions=[i for i, _, _ in INSTITUTIONS],
        programs=program_ids,
        people=people,
        mentors=sum("mentor" in p["roles"] for p in mine),
        mentees=sum("mentee" in p["roles"] for p in mine),
        enrolments=sum(len(p["program_ids"]) for p in mine),
        created=report["created"],
        requests_pending=pending,
        requests_approved=approved,
    )


def seed(base_urls: Mapping[str, str] | str, **kwargs: Any) -> SeedResult:
    """`seed_async` for callers without an event loop (the CLI, scripts)."""
    return asyncio.run(seed_async(base_urls, **kwargs))
