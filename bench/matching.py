"""Batch matching at synthetic sizes: candidate generation and solving time, peak memory,
mentees matched and total score, next to a greedy best-first baseline.

    python bench/matching.py                # 2,000 mentees x 500 mentors
    python bench/matching.py 20000 5000     # other sizes: mentees mentors [top_k]
"""

from __future__ import annotations

import random
import sys
import time
import resource
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.matching.assignment import batch_match, greedy_match  # noqa: E402
from services.matching.scoring import Mentee, Mentor, Program  # noqa: E402

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
    capacity = sum(m.capacity for m in mentors)
    slots = sum(max(1, e.mentors_wanted) for e in mentees)
    print(f"{n_mentees} mentees ({slots} slots) x {n_mentors} mentors (capacity {capacity}), top_k={top_k}")
    program = Program()
    run("min-cost flow", lambda: batch_match(mentees, mentors, program, top_k=top_k, with_explanations=False))
    run("fair flow", lambda: batch_match(mentees, mentors, program, top_k=top_k, fair=True, with_explanations=False))
    run("greedy", lambda: greedy_match(mentees, mentors, program, top_k=top_k))


if __name__ == "__main__":
    main()
