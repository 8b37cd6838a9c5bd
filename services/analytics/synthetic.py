"""A synthetic network's life, seeded: for the benchmark and the dashboard's browser test.

Chapters with a program or two each; mentors and mentees join over the first months;
mentees are proposed, some proposals declined and re-proposed; pairs meet at irregular
rhythms around their cadence, some stall after a few meetings; both sides check in every
six weeks or so (happier where meetings happen), goals and milestones follow, and pairs end
(completed after about half a year, or early with a reason, sometimes asking for a rematch).
Only events up to `days` are kept. Not a statistical model: a plausible texture to measure.
"""

from __future__ import annotations

import random

from services.analytics.scenario import Scenario

ATTRIBUTES = {
    "gender": (["woman", "man", "non-binary"], [0.55, 0.42, 0.03]),
    "first_generation": (["yes", "no"], [0.3, 0.7]),
}


def network(people: int, days: int = 365, chapters: int = 5, seed: int = 7,
            network_id: str = "bench") -> Scenario:
    rng = random.Random(seed)
    s = Scenario(network_id)
    programs: list[tuple[str, str, int]] = []
    for c in range(chapters):
        inst = f"{network_id}-c{c}"
        s.institution(inst, f"Chapter {c + 1}")
        for k in range(1 + (c % 2)):
            pid = f"{inst}-p{k}"
            cadence = rng.choice([14, 14, 21, 30])
            s.program(pid, inst, cadence=cadence, name=f"Chapter {c + 1} {'research' if k else 'career'} mentoring")
            programs.append((pid, inst, cadence))
    mentors: dict[str, list[str]] = {p: [] for p, _, _ in programs}
    mentees: list[tuple[str, str, str, float]] = []
    for n in range(people):
        program_id, inst, _ = rng.choice(programs)
        day = min(days - 1, rng.expovariate(1 / 60))
        if n % 3 == 0:
            pid = f"{network_id}-m{n}"
            s.person("mentor", pid, inst, day, program_id, capacity=rng.choice([1, 2, 2, 3]),
                     name=f"Dr {_name(rng)}")
            mentors[program_id].append(pid)
            if rng.random() < 0.3:
                s.profile(pid, version=1, capacity=2, public=rng.random() < 0.5, name=f"Dr {_name(rng)}")
        else:
            pid = f"{network_id}-e{n}"
            s.person("mentee", pid, inst, day, program_id, name=_name(rng))
            mentees.append((pid, program_id, inst, day))
            if rng.random() < 0.7:
                attrs = {k: rng.choices(v, w)[0] for k, (v, w) in ATTRIBUTES.items() if rng.random() < 0.8}
                s.attributes(pid, **attrs)
    cadence_of = {p: c for p, _, c in programs}
    count = 0
    for mentee_id, program_id, _, joined in mentees:
        pool = mentors[program_id]
        if not pool or rng.random() < 0.1:
            continue  # still waiting
        t = joined + rng.expovariate(1 / 12)
        rematch = False
        for _ in range(3):  # a declined proposal or an early ending leads to another try
            if t >= days:
                break
            count += 1
            mid = f"{network_id}-x{count}"
            s.propose(mid, program_id, rng.choice(pool), mentee_id, t, rematch=rematch)
            if rng.random() < 0.15:
                s.decline(mid, t + rng.uniform(0.5, 5), side=rng.choice(["mentor", "mentee"]))
                t += rng.uniform(3, 15)
                continue
            start = t + rng.uniform(0.5, 7)
            if start >= days:
                break
            s.accept(mid, "mentee", start - 0.2)
            cadence = cadence_of[program_id]
            s.start(mid, start, cadence=cadence, proposed_day=t)
            if ended := _life(s, rng, mid, start, cadence, days):
                t, rematch = ended, True
                continue
            break
    return s


def _life(s: Scenario, rng: random.Random, mid: str, start: float, cadence: int, days: int) -> float | None:
    """Meetings, check-ins, goals and the ending of one mentorship; the day it ended early."""
    stalls = rng.random() < 0.22
    meetings_before_stall = rng.randint(0, 3)
    planned_end = start + rng.uniform(150, 240)
    early = rng.random() < 0.1
    if early:
        planned_end = start + rng.uniform(20, 90)
    t, held = start + rng.uniform(2, cadence), 0
    while t < min(days, planned_end):
        if stalls and held >= meetings_before_stall:
            break
        s.meet(mid, t, rng.choice([30, 45, 60, 60, 90]))
        held += 1
        t += cadence * rng.lognormvariate(0, 0.35)
    happy = 0.0 if stalls else 1.0
    for k in range(1, 6):
        day = start + 42 * k + rng.uniform(-5, 5)
        if day >= min(days, planned_end):
            break
        for side in ("mentee", "mentor"):
            if rng.random() < 0.75:
                base = 3.2 + 1.3 * happy + rng.gauss(0, 0.7)
                sat = max(1, min(5, round(base)))
                rec = max(0, min(10, round(2 * base + rng.gauss(0, 1))))
                s.feedback(mid, side, sat, day, recommend=rec if rng.random() < 0.8 else None,
                           working=sat >= 3)
    for _ in range(rng.randint(0, 3)):
        set_day = start + rng.uniform(1, 30)
        if set_day < days:
            achieved = set_day + rng.uniform(20, 200)
            s.goal(mid, set_day, achieved if achieved < days and not stalls and rng.random() < 0.6 else None)
            if achieved < days and rng.random() < 0.4:
                s.milestone(mid, achieved)
    if planned_end < days:
        if early:
            s.end(mid, planned_end, reason=rng.choice(["no_fit", "no_fit", "withdrawn", "left_institution"]),
                  rematch=True)
            return planned_end
        s.end(mid, planned_end, reason="completed")
    return None


_FIRST = ["Amara", "Ben", "Chloé", "Dev", "Elif", "Femi", "Grace", "Hiro", "Ines", "Jonas", "Kemi",
          "Lena", "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sami", "Tariq", "Uma", "Vera"]
_LAST = ["Adeyemi", "Bauer", "Costa", "Dubois", "Eriksen", "Fischer", "García", "Haddad", "Ito",
         "Jensen", "Kowalski", "Lopez", "Moreau", "Nguyen", "Okafor", "Patel", "Rossi", "Silva"]


def _name(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
