"""Every measure on a small scenario whose expected numbers were worked out by hand.

The scenario (days count from Monday 5 January 2026, events at noon; the period is the four
weeks 5 Jan..1 Feb, so "as of" is day 27.5):

program P1 (institution A, cadence 14); mentors M1 (A, cap 2), M2 (B, cap 1), M3 (A, cap 3,
paused); mentees E1 (A, day 0), E2 (A, day 1), E3 (B, day 2), E4 (A, day 3), E5 (B, day 10,
withdrawn from P1 on day 20).
X1 M1-E1 proposed 2, started 4, meetings day 5 (60 min) and 12 (90 min)
X2 M1-E2 proposed 3, started 8, agreed cadence 7, meeting day 9 (30 min)      -> stalled
X3 M2-E3 proposed 4, started 6 with cadence 7, no meeting                      -> never met
X4 M3-E4 proposed 5, declined by the mentor on day 6
X5 M2-E4 proposed 7, started 10 with cadence 10, meeting day 11 (60), ended 20 (no_fit)
X6 M1-E4 proposed 22 as a rematch, pending
"""

from __future__ import annotations

import random
from datetime import date

import pytest

from services.analytics.measures import Period, Report, Scope
from services.analytics.projection import Projection
from services.analytics.scenario import Scenario, hand_computed

PERIOD = Period.of_days(date(2026, 1, 5), date(2026, 2, 1))


def build() -> Scenario:
    return hand_computed("n1")


def project(events) -> Projection:
    p = Projection()
    for name, payload in events:
        p.apply(name, payload)
    return p


@pytest.fixture(scope="module")
def program() -> Report:
    return Report(project(build().events), Scope("program", "n1", "P1"), PERIOD)


def test_enrolment(program: Report) -> None:
    assert program.enrolment() == {
        "mentors": 3, "mentees": 4,  # E5 withdrew from P1 on day 20
        "mentors_joined_in_period": 3, "mentees_joined_in_period": 4,
        "mentees_per_mentor": 1.33,  # 4 / 3
        "capacity_offered": 3,  # M1 2 + M2 1; M3 is paused
        "capacity_used": 3,  # X1, X2, X3 open
        "capacity_used_pct": 100.0,
    }


def test_matching(program: Report) -> None:
    m = program.matching()
    assert (m["mentees_eligible"], m["mentees_matched"], m["match_rate_pct"]) == (4, 3, 75.0)
    # E4 waits since X5 ended on day 20: 27.5 - 20
    assert (m["mentees_waiting"], m["waiting_days_median"], m["waiting_days_max"]) == (1, 7.5, 7.5)
    assert m["longest_waiting"] == [{"mentee_id": "E4", "name": "Student E4", "days": 7.5}]
    # X1 4-0, X2 8-1, X3 6-2, X5 10-3: [4, 7, 4, 7] -> median 5.5, p90 (rank 4 of 4) 7
    assert (m["time_to_match_n"], m["time_to_match_days_median"], m["time_to_match_days_p90"]) == (4, 5.5, 7.0)
    assert (m["proposals"], m["proposals_accepted"], m["proposals_declined"], m["proposals_pending"]) == (6, 4, 1, 1)
    assert m["rematches"] == 1


def test_engagement(program: Report) -> None:
    assert program.engagement() == {
        "mentorships_open": 3, "active": 1, "stalled": 1, "never_met": 1,
        "active_pct": 33.3, "stalled_pct": 33.3, "never_met_pct": 33.3,
        "meetings": 4, "hours": 4.0,  # 60 + 90 + 30 + 60 minutes
        # open days: X1 23.5, X2 19.5, X3 21.5, X5 10 = 74.5 -> 2.48 months, 4 * 30 / 74.5
        "mentorship_months": 2.48, "meetings_per_mentorship_month": 1.61,
        # 23.5/14 + 19.5/7 + 21.5/7 + 10/10 = 8.536; 4 / 8.536
        "expected_meetings": 8.5, "cadence_adherence_pct": 46.9,
    }


def test_stalled_pairs_listed_longest_first(program: Report) -> None:
    rows = program.stalled()
    assert [(r["mentorship_id"], r["status"], r["days_without_meeting"], r["cadence_days"]) for r in rows] == [
        ("X3", "never_met", 21.5, 7),  # started day 6, no meeting
        ("X2", "stalled", 18.5, 7),  # last meeting day 9, agreed cadence 7
    ]
    assert rows[1]["mentor_name"] == "Dr One" and rows[1]["mentee_name"] == "Student E2"


def test_outcomes(program: Report) -> None:
    o = program.outcomes()
    assert (o["goals_set"], o["goals_achieved"], o["milestones"]) == (2, 1, 1)
    mentee, mentor = o["satisfaction"]["mentee"], o["satisfaction"]["mentor"]
    assert (mentee["responses"], mentee["mean"]) == (4, 4.0)  # 5, 2, 5, 4
    assert mentee["distribution"] == {"1": 0, "2": 1, "3": 0, "4": 1, "5": 2}
    assert mentee["working_pct"] == 75.0
    assert mentee["nps"] == {"responses": 2, "promoters": 1, "passives": 0, "detractors": 1, "score": 0}
    assert (mentor["responses"], mentor["mean"]) == (1, 4.0)
    assert mentor["nps"]["score"] == 100
    # 10, 3, 9: two promoters, one detractor of three -> 33
    assert o["nps"] == {"responses": 3, "promoters": 2, "passives": 0, "detractors": 1, "score": 33}
    assert (o["ended"], o["completed"], o["ended_early"], o["completion_pct"]) == (1, 0, 1, 0.0)
    assert o["end_reasons"] == {"no_fit": 1}


def test_mentor_load_and_recognition(program: Report) -> None:
    load = program.mentor_load()
    assert load["mentors"] == 3
    assert load["load_distribution"] == {"0": 1, "1": 1, "2": 1, "3+": 0}  # M3, M2, M1
    assert load["mentees_per_mentor_mean"] == 1.0
    assert load["meetings_per_mentor_mean"] == 1.33  # M1 3, M2 1, M3 0
    # M1's mentees rated 5, 5, 4 (mean 4.67, three ratings); M2 has one rating of 2
    assert [(r["mentor_id"], r["ratings"], r["rating_mean"], r["public"]) for r in load["recognised"]] == [
        ("M1", 3, 4.67, True)
    ]
    assert [r["mentor_id"] for r in program.recognition(public_only=True)] == ["M1"]


def test_weekly_series(program: Report) -> None:
    weeks = program.series()
    assert [w["week_start"] for w in weeks] == ["2026-01-05", "2026-01-12", "2026-01-19", "2026-01-26"]
    assert [w["mentees_joined"] for w in weeks] == [4, 0, 0, 0]
    assert [w["mentors_joined"] for w in weeks] == [3, 0, 0, 0]
    assert [w["proposals"] for w in weeks] == [4, 1, 0, 1]
    assert [w["started"] for w in weeks] == [2, 2, 0, 0]
    assert [w["ended"] for w in weeks] == [0, 0, 1, 0]
    assert [w["meetings"] for w in weeks] == [1, 3, 0, 0]
    assert [w["hours"] for w in weeks] == [1.0, 3.0, 0.0, 0.0]
    assert [w["open_mentorships"] for w in weeks] == [2, 4, 3, 3]
    assert [w["satisfaction_mean"] for w in weeks] == [None, 4.5, 3.67, None]


def test_institution_scope_files_mentorships_under_the_mentees_institution() -> None:
    report = Report(project(build().events), Scope("institution", "n1", "A"), PERIOD)
    assert {m.mentorship_id for m in report.mentorships} == {"X1", "X2", "X4", "X5", "X6"}
    e = report.enrolment()
    assert (e["mentors"], e["mentees"]) == (2, 3)  # M1, M3; E1, E2, E4
    assert report.matching()["match_rate_pct"] == 66.7  # E1, E2 of E1, E2, E4


def test_network_scope_counts_a_program_withdrawal_as_still_registered() -> None:
    report = Report(project(build().events), Scope("network", "n1"), PERIOD)
    assert (report.enrolment()["mentors"], report.enrolment()["mentees"]) == (3, 5)
    assert report.engagement()["mentorships_open"] == 3


def test_an_earlier_period_sees_the_state_of_its_own_end() -> None:
    early = Period.of_days(date(2026, 1, 5), date(2026, 1, 11))  # as of day 6.5
    report = Report(project(build().events), Scope("program", "n1", "P1"), early)
    assert report.matching()["mentees_matched"] == 2  # X1 (day 4), X3 (day 6)
    assert report.engagement()["mentorships_open"] == 2
    assert report.engagement()["never_met"] == 0  # X3 started half a day ago


def test_equity_suppresses_cells_under_five_people() -> None:
    s = Scenario("n1")
    s.program("P", "A")
    s.person("mentor", "M", "A", 0, "P")
    for i in range(7):
        s.person("mentee", f"W{i}" if i < 5 else f"N{i}", "A", 0, "P")
    for i in range(5):
        s.attributes(f"W{i}", gender="woman")
    s.attributes("N5", gender="man")
    s.attributes("N6", gender="man")
    for i in range(3):
        s.propose(f"Y{i}", "P", "M", f"W{i}", 1)
        s.start(f"Y{i}", 1 + i)
    report = Report(project(s.events), Scope("program", "n1", "P"), PERIOD)
    cells = {(c["attribute"], c["value"]): c for c in report.equity()}
    assert set(cells) == {("gender", "man"), ("gender", "woman")}
    man = cells[("gender", "man")]
    assert man["suppressed"] and man["mentees"] is None and man["match_rate_pct"] is None
    woman = cells[("gender", "woman")]
    assert (woman["suppressed"], woman["mentees"], woman["match_rate_pct"]) == (False, 5, 60.0)
    assert woman["time_to_match_days_median"] is None  # only 3 matched: too few to show


def test_any_order_and_any_repetition_give_the_same_numbers() -> None:
    events = build().events
    expected = Report(project(events), Scope("network", "n1"), PERIOD).summary()
    for seed in range(5):
        shuffled = list(events) * 2
        random.Random(seed).shuffle(shuffled)
        assert Report(project(shuffled), Scope("network", "n1"), PERIOD).summary() == expected
    assert Report(project(events[::-1]), Scope("network", "n1"), PERIOD).summary() == expected


def test_erasure_removes_names_and_attributes_and_keeps_counts() -> None:
    s = build()
    s.attributes("E2", gender="woman")
    before = project(s.events)
    s.erase("M1", 25)
    s.erase("E2", 25)
    s.profile("M1", version=2, name="Dr One Again", public=True)  # late update of an erased person
    after = project(s.events)
    scope = Scope("program", "n1", "P1")
    assert Report(after, scope, PERIOD).summary()["matching"] == {
        **Report(before, scope, PERIOD).summary()["matching"],
        "longest_waiting": Report(after, scope, PERIOD).matching()["longest_waiting"],
    }
    assert after.people["M1"].name is None and after.people["E2"].name is None
    assert after.people["E2"].attributes[1] == {}
    stalled = Report(after, scope, PERIOD).stalled()
    assert stalled[1]["mentor_name"] is None and stalled[1]["mentee_name"] is None
    assert Report(after, scope, PERIOD).recognition(public_only=True) == []
    assert Report(after, scope, PERIOD).enrolment() == Report(before, scope, PERIOD).enrolment()


def test_columns_kept_up_to_date_between_reports_equal_columns_built_at_once() -> None:
    """Reports in between events (the columns catch up row by row) change no number."""
    from services.analytics.synthetic import network

    period = Period.of_days(date(2026, 1, 5), date(2026, 5, 4))
    a = network(150, days=120, chapters=2, seed=3, network_id="na").events
    b = network(150, days=120, chapters=2, seed=4, network_id="nb").events
    live = Projection()
    for i, (name, payload) in enumerate(a + b):
        live.apply(name, payload)
        if i % 700 == 0:
            Report(live, Scope("network", "nb"), period).summary()
            Report(live, Scope("network", "na"), period).series()
    for network_id, events in (("na", a), ("nb", b)):
        scope = Scope("network", network_id)
        fresh = Report(project(events), scope, period)
        caught_up = Report(live, scope, period)
        assert caught_up.summary() == fresh.summary()
        assert caught_up.series() == fresh.series()
        assert caught_up.equity() == fresh.equity()
        assert caught_up.stalled() == fresh.stalled()
        assert caught_up.mentor_rows() == fresh.mentor_rows()
        assert fresh.summary()["outcomes"]["satisfaction"]["mentee"]["responses"] > 0


def test_a_scope_without_events_reports_zeros_and_nothing_to_divide() -> None:
    from services.analytics import reports_api

    for scope in (Scope("network", "empty"), Scope("institution", "empty", "i"), Scope("program", "empty", "p")):
        for name in reports_api.REPORTS:
            body = reports_api.build(Projection(), name, scope, PERIOD)
            assert reports_api.to_csv(body).count("\n") >= 1
        total = reports_api.build(Projection(), "summary", scope, PERIOD)["total"]
        assert total["enrolment"]["mentees"] == 0 and total["matching"]["match_rate_pct"] is None
        assert total["engagement"]["meetings_per_mentorship_month"] is None


def test_stored_facts_come_back_as_the_payloads_minus_what_is_never_kept() -> None:
    from services.analytics.facts import DROPPED, payload_of, to_fact

    s = build()
    for event, (_, payload) in zip(s.cloud_events(), s.events, strict=True):
        fact = to_fact(event, payload, erased=False)
        assert "email" not in fact["data"] and "text" not in fact["data"]
        back = payload_of(fact)
        for name in type(payload).model_fields:
            if name in fact["data"]:
                assert getattr(back, name) == getattr(payload, name), (event.type, name)
            else:
                assert name in DROPPED or name == "mentee"
    reason = next(to_fact(e, p, False) for e, (_, p) in zip(s.cloud_events(), s.events) if e.type == "MentorshipEnded")
    assert reason["data"]["reason"] == "no_fit"  # a code a measure needs, kept
    event, payload = next((e, p) for e, (_, p) in zip(s.cloud_events(), s.events) if e.type == "MenteeRegistered")
    assert "display_name" in to_fact(event, payload, erased=False)["data"]
    assert "display_name" not in to_fact(event, payload, erased=True)["data"]


def test_networks_with_the_same_institution_ids_never_mix() -> None:
    """Institution ids are unique only within a network: a second network that also has
    institutions "A" and "B" changes nothing in the first one's institution reports."""
    from services.analytics.measures import chapters

    institution_fields = ("institution_id", "mentor_institution_id", "mentee_institution_id")
    other = [
        (name, payload.model_copy(update={
            f: getattr(payload, f)[: -len("-n2")] for f in institution_fields
            if isinstance(getattr(payload, f, None), str)
        }))
        for name, payload in hand_computed("n2").suffixed("-n2").events
    ]
    alone = project(build().events)
    together = project(build().events + other)
    assert chapters(together, "n1") == chapters(alone, "n1") == ["A", "B"]
    for institution in ("A", "B"):
        scope = Scope("institution", "n1", institution)
        mine, mixed = Report(alone, scope, PERIOD), Report(together, scope, PERIOD)
        assert mixed.enrolment() == mine.enrolment()
        assert mixed.engagement() == mine.engagement()
        assert mixed.matching() == mine.matching()
    assert Report(together, Scope("institution", "n2", "A"), PERIOD).engagement()["meetings"] == (
        Report(alone, Scope("institution", "n1", "A"), PERIOD).engagement()["meetings"])
