"""Batch matching at synthetic sizes: candidate generation and solving time, peak memory,
mentees matched and total score, next to a greedy best-first baseline.

    python bench/matching.py                # 2,000 mentees x 500 mentors
    python bench/matching.py 20000 5000     # other sizes: mentees mentors [top_k]

Also: the flow's optimum checked against CP-SAT on the same candidate arcs (sizes up to
2,000 mentees), deferred acceptance at the size of the US residency match (45,000 applicants,
6,400 programs, lists of 12), and top-10 suggestions for one mentee among 5,000 mentors.
"""

from __future__ import annotations

import random
import sys
import time
import resource
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.matching.assignment import (  # noqa: E402
    _solve_cp_sat,
    batch_match,
    generate_candidates,
    greedy_match,
)
from services.matching.scoring import Mentee, Mentor, Program  # noqa: E402
from services.matching.table import MentorTable  # noqa: E402
from services.matching.stable import deferred_acceptance  # noqa: E402
from services.matching.suggestions import suggest  # noqa: E402

HELP = ["research", "residency-applications", "wellbeing", "clinical-skills", "career-planning",
        "publishing", "leadership", "work-life", "teaching", "quality-improvement"]
SPECIALTIES = ["surgery", "internal-medicine", "paediatrics", "psychiatry", "radiology",
               "emergency-medicine", "family-medicine", "neurology", "obgyn", "anaesthesia"]
MENTEE_STAGES = ["M1", "M2", "M3", "M4", "PGY-1", "PGY-2"]
MENTOR_STAGES = ["M3", "M4", "PGY-1", "PGY-2", "PGY-3", "PGY-4", "fellow", "faculty-professor"]


def synthetic(n_mentees: int, n_mentors: int, seed: int = 7) -> tuple[list[Mentee], list[Mentor]]:
    rnd = random.Random(seed)
    institutions = [f"inst-{i}" for i in range(20)]
    mentors = [
        Mentor(
            id=f"m{i}",
            institution_id=rnd.choice(institutions),
            career_stage=rnd.choice(MENTOR_STAGES),
            capacity=rnd.randint(1, 5),
            help_offered=frozenset(rnd.sample(HELP, 3)),
            specialties=frozenset(rnd.sample(SPECIALTIES, 2)),
            languages=frozenset(rnd.sample(["en", "es", "fr"], rnd.randint(1, 2))),
            meeting_modes=frozenset(rnd.sample(["video", "in-person", "phone"], 2)),
            utc_offset=rnd.choice([-8, -5, 0, 1, 5.5]),
            affinities=frozenset(rnd.sample(["first-gen", "women-in-medicine", "lgbtq"], 1)),
            trained=rnd.random() < 0.5,
        )
        for i in range(n_mentors)
    ]
    mentees = [
        Mentee(
            id=f"e{i}",
            institution_id=rnd.choice(institutions),
            career_stage=rnd.choice(MENTEE_STAGES),
            needs=tuple(rnd.sample(HELP, 3)),
            mentors_wanted=2 if rnd.random() < 0.1 else 1,
            specialties=frozenset(rnd.sample(SPECIALTIES, 1)),
            languages=frozenset(rnd.sample(["en", "es", "fr"], 1)),
            meeting_modes=frozenset(rnd.sample(["video", "in-person", "phone"], 1)),
            utc_offset=rnd.choice([-8, -5, 0, 1, 5.5]),
            affinity_preferences=frozenset(rnd.sample(["first-gen", "women-in-medicine"], 1))
            if rnd.random() < 0.3
            else frozenset(),
        )
        for i in range(n_mentees)
    ]
    return mentees, mentors


def run(label: str, fn) -> None:
    started = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    t = result.timings
    print(
        f"{label:<14} wall {wall:6.2f} s (candidates {t['candidates']:5.2f} s, solve {t['solve']:5.2f} s)"
        f"  peak RSS {peak / 2**20:6.0f} MiB  mentees matched {result.mentees_matched:6d}"
        f"  slots unfilled {len(result.unfilled):6d}  total score {result.total_score:10.1f}"
    )


def main() -> None:
    n_mentees = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    n_mentors = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    top_k = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    mentees, mentors = synthetic(n_mentees, n_mentors)
    CAPACITY.update({i: m.capacity for i, m in enumerate(mentors)})
    capacity = sum(m.capacity for m in mentors)
    slots = sum(max(1, e.mentors_wanted) for e in mentees)
    print(f"{n_mentees} mentees ({slots} slots) x {n_mentors} mentors (capacity {capacity}), top_k={top_k}")
    program = Program()
    run("min-cost flow", lambda: batch_match(mentees, mentors, program, top_k=top_k, with_explanations=False))
    run("fair flow", lambda: batch_match(mentees, mentors, program, top_k=top_k, fair=True, with_explanations=False))
    run("greedy", lambda: greedy_match(mentees, mentors, program, top_k=top_k))
    if n_mentees <= 2000:
        flow = batch_match(mentees, mentors, program, top_k=top_k, with_explanations=False)
        cands = generate_candidates(mentees, mentors, program, top_k=top_k)
        started = time.perf_counter()
        filled, total = lp_optimum(mentees, cands)
        print(
            f"LP (GLOP, integral: the constraints form a network) on the same arcs: "
            f"{time.perf_counter() - started:.2f} s, slots filled {filled}, total score "
            f"{total / 10:.1f}; gap to the flow: {filled - len(flow.assignments)} slots, "
            f"{(total - flow.total_points) / 10:.1f} points"
        )
    stable_bench()
    suggestions_bench()


def lp_optimum(mentees, cands) -> tuple[int, int]:
    """An independent solver: the LP of the same lexicographic objective with Google's simplex."""
    from collections import defaultdict

    from ortools.linear_solver import pywraplp

    solver = pywraplp.Solver.CreateSolver("GLOP")
    big = 1000 * (len(cands.slots) + 1) + 1
    by_slot, by_pair, by_mentor, terms, xs = defaultdict(list), defaultdict(list), defaultdict(list), [], []
    for s, options in enumerate(cands.arcs):
        e = cands.slots[s].mentee_index
        for m, p in options:
            x = solver.NumVar(0, 1, "")
            xs.append((x, p))
            by_slot[s].append(x)
            by_pair[(e, m)].append(x)
            by_mentor[m].append(x)
            terms.append((big + p) * x)
    for group in (by_slot, by_pair):
        for vs in group.values():
            solver.Add(sum(vs) <= 1)
    for m, vs in by_mentor.items():
        solver.Add(sum(vs) <= CAPACITY[m])
    solver.Maximize(sum(terms))
    assert solver.Solve() == pywraplp.Solver.OPTIMAL
    filled = sum(x.solution_value() for x, _ in xs)
    total = sum(x.solution_value() * p for x, p in xs)
    return round(filled), round(total)


CAPACITY: dict[int, int] = {}


def stable_bench(applicants: int = 45_000, programs: int = 6_400, length: int = 12) -> None:
    rnd = random.Random(3)
    names = [f"p{j}" for j in range(programs)]
    cum, acc = [], 0.0
    for j in range(programs):  # some programs far more wanted than others
        acc += 1.0 / (j + 10)
        cum.append(acc)
    mentee_prefs = {}
    for i in range(applicants):
        prefs: list[str] = []
        seen: set[str] = set()
        while len(prefs) < length:
            p = rnd.choices(names, cum_weights=cum)[0]
            if p not in seen:
                seen.add(p)
                prefs.append(p)
        mentee_prefs[f"a{i}"] = prefs
    ranked: dict[str, list[str]] = {p: [] for p in names}
    for a, prefs in mentee_prefs.items():
        for p in prefs:
            ranked[p].append(a)
    mentor_prefs = {p: rnd.sample(a, len(a)) for p, a in ranked.items()}
    caps = {p: rnd.randint(3, 10) for p in names}
    started = time.perf_counter()
    match = deferred_acceptance(mentee_prefs, mentor_prefs, caps)
    wall = time.perf_counter() - started
    matched = sum(1 for m in match.values() if m is not None)
    print(
        f"deferred acceptance {applicants} x {programs} (lists of {length}): {wall:.2f} s, "
        f"{matched} matched"
    )


def suggestions_bench(n_mentors: int = 5000) -> None:
    mentees, mentors = synthetic(50, n_mentors, seed=11)
    program = Program()
    table = MentorTable(mentors, program)
    started = time.perf_counter()
    for e in mentees:
        suggest(e, mentors, program, k=10, table=table)
    per = (time.perf_counter() - started) / len(mentees)
    print(f"top-10 suggestions among {n_mentors} mentors: {per * 1000:.1f} ms per mentee")


if __name__ == "__main__":
    main()
