"""Matching at synthetic sizes: batch matching (candidate generation and solving time, peak
memory, mentees matched, total score) next to a greedy best-first baseline, the exact optimum of
an independent solver at the small size, deferred acceptance at the size of the US residency
match, and top-10 suggestions for one mentee.

    python bench/matching.py                   # everything (each measurement in its own process)
    python bench/matching.py batch 20000 5000  # one size: mentees mentors [top_k]
    python bench/matching.py exact 1000 250    # flow vs scipy linear_sum_assignment, all pairs
    python bench/matching.py sparsity 4000 1000 # top-k candidates vs every pair (flow both ways)
    python bench/matching.py stable            # deferred acceptance, 45,000 x 6,400, lists of 12
    python bench/matching.py suggestions       # top-10 among 5,000 mentors

Peak memory is the process's maximum resident set (ru_maxrss), synthetic data included; every
measurement runs in a fresh process so one does not inherit another's peak. The machine is
shared: the load average and the CPU time of the process are printed next to the wall times.
"""

from __future__ import annotations

import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.matching.assignment import batch_match, greedy_match, points  # noqa: E402
from services.matching.scoring import (  # noqa: E402
    Mentee,
    Mentor,
    Program,
    ineligibility,
    score_value,
)
from services.matching.stable import blocking_pairs, deferred_acceptance  # noqa: E402
from services.matching.suggestions import suggest  # noqa: E402
from services.matching.table import MentorTable  # noqa: E402

SIZES = [(1_000, 250), (20_000, 5_000), (100_000, 20_000)]
TOP_K = 30
# The profiles service's default vocabularies (services/profiles/people.py).
HELP = ["research", "career-planning", "residency-applications", "clinical-skills",
        "academic-exam-strategy", "wellbeing", "leadership", "networking", "work-life-balance"]
SPECIALTIES = ["cardiology", "general-surgery", "internal-medicine", "pediatrics", "psychiatry",
               "radiology", "emergency-medicine", "family-medicine", "neurology",
               "obstetrics-gynecology"]
MENTEE_STAGES = ["M1", "M2", "M3", "M4", "PGY-1", "PGY-2"]
MENTOR_STAGES = ["M3", "M4", "PGY-1", "PGY-2", "PGY-3", "PGY-4", "fellow", "faculty-professor"]
OFFSETS = [-8, -5, 0, 1, 5.5, None]
AFFINITY = ["first_generation=true", "gender=woman", "under_represented=true"]


def synthetic(n_mentees: int, n_mentors: int, seed: int = 7) -> tuple[list[Mentee], list[Mentor]]:
    """A program with 20 institutions, capacities 1-5, 10% of mentees wanting two mentors."""
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
            meeting_modes=frozenset(rnd.sample(["virtual", "in-person"], rnd.randint(1, 2))),
            utc_offset=rnd.choice(OFFSETS),
            affinities=frozenset(rnd.sample(AFFINITY, 1)),
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
            languages=frozenset(rnd.sample(["en", "es", "fr"], 1)) if rnd.random() < 0.7 else frozenset(),
            meeting_modes=frozenset(rnd.sample(["virtual", "in-person"], 1)),
            utc_offset=rnd.choice(OFFSETS),
            affinity_preferences=frozenset(rnd.sample(AFFINITY, 1))
            if rnd.random() < 0.3
            else frozenset(),
            institution_preference=rnd.choice([None, None, None, "same"]),
        )
        for i in range(n_mentees)
    ]
    return mentees, mentors


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f} on {os.cpu_count()} cores"


def batch(n_mentees: int, n_mentors: int, algorithm: str, top_k: int | None) -> None:
    mentees, mentors = synthetic(n_mentees, n_mentors)
    data_mib = peak_mib()
    program = Program(id="", type="near-peer")
    fn = {
        "flow": lambda: batch_match(mentees, mentors, program, top_k=top_k, with_explanations=False),
        "fair": lambda: batch_match(
            mentees, mentors, program, top_k=top_k, fair=True, with_explanations=False
        ),
        "greedy": lambda: greedy_match(mentees, mentors, program, top_k=top_k),
    }[algorithm]
    before = load()
    started, cpu = time.perf_counter(), time.process_time()
    result = fn()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    t = result.timings
    slots = len(result.assignments) + len(result.unfilled)
    print(
        f"  {algorithm:<7} end to end {wall:6.2f} s (candidates {t['candidates']:5.2f} s, "
        f"solve {t['solve']:5.2f} s; CPU {cpu:6.2f} s)  peak {peak_mib():5.0f} MiB "
        f"(data alone {data_mib:4.0f})  "
        f"mentees matched {result.mentees_matched:6d}  slots {len(result.assignments)}/{slots}  "
        f"total score {result.total_score:10.1f}  [{before}]",
        flush=True,
    )


def scipy_optimum(mentees: list[Mentee], mentors: list[Mentor], program: Program):
    """(slots filled, points, times a mentor was used twice for one mentee) of scipy's Hungarian
    algorithm on the capacity-expanded matrix: a row per wanted mentor (a slot; for a named need
    only mentors offering it), a column per place, an eligible pair worth more than any sum of
    scores so that filling comes first. The matrix cannot say "a different mentor for each
    slot", so for mentees wanting several mentors it is a relaxation (an upper bound)."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    rows = [(e, need) for e in mentees for need in e.slot_needs()]
    big = 1000.0 * (len(rows) + 1)
    slot_value = np.zeros((len(rows), len(mentors)))
    for s, (e, need) in enumerate(rows):
        for c, m in enumerate(mentors):
            if ineligibility(e, m, program) is None and (need is None or need in m.help_offered):
                slot_value[s, c] = big + points(score_value(e, m, program))
    place_of = np.repeat(np.arange(len(mentors)), [m.capacity for m in mentors])
    value = slot_value[:, place_of]
    r_idx, c_idx = linear_sum_assignment(value, maximize=True)
    taken = value[r_idx, c_idx] > 0
    total = int(round(float((value[r_idx, c_idx][taken] - big).sum())))
    used = [(rows[s][0].id, int(place_of[c])) for s, c in zip(r_idx[taken], c_idx[taken])]
    return int(taken.sum()), total, len(used) - len(set(used)), value.shape


def exact(n_mentees: int, n_mentors: int) -> None:
    """The flow, over all pairs and over top-k candidates, against scipy's exact optimum."""
    from dataclasses import replace

    mentees, mentors = synthetic(n_mentees, n_mentors)
    program = Program()
    one_each = [replace(e, mentors_wanted=1) for e in mentees]
    for label, group in (("one mentor per mentee", one_each), ("10% wanting two", mentees)):
        started = time.perf_counter()
        filled, total, repeated, shape = scipy_optimum(group, mentors, program)
        print(
            f"  {label}: scipy linear_sum_assignment on the {shape[0]} x {shape[1]} "
            f"capacity-expanded matrix ({time.perf_counter() - started:.2f} s): slots filled "
            f"{filled}, total score {total / 10:.1f}"
            + (f" (uses a mentor twice for one mentee {repeated} times)" if repeated else "")
        )
        for top_k in (None, TOP_K):
            flow = batch_match(group, mentors, program, top_k=top_k, with_explanations=False)
            print(
                f"    flow, {'all pairs' if top_k is None else f'top_k={top_k}':<10} "
                f"{sum(flow.timings.values()):5.2f} s, slots filled {len(flow.assignments)}, "
                f"total score {flow.total_score:.1f}; gap to scipy: "
                f"{filled - len(flow.assignments)} slots, {(total - flow.total_points) / 10:.1f} points"
            )
        if repeated:
            started = time.perf_counter()
            lp_filled, lp_total = lp_optimum(group, mentors, program)
            print(
                f"    LP of the exact model with 'a different mentor per slot' (GLOP, all pairs, "
                f"{time.perf_counter() - started:.2f} s): slots filled {lp_filled}, total score "
                f"{lp_total / 10:.1f}"
            )


def lp_optimum(mentees: list[Mentee], mentors: list[Mentor], program: Program) -> tuple[int, int]:
    """The linear program of the exact model (slots, places, a mentor at most once per mentee)
    over all pairs with Google's simplex; its matrix is a network's, so the optimum is integral."""
    from collections import defaultdict

    from ortools.linear_solver import pywraplp

    solver = pywraplp.Solver.CreateSolver("GLOP")
    slots = [(e, need) for e in mentees for need in e.slot_needs()]
    big = 1000 * (len(slots) + 1)
    by_slot, by_pair, by_mentor = defaultdict(list), defaultdict(list), defaultdict(list)
    terms, xs = [], []
    for s, (e, need) in enumerate(slots):
        for c, m in enumerate(mentors):
            if ineligibility(e, m, program) is None and (need is None or need in m.help_offered):
                p = points(score_value(e, m, program))
                x = solver.NumVar(0, 1, "")
                xs.append((x, p))
                by_slot[s].append(x)
                by_pair[(e.id, c)].append(x)
                by_mentor[c].append(x)
                terms.append((big + p) * x)
    for group in (by_slot, by_pair):
        for vs in group.values():
            if len(vs) > 1:
                solver.Add(sum(vs) <= 1)
    for c, vs in by_mentor.items():
        solver.Add(sum(vs) <= mentors[c].capacity)
    solver.Maximize(sum(terms))
    assert solver.Solve() == pywraplp.Solver.OPTIMAL
    filled = sum(x.solution_value() for x, _ in xs)
    total = sum(x.solution_value() * p for x, p in xs)
    return round(filled), round(total)


def sparsity(n_mentees: int, n_mentors: int) -> None:
    """What the candidate cut costs: the flow over top-k candidates against the flow over every
    eligible pair (the exact optimum), at a size where all pairs still fit."""
    mentees, mentors = synthetic(n_mentees, n_mentors)
    program = Program()
    results = {}
    for top_k in (None, TOP_K):
        started = time.perf_counter()
        flow = batch_match(mentees, mentors, program, top_k=top_k, with_explanations=False)
        results[top_k] = flow
        print(
            f"  flow over {'all pairs' if top_k is None else f'top_k={top_k} + 20 per mentor':<24} "
            f"{time.perf_counter() - started:6.2f} s: slots filled {len(flow.assignments)}, "
            f"total score {flow.total_score:.1f}"
        )
    exact_flow, cut = results[None], results[TOP_K]
    print(
        f"  gap of the candidate cut: {len(exact_flow.assignments) - len(cut.assignments)} slots, "
        f"{(exact_flow.total_points - cut.total_points) / 10:.1f} points"
    )


def stable(applicants: int = 45_000, programs: int = 6_400, length: int = 12) -> None:
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
    before = load()
    started = time.perf_counter()
    match = deferred_acceptance(mentee_prefs, mentor_prefs, caps)
    wall = time.perf_counter() - started
    matched = sum(1 for m in match.values() if m is not None)
    blocking = blocking_pairs(match, mentee_prefs, mentor_prefs, caps)
    print(
        f"deferred acceptance {applicants:,} applicants x {programs:,} programs (lists of "
        f"{length}, capacity {sum(caps.values()):,}): {wall:.2f} s, {matched:,} matched, "
        f"blocking pairs {len(blocking)}, peak {peak_mib():.0f} MiB [{before}]"
    )


def suggestions(n_mentors: int = 5000, n_mentees: int = 200) -> None:
    mentees, mentors = synthetic(n_mentees, n_mentors, seed=11)
    program = Program()
    started = time.perf_counter()
    table = MentorTable(mentors, program)
    built = time.perf_counter() - started
    before = load()
    times = []
    for e in mentees:
        started = time.perf_counter()
        top = suggest(e, mentors, program, k=10, table=table)
        times.append(time.perf_counter() - started)
        assert len(top) == 10
    times.sort()
    print(
        f"top-10 suggestions among {n_mentors:,} mentors, with explanations: median "
        f"{times[len(times) // 2] * 1000:.1f} ms, worst {times[-1] * 1000:.1f} ms per mentee "
        f"(the mentor table, built once: {built * 1000:.0f} ms) [{before}]"
    )


def _child(*args: str) -> None:
    # One BLAS thread: on a 2-core machine shared with other work, OpenBLAS's second thread
    # spin-waits for a core and doubles the CPU spent (measured: 3.3 s vs 5.1 s of CPU for
    # candidates at 20,000 x 20,000 under load 10). Set OPENBLAS_NUM_THREADS to override.
    env = {**os.environ, "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1")}
    subprocess.run([sys.executable, __file__, *args], check=True, env=env)


def main(argv: list[str]) -> None:
    if not argv:
        threads = os.environ.get("OPENBLAS_NUM_THREADS", "1")
        print(f"machine: {os.cpu_count()} cores, {load()}; OpenBLAS threads {threads}", flush=True)
        for n_mentees, n_mentors in SIZES:
            print(f"{n_mentees:,} mentees x {n_mentors:,} mentors, capacities 1-5, top_k={TOP_K}",
                  flush=True)
            for algorithm in ("flow", "greedy") + (("fair",) if n_mentees <= 20_000 else ()):
                _child("batch", str(n_mentees), str(n_mentors), algorithm)
            if n_mentees <= 2_000:
                _child("exact", str(n_mentees), str(n_mentors))
                print("4,000 mentees x 1,000 mentors: the candidate cut against all pairs", flush=True)
                _child("sparsity", "4000", "1000")
        _child("stable")
        _child("suggestions")
        return
    kind, rest = argv[0], argv[1:]
    if kind == "batch":
        n_mentees, n_mentors = int(rest[0]), int(rest[1])
        algorithms = [rest[2]] if len(rest) > 2 else ["flow", "greedy"]
        top_k = int(rest[3]) if len(rest) > 3 else TOP_K
        for algorithm in algorithms:
            batch(n_mentees, n_mentors, algorithm, top_k)
    elif kind == "exact":
        exact(int(rest[0]), int(rest[1]))
    elif kind == "sparsity":
        sparsity(int(rest[0]), int(rest[1]))
    elif kind == "stable":
        stable()
    elif kind == "suggestions":
        suggestions()
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
