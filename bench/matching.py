"""Matching at synthetic sizes: every row of the matching engine's targets table, each run three
times in fresh processes (min / median / max, with the load average), then the independent
exact optimum at a small size and top-10 suggestions.

    python bench/matching.py                     # the targets table, then the extras
    python bench/matching.py batch 20000 5000    # one batch match: mentees mentors [options]
        --blank 0.5      half the people registered and never filled in the profile
        --fair           fairness (the most mentees with a first mentor)
        --cap 2          at most 2 mentees of one institution to mentors of another
        --greedy         the best-first baseline instead
    python bench/matching.py stable [--wanted 2]  # deferred acceptance, 45,000 x 6,400
    python bench/matching.py exact 1000 250      # the flow against scipy's Hungarian method
    python bench/matching.py suggestions         # top-10 among 5,000 mentors

Peak memory is the process's maximum resident set (ru_maxrss), synthetic data included. The
machine is shared: the load average and the CPU time of the process are printed next to the
wall times (CPU time is the steadier figure under load). One BLAS thread (see `_child`).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import replace
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
from services.matching.stable import (  # noqa: E402
    blocking_pairs,
    blocking_pairs_by_rounds,
    deferred_acceptance,
    deferred_acceptance_by_rounds,
)
from services.matching.suggestions import suggest  # noqa: E402
from services.matching.table import MentorTable  # noqa: E402

RUNS = 3
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

TARGETS = [
    ("20k x 5k, proven optimal over all pairs", ["batch", "20000", "5000"], "< 5 s proven"),
    ("20k x 5k with 50 % blank profiles", ["batch", "20000", "5000", "--blank", "0.5"],
     "0 empty, proven"),
    ("100k x 20k", ["batch", "100000", "20000"], "< 60 s proven, < 2 GB"),
    ("300 x 80, institution cap 2, fair", ["batch", "300", "80", "--cap", "2", "--fair"],
     "optimum, < 5 s, same answer at any load"),
    ("deferred acceptance 45k x 6.4k", ["stable"], "< 1 s"),
    ("deferred acceptance 45k x 6.4k, two mentors per mentee", ["stable", "--wanted", "2"],
     "< 1 s"),
]


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


def blank(mentees: list[Mentee], mentors: list[Mentor], share: float, seed: int = 11):
    """`share` of each side registered and never filled in the profile: only the institution,
    career stage and (mentors) capacity are known, as `profile_mapping` reads such a person."""
    rnd = random.Random(seed)
    empty = frozenset()
    mentees = [
        replace(e, needs=(), mentors_wanted=1, specialties=empty, languages=empty,
                meeting_modes=empty, utc_offset=None, affinity_preferences=empty,
                institution_preference=None)
        if rnd.random() < share else e
        for e in mentees
    ]
    mentors = [
        replace(m, help_offered=empty, specialties=empty, languages=empty, meeting_modes=empty,
                utc_offset=None, affinities=empty, trained=False)
        if rnd.random() < share else m
        for m in mentors
    ]
    return mentees, mentors


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f}/{five:.1f}"


def emit(**values) -> None:
    print("RESULT " + json.dumps(values), flush=True)


def batch(args: list[str]) -> None:
    n_mentees, n_mentors = int(args[0]), int(args[1])
    opts = args[2:]
    share = float(opts[opts.index("--blank") + 1]) if "--blank" in opts else 0.0
    cap = int(opts[opts.index("--cap") + 1]) if "--cap" in opts else None
    fair = "--fair" in opts
    mentees, mentors = synthetic(n_mentees, n_mentors)
    if share:
        mentees, mentors = blank(mentees, mentors, share)
    data_mib = peak_mib()
    program = Program(id="", type="near-peer")
    before = load()
    started, cpu = time.perf_counter(), time.process_time()
    if "--greedy" in opts:
        result = greedy_match(mentees, mentors, program)
    else:
        result = batch_match(mentees, mentors, program, fair=fair, institution_cap=cap,
                             with_explanations=False)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    proof = result.certificate
    answer = sorted((a.mentee_id, a.mentor_id) for a in result.assignments)
    levels = {  # the capped integer program's levels: nodes explored, proven or not
        name: {"nodes": level.get("nodes", 0), "proven": level.get("proven")}
        for name, level in proof.get("levels", {}).items()
    }
    emit(wall=wall, cpu=cpu, candidates=result.timings.get("candidates", 0.0),
         solve=result.timings.get("solve", 0.0), peak=peak_mib(), data=data_mib,
         filled=len(result.assignments), slots=len(result.assignments) + len(result.unfilled),
         mentees=result.mentees_matched, points=result.total_points,
         proven=result.proven_optimal, solver=result.solver, levels=levels,
         rounds=proof.get("rounds"),
         pairs_added=proof.get("pairs_added"), pairs_scored=proof.get("pairs_scored"),
         shortlist_filled=proof.get("shortlist_filled"),
         shortlist_points=proof.get("shortlist_points"),
         answer=hashlib.sha256(repr(answer).encode()).hexdigest()[:12], load=before)


def residency(applicants: int = 45_000, programs: int = 6_400, length: int = 12):
    """Lists shaped like the US residency match: some programs far more wanted than others."""
    rnd = random.Random(3)
    names = [f"p{j}" for j in range(programs)]
    cum, acc = [], 0.0
    for j in range(programs):
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
    return mentee_prefs, mentor_prefs, caps


def stable(args: list[str]) -> None:
    wanted = int(args[args.index("--wanted") + 1]) if "--wanted" in args else 1
    mentee_prefs, mentor_prefs, caps = residency()
    before = load()
    if wanted == 1:
        started, cpu = time.perf_counter(), time.process_time()
        match = deferred_acceptance(mentee_prefs, mentor_prefs, caps)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        matched = sum(1 for m in match.values() if m is not None)
        blocking = len(blocking_pairs(match, mentee_prefs, mentor_prefs, caps))
    else:  # each applicant wants `wanted` mentors, ranking the same list for each
        lists = {e: [prefs] * wanted for e, prefs in mentee_prefs.items()}
        started, cpu = time.perf_counter(), time.process_time()
        got, rooms = deferred_acceptance_by_rounds(lists, mentor_prefs, caps)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        matched = sum(1 for ms in got.values() for m in ms if m is not None)
        blocking = len(blocking_pairs_by_rounds(got, lists, mentor_prefs, rooms))
    emit(wall=wall, cpu=cpu, peak=peak_mib(), matched=matched, places=sum(caps.values()),
         blocking=blocking, load=before)


def scipy_optimum(mentees: list[Mentee], mentors: list[Mentor], program: Program):
    """(slots filled, points) of scipy's Hungarian algorithm on the capacity-expanded matrix: a
    row per wanted mentor (for a named need only mentors offering it), a column per place, an
    eligible pair worth more than any sum of scores so that filling comes first."""
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
    return int(taken.sum()), total, value.shape


def exact(n_mentees: int, n_mentors: int) -> None:
    """The flow (shortlist, then certificate) against scipy's exact optimum, one mentor each."""
    mentees, mentors = synthetic(n_mentees, n_mentors)
    one_each = [replace(e, mentors_wanted=1) for e in mentees]
    program = Program()
    started = time.perf_counter()
    filled, total, shape = scipy_optimum(one_each, mentors, program)
    took = time.perf_counter() - started
    flow = batch_match(one_each, mentors, program, with_explanations=False)
    print(
        f"{n_mentees:,} x {n_mentors:,}, one mentor each: scipy linear_sum_assignment on the "
        f"{shape[0]} x {shape[1]} capacity-expanded matrix ({took:.2f} s) fills {filled}, "
        f"{total / 10:.1f} points; the flow {sum(flow.timings.values()):.2f} s, fills "
        f"{len(flow.assignments)}, {flow.total_score:.1f} points, proven "
        f"{flow.proven_optimal}: gap {filled - len(flow.assignments)} slots, "
        f"{(total - flow.total_points) / 10:.1f} points", flush=True,
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
        f"(the mentor table, built once: {built * 1000:.0f} ms) [load {before}]", flush=True,
    )


def _child(*args: str) -> dict | None:
    # One BLAS thread: on a 2-core machine shared with other work, OpenBLAS's second thread
    # spin-waits for a core and doubles the CPU spent. Set OPENBLAS_NUM_THREADS to override.
    env = {**os.environ, "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1")}
    out = subprocess.run([sys.executable, __file__, *args], check=True, env=env,
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
        print(line, flush=True)
    return None


def _spread(values: list[float], unit: str = " s", digits: int = 2) -> str:
    lo, mid, hi = min(values), statistics.median(values), max(values)
    return f"{lo:.{digits}f} / {mid:.{digits}f} / {hi:.{digits}f}{unit}"


def _row(case: str, target: str, results: list[dict]) -> str:
    r = results[0]
    walls = [x["wall"] for x in results]
    cpus = [x["cpu"] for x in results]
    loads = ", ".join(x["load"] for x in results)
    if "filled" in r:
        proven = all(x["proven"] for x in results)
        same = len({x["answer"] for x in results}) == 1
        if r.get("levels"):  # the institution cap: integer programs by levels
            how = ", ".join(f"{name}: {lv['nodes']:,} node{'s' * (lv['nodes'] != 1)}"
                            for name, lv in r["levels"].items())
            how = f"by levels ({how})"
        else:
            how = f"in {r['rounds']} solves"
        what = (
            f"{'proven' if proven else 'NOT proven'} {how} "
            f"({r['pairs_added'] or 0:,} pairs added, {r['pairs_scored'] or 0:,} scored); "
            f"{r['filled']:,}/{r['slots']:,} slots filled, {r['points'] / 10:,.1f} points"
        )
        if r.get("shortlist_filled") is not None:
            what += (
                f"; the first network alone: {r['shortlist_filled']:,} filled, "
                f"{(r['points'] - r['shortlist_points']) / 10:,.1f} points less"
            )
        what += f"; peak {max(x['peak'] for x in results):,.0f} MiB"
        what += "; same answer every run" if same else "; ANSWERS DIFFER between runs"
    else:
        what = (f"{r['matched']:,} matched of {r['places']:,} places, blocking pairs "
                f"{r['blocking']}, peak {r['peak']:,.0f} MiB")
    return (f"| {case} | {_spread(walls)} (CPU {_spread(cpus)}) | {what} | {target} | "
            f"load {loads} |")


def main(argv: list[str]) -> None:
    if not argv:
        threads = os.environ.get("OPENBLAS_NUM_THREADS", "1")
        print(f"machine: {os.cpu_count()} cores, load {load()}; OpenBLAS threads {threads}; "
              f"each row run {RUNS} times in fresh processes: wall min / median / max", flush=True)
        print("| case | wall (CPU) | result | target | load average (1 min/5 min) per run |")
        print("|---|---|---|---|---|", flush=True)
        for case, args, target in TARGETS:
            results = [_child(*args) for _ in range(RUNS)]
            print(_row(case, target, [r for r in results if r]), flush=True)
        _child("exact", "1000", "250")
        _child("suggestions")
        return
    kind, rest = argv[0], argv[1:]
    if kind == "batch":
        batch(rest)
    elif kind == "stable":
        stable(rest)
    elif kind == "exact":
        exact(int(rest[0]), int(rest[1]))
    elif kind == "suggestions":
        suggestions()
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
