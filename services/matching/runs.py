"""Matching runs of a program (pure: no I/O): who is waiting, how many places each mentor
has left, the run itself (min-cost flow or deferred acceptance, from the algorithm modules)
and the hard-constraint check a coordinator's edit or hand proposal must pass.

A mentor's places left = capacity - active mentorships - proposals still open (anywhere in
the network: capacity is the person's, not the program's). A mentee waits in a program when
they still want mentors there (up to the program's `max_mentors_per_mentee`) and their last
mentorship there did not end without a rematch.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.matching.assignment import batch_match
from services.matching.pool_models import constraints_of, mentee_model, mentor_model, program_model
from services.matching.scoring import Constraints, Explanation, Mentee, Mentor, Program, explain
from services.matching.stable import stable_match
from services.matching.thin_profiles import thin_profiles

ALGORITHMS = ("min-cost-flow", "deferred-acceptance")
DEFAULT_SETTINGS: dict[str, Any] = {"weights": {}, "fair": False, "institution_cap": None, "top_k": 30}


@dataclass
class Inputs:
    """Everything a run reads, gathered by the API from matching's own collections."""

    program: Mapping[str, Any]
    settings: Mapping[str, Any]
    mentors: Sequence[Mapping[str, Any]]  # pool documents enrolled as mentors
    mentees: Sequence[Mapping[str, Any]]  # pool documents enrolled as mentees
    mentorships: Sequence[Mapping[str, Any]]  # the network's mentorships (summary fields)
    preferences: Sequence[Mapping[str, Any]] = ()

    # derived
    remaining: dict[str, int] = field(default_factory=dict)
    wanted: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.remaining = places_left(self.mentors, self.mentorships)
        self.wanted = still_wanted(self.mentees, self.mentorships, self.program)

    @property
    def model_program(self) -> Program:
        return program_model(self.program, self.settings)

    @property
    def constraints(self) -> Constraints:
        return constraints_of(self.mentors, self.mentorships)

    def mentor_models(self) -> list[Mentor]:
        return [mentor_model(m, self.remaining.get(m["_id"], 0)) for m in self.mentors]

    def mentee_models(self) -> list[Mentee]:
        pid = self.program["_id"]
        return [mentee_model(e, pid, self.wanted[e["_id"]]) for e in self.mentees if self.wanted.get(e["_id"], 0) > 0]


def places_left(mentors: Sequence[Mapping[str, Any]], mentorships: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    taken: dict[str, int] = {}
    for m in mentorships:
        if m["status"] in ("proposed", "active"):
            taken[m["mentor_id"]] = taken.get(m["mentor_id"], 0) + 1
    return {m["_id"]: max(0, int(m.get("capacity") or 0) - taken.get(m["_id"], 0)) for m in mentors}


def still_wanted(
    mentees: Sequence[Mapping[str, Any]], mentorships: Sequence[Mapping[str, Any]], program: Mapping[str, Any]
) -> dict[str, int]:
    pid = program["_id"]
    limit = int(program.get("max_mentors_per_mentee") or 1)
    open_count: dict[str, int] = {}
    last_end: dict[str, Mapping[str, Any]] = {}
    for m in mentorships:
        if m.get("program_id") != pid:
            continue
        mentee = m["mentee_id"]
        if m["status"] in ("proposed", "active"):
            open_count[mentee] = open_count.get(mentee, 0) + 1
        elif m["status"] == "ended":
            previous = last_end.get(mentee)
            if previous is None or m["ended_at"] > previous["ended_at"]:
                last_end[mentee] = m
    out = {}
    for e in mentees:
        asked = int((e.get("mentee_profile") or {}).get("mentors_wanted") or 1)
        done = e["_id"] in last_end and not last_end[e["_id"]].get("rematch")
        out[e["_id"]] = 0 if done else max(0, min(asked, limit) - open_count.get(e["_id"], 0))
    return out


def is_rematch(mentee_id: str, program_id: str, mentorships: Sequence[Mapping[str, Any]]) -> bool:
    return any(m["mentee_id"] == mentee_id and m.get("program_id") == program_id and m["status"] == "ended"
               and m.get("rematch") for m in mentorships)


def public_lines(explanation: Explanation) -> list[str]:
    """The explanation as participants and other services may read it: identity attributes
    are never shown to other participants, and MatchProposed leaves the service. An affinity
    line that names attribute tokens ("name:value" / "name=value") is reworded to say only
    whether one the mentee asked for is shared."""
    if not explanation.eligible:
        return explanation.lines()
    lines = []
    for line, c in zip(explanation.lines(), explanation.contributions, strict=True):
        if c.factor == "affinity" and (":" in c.text or "=" in c.text):
            shared = "shares an affinity" if c.points > 0 else "shares none of the affinities"
            line = f"{line.split(' — ')[0]} — {shared} the mentee asked to be matched on"
        lines.append(line)
    return lines


def _proposal(mentee_id: str, mentor_id: str, need: str | None, explanation: Explanation | None) -> dict[str, Any]:
    """A proposal as the run keeps it: the score is the explanation's integer points / 10, the
    same number its summary shows."""
    return {"mentee_id": mentee_id, "mentor_id": mentor_id, "need": need,
            "score": explanation.score if explanation else 0.0,
            "explanation": public_lines(explanation) if explanation else []}


def run(inputs: Inputs, algorithm: str, seed: int = 0) -> dict[str, Any]:
    """A draft run: parameters (with the tie-breaking `seed`), timings in ms, counts, proposals
    with explanations, whether the batch match is proven optimal over every eligible pair, and
    the people whose profiles are too thin to match on."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}")
    settings = {**DEFAULT_SETTINGS, **dict(inputs.settings or {})}
    program, constraints = inputs.model_program, inputs.constraints
    mentors, mentees = inputs.mentor_models(), inputs.mentee_models()
    extra: dict[str, Any] = {}
    if algorithm == "min-cost-flow":
        result = batch_match(
            mentees, mentors, program, constraints,
            top_k=settings["top_k"], fair=settings["fair"], institution_cap=settings["institution_cap"],
            seed=seed,
        )
        proposals = [_proposal(a.mentee_id, a.mentor_id, a.need, a.explanation) for a in result.assignments]
        timings = {"candidates": result.timings.get("candidates", 0.0), "solve": result.timings.get("solve", 0.0)}
        extra["solver"] = result.solver
        extra["proven_optimal"] = result.proven_optimal
        extra["certificate"] = result.certificate
    else:
        started = time.perf_counter()
        mentee_prefs, mentor_prefs = ranked_lists(inputs, mentees, mentors)
        prepared = time.perf_counter()
        stable = stable_match(mentees, mentors, mentee_prefs, mentor_prefs, program, constraints)
        solved = time.perf_counter()
        proposals = [_proposal(a.mentee_id, a.mentor_id, a.need, a.explanation) for a in stable.assignments]
        extra["stable"] = stable.stable
        timings = {"candidates": prepared - started, "solve": solved - prepared}
    names = {d["_id"]: d.get("display_name") or "" for d in (*inputs.mentees, *inputs.mentors)}
    return {
        "algorithm": algorithm,
        "parameters": {**settings, "program_type": program.type, "institution_rule": program.institution_rule,
                       "weights": program.weights.as_dict(), "seed": seed},
        "timings_ms": {k: round(v * 1000, 3) for k, v in timings.items()},
        # Lists, not maps keyed by id: a document key may not contain "." or start with "$".
        "inputs": {"mentees": [{"mentee_id": e.id, "wanted": e.mentors_wanted} for e in mentees],
                   "mentors": [{"mentor_id": m.id, "places": m.capacity} for m in mentors],
                   "forbidden_pairs": sum(len(s) for s in (constraints.boundaries, constraints.ended, constraints.declined))},
        "mentees_eligible": len(mentees),
        **totals(proposals),
        "proposals": proposals,
        "thin_profiles": thin_profiles(mentees, mentors, program.weights, names),
        **extra,
    }


def totals(proposals: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts of a run; the total is summed in integer points, as the solver sums them."""
    return {"mentees_matched": len({p["mentee_id"] for p in proposals}),
            "total_score": sum(round(p["score"] * 10) for p in proposals) / 10}


def ranked_lists(
    inputs: Inputs, mentees: Sequence[Mentee], mentors: Sequence[Mentor]
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """The ranked lists of both sides as people gave them, for the people of this run
    (`stable.stable_match` strikes the pairs the hard constraints forbid)."""
    mentee_prefs: dict[str, list[str]] = {e.id: [] for e in mentees}
    mentor_prefs: dict[str, list[str]] = {m.id: [] for m in mentors}
    for pref in inputs.preferences:
        person, ranked = pref["person_id"], list(dict.fromkeys(pref.get("ranked") or ()))
        if pref["role"] == "mentee" and person in mentee_prefs:
            mentee_prefs[person] = ranked
        elif pref["role"] == "mentor" and person in mentor_prefs:
            mentor_prefs[person] = ranked
    return mentee_prefs, mentor_prefs


def check_pair(
    inputs: Inputs,
    mentee_id: str,
    mentor_id: str,
    need: str | None,
    alongside: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The proposal for a pair a person chose (a draft edit or a hand proposal), or
    `PairRejected` with the hard constraint it breaks. `alongside`: the other proposals of the
    same draft, which take places too."""
    mentee_doc = next((e for e in inputs.mentees if e["_id"] == mentee_id), None)
    mentor_doc = next((m for m in inputs.mentors if m["_id"] == mentor_id), None)
    if mentee_doc is None:
        raise PairRejected(f"{mentee_id} is not a mentee of this program.")
    if mentor_doc is None:
        raise PairRejected(f"{mentor_id} is not a mentor of this program.")
    if any(p["mentee_id"] == mentee_id and p["mentor_id"] == mentor_id for p in alongside):
        raise PairRejected("This pair is already in the run.")
    for m in inputs.mentorships:
        if m["mentee_id"] == mentee_id and m["mentor_id"] == mentor_id and m["status"] in ("proposed", "active"):
            raise PairRejected(f"This pair already has a {m['status']} mentorship.")
    places = inputs.remaining.get(mentor_id, 0) - sum(p["mentor_id"] == mentor_id for p in alongside)
    if places <= 0:
        raise PairRejected("The mentor has no free place left (capacity reached by active mentorships and open proposals).")
    wanted = inputs.wanted.get(mentee_id, 0) - sum(p["mentee_id"] == mentee_id for p in alongside)
    if wanted <= 0:
        raise PairRejected("The mentee already has as many mentors (active or proposed) as they want in this program.")
    program, constraints = inputs.model_program, inputs.constraints
    mentee = mentee_model(mentee_doc, inputs.program["_id"], wanted)
    mentor = mentor_model(mentor_doc, places)
    if need is not None and need not in mentor.help_offered:
        raise PairRejected(f"The mentor does not offer help with {need!r}.")
    explanation = explain(mentee, mentor, program, constraints)
    if not explanation.eligible:
        raise PairRejected(f"This pair cannot be matched: {explanation.reason}.")
    return _proposal(mentee_id, mentor_id, need, explanation)


class PairRejected(Exception):
    """A hard constraint forbids the pair; the message names it."""
