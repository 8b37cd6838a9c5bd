"""`mentorship demo`: several months of mentoring played in seconds through the real APIs.

On top of `mentorship seed` (the network, its programs and people, enrolled months ago), the
demo runs the programs' matching, publishes the runs, lets both sides accept (a few decline and
are rematched from their suggestions), and then plays each pair's months with a character of its
own, the way programs see them: pairs that thrive and meet at the agreed rhythm, pairs that fade
after a strong start, pairs that never hold a first meeting, pairs that end early because the fit
was wrong (the mentee is rematched), and pairs that complete. Meetings fall at irregular
intervals around the program's cadence; check-ins come at the reassessment points; goals make
progress and milestones are celebrated.

Every step is an HTTP request to the profiles and matching services, backdated with the API's
`at` fields (the same fields a program uses to backfill history kept in spreadsheets), so the
events and the analytics dashboard afterwards tell the story of those months. The same seed
gives the same story.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from ops.seed import SeedResult, seed_async
from shared.auth import Role, issue_token

DEMO_PROGRAMS = ("near-peer", "network-career", "wellbeing", "surgery", "research", "leadership")
TOPICS = {
    "research": ["study design", "abstract draft", "statistics", "IRB application"],
    "career-planning": ["career paths", "CV review", "fellowship options"],
    "residency-applications": ["personal statement", "program list", "interview practice"],
    "clinical-skills": ["case review", "procedures", "presentations on rounds"],
    "academic-exam-strategy": ["study schedule", "question banks", "exam anxiety"],
    "wellbeing": ["sleep and rest", "burnout", "support at home"],
    "leadership": ["running a meeting", "giving feedback", "committee project"],
    "networking": ["conference plans", "introductions", "chapter events"],
    "work-life-balance": ["protected time", "family planning", "boundaries"],
}
MILESTONES = ("Abstract accepted at a national meeting", "Personal statement finished",
              "First procedure led independently", "Presented at grand rounds",
              "Passed the in-training exam", "Joined a hospital committee",
              "Study plan kept for eight weeks", "Residency application submitted")

# How pairs behave, with the share of pairs that behave so.
CHARACTERS = (("thriving", 0.45), ("fading", 0.2), ("silent", 0.1), ("no_fit", 0.1),
              ("completed", 0.15))


@dataclass
class DemoResult:
    seed: SeedResult
    started: datetime
    runs: int = 0
    proposals: int = 0
    declined: int = 0
    rematched: int = 0
    mentorships: int = 0
    meetings: int = 0
    feedback: int = 0
    milestones: int = 0
    characters: Counter[str] = field(default_factory=Counter)
    endings: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        characters = ", ".join(f"{n} {k}" for k, n in sorted(self.characters.items()))
        endings = ", ".join(f"{n} {k}" for k, n in sorted(self.endings.items())) or "none"
        return "\n".join([
            self.seed.summary(),
            f"played from {self.started:%Y-%m-%d}: {self.runs} matching runs published, "
            f"{self.proposals} proposals, {self.declined} declined, {self.rematched} rematched",
            f"{self.mentorships} mentorships ({characters}); {self.meetings} meetings logged, "
            f"{self.feedback} check-ins, {self.milestones} milestones; endings: {endings}",
        ])


class DemoError(RuntimeError):
    """A service refused a step of the demo; the message says which and why."""


class _Api:
    """HTTP calls with locally signed tokens; concurrency bounded so the services keep up."""

    def __init__(self, http: httpx.AsyncClient, urls: Mapping[str, str], network_id: str,
                 token: Callable[..., str], parallel: int) -> None:
        self.http, self.urls, self.network_id, self.token = http, urls, network_id, token
        self.gate = asyncio.Semaphore(parallel)
        self.slowest: tuple[float, str] = (0.0, "")
        self.retries = 0
        self._tokens: dict[tuple[Any, ...], str] = {}

    def _token(self, scope: dict[str, Any]) -> str:
        """Signed once per role and person: an RS256 signature per request cost the demo's
        client more CPU than some of the requests cost the services."""
        key = tuple(sorted(scope.items()))
        token = self._tokens.get(key)
        if token is None:
            token = self._tokens[key] = self.token(**scope)
        return token

    async def call(self, service: str, method: str, path: str, *, as_: dict[str, Any] | None = None,
                   ok: tuple[int, ...] = (200, 201), **kwargs: Any) -> Any:
        scope = as_ or {"role": Role.NETWORK_ADMIN}
        headers = {"Authorization": f"Bearer {self._token(scope)}"}
        url = f"{self.urls[service].rstrip('/')}/networks/{self.network_id}{path}"
        async with self.gate:
            started = time.perf_counter()
            for attempt in range(3):
                try:
                    response = await self.http.request(method, url, headers=headers, **kwargs)
                    break
                except httpx.TransportError as exc:
                    # A connection dropped under load; the step may have been recorded, in
                    # which case the retry is refused as a conflict, which is fine here.
                    self.retries += 1
                    ok = (*ok, 409)
                    if attempt == 2:
                        raise DemoError(f"{method} {path}: {exc!r}") from exc
                    await asyncio.sleep(0.5 * (attempt + 1))
            elapsed = time.perf_counter() - started
            if elapsed > self.slowest[0]:
                self.slowest = (elapsed, f"{method} {path}")
        if response.status_code not in ok:
            raise DemoError(f"{method} {path}: {response.status_code} {response.text[:400]}")
        return response.json() if response.content else None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _character(rng: random.Random) -> str:
    roll, total = rng.random(), 0.0
    for name, share in CHARACTERS:
        total += share
        if roll < total:
            return name
    return CHARACTERS[0][0]


async def _mentorships(api: _Api, program_id: str, status: str) -> list[dict[str, Any]]:
    items, cursor = [], None
    while True:
        params = {"program_id": program_id, "status": status, "limit": 500}
        if cursor:
            params["cursor"] = cursor
        page = await api.call("matching", "GET", "/mentorships", params=params)
        items += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return items


class _Player:
    """Plays one program's months; `now` is the end of the story."""

    def __init__(self, api: _Api, result: DemoResult, rng: random.Random, now: datetime) -> None:
        self.api, self.result, self.rng, self.now = api, result, rng, now

    def _person(self, person_id: str, role: str) -> dict[str, Any]:
        return {"role": Role(role), "person_id": person_id}

    def _past(self, moment: datetime) -> str:
        """A step that follows another by hours, kept at or before the story's end: the
        services refuse a step dated in the future."""
        return _iso(min(moment, self.now))

    async def program(self, program_id: str, start: datetime) -> None:
        """The program's months after its matching run was published (`match`)."""
        proposed = await _mentorships(self.api, program_id, "proposed")
        await asyncio.gather(*(self._answer(m, start) for m in proposed))
        # The mentees whose mentor declined get one of their suggestions a week later.
        declined = await _mentorships(self.api, program_id, "declined")
        await asyncio.gather(*(self._rematch(program_id, m, start + timedelta(days=8))
                               for m in declined))
        active = await _mentorships(self.api, program_id, "active")
        await asyncio.gather(*(self._live(program_id, m) for m in active))

    async def match(self, program_id: str, at: datetime) -> None:
        """Run the program's matching and publish the draft. A mentor may take part in
        several programs with one capacity: a draft made while another program's proposals
        changed the pool is refused (409), and is made again."""
        for attempt in range(3):
            run = await self.api.call("matching", "POST", f"/programs/{program_id}/runs",
                                      json={"algorithm": "min-cost-flow"})
            if not run["proposals"]:
                return
            published = await self.api.call(
                "matching", "POST", f"/programs/{program_id}/runs/{run['run_id']}/publish",
                json={"at": _iso(at)}, ok=(200, 201, 409) if attempt < 2 else (200, 201))
            if published is None or "detail" not in published:
                break
        self.result.runs += 1
        self.result.proposals += len(run["proposals"])

    async def _answer(self, mentorship: dict[str, Any], start: datetime) -> None:
        mid = mentorship["mentorship_id"]
        mentee = self._person(mentorship["mentee_id"], "mentee")
        mentor = self._person(mentorship["mentor_id"], "mentor")
        at = start + timedelta(days=self.rng.uniform(0.3, 3))
        await self.api.call("matching", "POST", f"/mentorships/{mid}/accept", as_=mentee,
                            json={"at": _iso(at)})
        at += timedelta(days=self.rng.uniform(0.2, 4))
        if self.rng.random() < 0.08:
            await self.api.call("matching", "POST", f"/mentorships/{mid}/decline", as_=mentor,
                                json={"at": _iso(at), "reason": "My clinical schedule is full "
                                      "this term."})
            self.result.declined += 1
            return
        await self.api.call("matching", "POST", f"/mentorships/{mid}/accept", as_=mentor,
                            json={"at": _iso(at)}, ok=(200, 201, 409))

    async def _rematch(self, program_id: str, declined: dict[str, Any], at: datetime) -> None:
        if at >= self.now:
            return  # the story ends before the mentee would look again
        mentee_id = declined["mentee_id"]
        mentee = self._person(mentee_id, "mentee")
        suggestions = await self.api.call(
            "matching", "GET", f"/programs/{program_id}/mentees/{mentee_id}/suggestions",
            params={"k": 3}, as_=mentee)
        for suggestion in suggestions:
            # A suggested mentor's last place may have gone meanwhile (409): take the next.
            proposed = await self.api.call(
                "matching", "POST", f"/programs/{program_id}/proposals", as_=mentee, ok=(201, 409),
                json={"mentee_id": mentee_id, "mentor_id": suggestion["mentor_id"],
                      "at": _iso(at)})
            if proposed.get("mentorship_id"):
                self.result.rematched += 1
                await self._start(program_id, proposed, at)
                return

    async def _start(self, program_id: str, proposed: dict[str, Any], at: datetime) -> None:
        """Both sides accept a rematch within days; then it lives like the others."""
        mid = proposed["mentorship_id"]
        for side in ("mentee", "mentor"):
            at += timedelta(days=self.rng.uniform(0.5, 3))
            if at >= self.now:
                return
            person = self._person(proposed[f"{side}_id"], side)
            await self.api.call("matching", "POST", f"/mentorships/{mid}/accept", as_=person,
                                json={"at": _iso(at)}, ok=(200, 409))
        started = await self.api.call("matching", "GET", f"/mentorships/{mid}")
        if started.get("status") == "active":
            await self._live(program_id, started)

    async def _live(self, program_id: str, m: dict[str, Any]) -> None:
        """One pair's months, from the agreement to today or to its end."""
        rng = random.Random(f"{self.rng.random()}:{m['mentorship_id']}")
        mid, character = m["mentorship_id"], _character(rng)
        self.result.mentorships += 1
        self.result.characters[character] += 1
        mentee = self._person(m["mentee_id"], "mentee")
        mentor = self._person(m["mentor_id"], "mentor")
        cadence = int(m.get("cadence_days") or 30)
        reassess = int(m.get("reassessment_days") or 90)
        started = datetime.fromisoformat(m["started_at"])
        at = started + timedelta(days=rng.uniform(1, 6))
        if at >= self.now:
            return
        topics = TOPICS.get(m.get("need") or "", ["goals", "expectations", "next steps"])
        await self.api.call("matching", "PUT", f"/mentorships/{mid}/agreement", as_=mentee, json={
            "cadence_days": cadence, "channel": rng.choice(["video call", "coffee", "clinic office"]),
            "goals": [f"Agree on one concrete step in {t} every {cadence} days"
                      for t in topics[:2]], "at": _iso(at)})
        goal = await self.api.call("matching", "POST", f"/mentorships/{mid}/goals", as_=mentee,
                                   json={"text": f"Make progress on {topics[0]}",
                                         "category": m.get("need") or "career-planning",
                                         "at": _iso(at)})
        goal_id = goal.get("goal_id") if isinstance(goal, dict) else None

        end = self.now
        ending: tuple[str, bool] | None = None
        if character == "no_fit":
            end = min(self.now, started + timedelta(days=rng.uniform(40, 80)))
            ending = ("no_fit", True)
        elif character == "completed":
            end = min(self.now, started + timedelta(days=rng.uniform(120, 170)))
            ending = ("completed", False) if end < self.now else None
        silent_from = {
            "silent": started,
            "fading": started + timedelta(days=rng.uniform(45, 75)),
        }.get(character, self.now)

        meeting, progress, next_check = at, 0, started + timedelta(days=reassess)
        while True:
            meeting += timedelta(days=cadence * rng.uniform(0.6, 1.5))
            if meeting >= min(end, silent_from, self.now):
                break
            await self.api.call("matching", "POST", f"/mentorships/{mid}/meetings/log",
                                as_=rng.choice([mentee, mentor]), json={
                                    "held_at": _iso(meeting),
                                    "duration_minutes": rng.choice([30, 30, 45, 60, 60, 90]),
                                    "mode": rng.choice(["virtual", "virtual", "in-person"]),
                                    "topics": rng.sample(topics, k=min(2, len(topics))),
                                    "private_notes": "Agreed next steps; follow up next time."})
            self.result.meetings += 1
            if goal_id and character in ("thriving", "completed") and progress < 100:
                progress = min(100, progress + rng.choice([10, 20, 25, 30]))
                await self.api.call("matching", "PATCH", f"/mentorships/{mid}/goals/{goal_id}",
                                    as_=mentee, json={"progress": progress,
                                                      "at": self._past(meeting + timedelta(hours=2))})
                if progress == 100 or rng.random() < 0.12:
                    await self.api.call(
                        "matching", "POST", f"/mentorships/{mid}/milestones", as_=mentee,
                        json={"title": rng.choice(MILESTONES),
                              "at": self._past(meeting + timedelta(hours=3))})
                    self.result.milestones += 1
            if meeting >= next_check:
                await self._check_in(mid, character, mentee, mentor, meeting, rng)
                next_check += timedelta(days=reassess)
        if ending and end < self.now:
            reason, rematch = ending
            if reason == "no_fit":
                await self._check_in(mid, character, mentee, mentor,
                                     end - timedelta(days=1), rng)
            await self.api.call("matching", "POST", f"/mentorships/{mid}/end", as_=mentee,
                                json={"reason": reason, "rematch": rematch, "at": _iso(end)})
            self.result.endings[reason] += 1
            if rematch:
                await self._rematch(program_id, m, end + timedelta(days=rng.uniform(3, 10)))

    async def _check_in(self, mid: str, character: str, mentee: dict[str, Any],
                        mentor: dict[str, Any], at: datetime, rng: random.Random) -> None:
        good = character in ("thriving", "completed")
        for who, lean in ((mentee, 0), (mentor, 0.3)):
            satisfaction = (rng.choice([4, 5, 5]) if good
                            else rng.choice([2, 3, 3, 4]) if character == "fading"
                            else rng.choice([1, 2, 2, 3]))
            satisfaction = min(5, satisfaction + (1 if rng.random() < lean * 0.3 else 0))
            await self.api.call("matching", "POST", f"/mentorships/{mid}/feedback", as_=who, json={
                "satisfaction": satisfaction, "working": satisfaction >= 3,
                "recommend": min(10, max(0, satisfaction * 2 + rng.choice([-1, 0, 0, 1]))),
                "comment": "Check-in at the reassessment point.", "at": _iso(at)})
            self.result.feedback += 1


async def demo_async(
    base_urls: Mapping[str, str],
    *,
    private_key_pem: bytes,
    network_id: str = "demo",
    months: int = 6,
    size: int = 300,
    seed: int = 7,
    parallel: int = 12,
    issuer: str = "mentorship-local",
    audience: str = "mentorship",
    echo: Callable[[str], None] = lambda _: None,
) -> DemoResult:
    """Seed the network with enrolments `months` ago, then play the programs up to now."""
    now = datetime.now(UTC) - timedelta(hours=1)
    started = now - timedelta(days=30 * months)
    seeded = await seed_async(base_urls, private_key_pem=private_key_pem, network_id=network_id,
                              size=size, seed=seed, issuer=issuer, audience=audience, echo=echo,
                              effective_on=(started - timedelta(days=21)).date())
    result = DemoResult(seed=seeded, started=started)

    def token(role: Role, person_id: str | None = None) -> str:
        return issue_token(private_key_pem, role=role, network_id=network_id, issuer=issuer,
                           audience=audience, person_id=person_id,
                           subject=person_id or f"demo-{role.value}")

    # Connections are dropped before the server's keep-alive timeout (5 s) would close them
    # under a request in flight.
    limits = httpx.Limits(keepalive_expiry=1.0)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        api = _Api(http, base_urls, network_id, token, parallel)
        await _wait_for_pool(api, seeded)
        began = time.perf_counter()
        # A generator of its own per program: the same seed tells the same story whichever
        # program's requests come back first.
        players = {}
        for n, key in enumerate(DEMO_PROGRAMS):
            program_id = seeded.programs.get(key)
            if program_id is None:
                continue
            if await _mentorships(api, program_id, "active"):
                echo(f"{key}: already played, left as it is")
                continue
            player = _Player(api, result, random.Random(f"{seed}:{key}"), now)
            # One program's matching after another: each draft sees the pool as the
            # proposals published before it left it.
            await player.match(program_id, started + timedelta(days=3 * n))
            players[key] = (player, program_id, started + timedelta(days=3 * n))
        echo(f"matching runs published by {time.perf_counter() - began:.1f} s")

        async def play(key: str) -> None:
            player, program_id, start = players[key]
            await player.program(program_id, start)
            echo(f"{key}: played by {time.perf_counter() - began:.1f} s")

        # Then all programs' months at once: the gate keeps `parallel` requests in flight
        # throughout, where one program after another left it idle at the end of each.
        await asyncio.gather(*(play(key) for key in players))
        echo(f"slowest request {api.slowest[0]:.2f} s: {api.slowest[1]}; "
             f"{api.retries} retried")
    return result


async def _wait_for_pool(api: _Api, seeded: SeedResult, timeout: float = 60.0) -> None:
    """Matching builds its pool from the profiles events; wait until it has everyone."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        mentors = await api.call("matching", "GET", "/pool/mentors")
        mentees = await api.call("matching", "GET", "/pool/mentees")
        if len(mentors) >= seeded.mentors and len(mentees) >= seeded.mentees:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise DemoError(f"matching's pool has {len(mentors)} mentors and {len(mentees)} "
                            f"mentees of {seeded.mentors} and {seeded.mentees} after {timeout:.0f} s")
        await asyncio.sleep(0.5)


def demo(base_urls: Mapping[str, str], **kwargs: Any) -> DemoResult:
    return asyncio.run(demo_async(base_urls, **kwargs))
