"""The life of a mentorship as pure rules: steps, their conditions, times and events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.matching import lifecycle
from services.matching.lifecycle import LifecycleError
from shared.events.schemas import MilestoneAchieved

T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def proposed(**program) -> dict:
    doc, events = lifecycle.proposal(
        mentorship_id="ms-1", network_id="n1",
        program={"_id": "p1", "institution_id": "i1", "cadence_days": 14, **program},
        mentor={"_id": "mentor", "institution_id": "i1"}, mentee={"_id": "mentee", "institution_id": "i2"},
        score=71.26, explanation=["needs: 5 of 5 — offers help with research"], need=None, run_id="run-1",
        is_rematch=False, at=T0,
    )
    assert [e.type for e in events] == ["MatchProposed"]
    return doc


def applied(doc: dict, step: lifecycle.Step) -> dict:
    """What the store's conditional update does, for the fields the rules read."""
    out = {**doc}
    for key, value in step.set.items():
        if key.startswith("accepted_by."):
            out["accepted_by"] = {**out["accepted_by"], key.split(".")[1]: value}
        elif "." not in key:
            out[key] = value
    for key, value in (step.push or {}).items():
        out[key] = [*out.get(key, []), value]
    return out


def active() -> dict:
    doc = proposed()
    doc = applied(doc, lifecycle.accept(doc, "mentee", "mentee", None, NOW)[0])
    return applied(doc, lifecycle.accept(doc, "mentor", "mentor", None, NOW)[0])


def test_a_proposal_carries_the_pair_both_institutions_score_and_explanation():
    doc = proposed()
    _, [event] = lifecycle.proposal(mentorship_id="ms-1", network_id="n1", program={"_id": "p1"},
                                    mentor={"_id": "a", "institution_id": "i1"},
                                    mentee={"_id": "b", "institution_id": "i2"}, score=1, explanation=["x"],
                                    need="research", run_id=None, is_rematch=True, at=T0)
    assert (doc["status"], doc["score"], doc["accepted_by"]) == ("proposed", 71.3, {"mentor": False, "mentee": False})
    assert event.subject == "ms-1" and event.data["mentee_institution_id"] == "i2"
    assert event.data["need"] == "research" and event.data["is_rematch"] is True


def test_it_starts_only_when_both_sides_have_accepted():
    doc = proposed()
    first, starts = lifecycle.accept(doc, "mentee", "p-mentee", None, NOW)
    assert not starts and [e.type for e in first.events] == ["MatchAccepted"]
    assert first.expect == {"status": "proposed", "accepted_by.mentee": False, "accepted_by.mentor": False}
    doc = applied(doc, first)
    second, starts = lifecycle.accept(doc, "mentor", "p-mentor", None, NOW)
    assert starts and [e.type for e in second.events] == ["MatchAccepted", "MentorshipStarted"]
    assert second.set["status"] == "active" and second.events[1].data["cadence_days"] == 14
    assert second.events[1].data["proposed_at"].startswith("2026-10-01")
    with pytest.raises(LifecycleError) as again:
        lifecycle.accept(doc, "mentee", "p-mentee", None, NOW)
    assert again.value.status == 409


def test_auto_accept_starts_at_the_proposal():
    doc, events = proposed(auto_accept=True), []
    lifecycle.auto_start(doc, events)
    assert doc["status"] == "active" and doc["started_at"] == T0
    assert [e.type for e in events] == ["MatchAccepted", "MatchAccepted", "MentorshipStarted"]
    assert all(e.data["by"] is None for e in events[:2])


def test_backfilled_times_are_checked_against_now_and_the_previous_step():
    doc = proposed()
    at = T0 + timedelta(days=2)
    step, _ = lifecycle.accept(doc, "mentee", "x", at, NOW)
    assert step.events[0].data["accepted_at"].startswith("2026-10-03") and step.set["last_step_at"] == at
    with pytest.raises(LifecycleError, match="in the future") as future:
        lifecycle.accept(doc, "mentee", "x", NOW + timedelta(minutes=1), NOW)
    assert future.value.status == 422
    with pytest.raises(LifecycleError, match="before the previous step"):
        lifecycle.accept(doc, "mentee", "x", T0 - timedelta(seconds=1), NOW)
    naive = lifecycle.when(datetime(2026, 10, 5, 8, 0), T0, NOW, "x")
    assert naive.tzinfo is not None and naive.hour == 8


def test_side_of_the_caller():
    doc = proposed()
    assert lifecycle.side_of(doc, "mentor", False, None) == "mentor"
    assert lifecycle.side_of(doc, "mentee", False, "mentee") == "mentee"
    assert lifecycle.side_of(doc, None, True, "mentor") == "mentor"
    with pytest.raises(LifecycleError) as outsider:
        lifecycle.side_of(doc, "someone", False, None)
    assert outsider.value.status == 403
    with pytest.raises(LifecycleError) as impersonating:
        lifecycle.side_of(doc, "mentee", False, "mentor")
    assert impersonating.value.status == 403
    with pytest.raises(LifecycleError) as unnamed:
        lifecycle.side_of(doc, None, True, None)
    assert unnamed.value.status == 422


def test_a_decline_closes_the_proposal_and_nothing_is_recorded_on_it_afterwards():
    doc = proposed()
    step = lifecycle.decline(doc, "mentor", "m", "on leave", None, NOW)
    assert step.set["status"] == "declined" and step.events[0].data["side"] == "mentor"
    doc = applied(doc, step)
    for attempt in (lambda: lifecycle.accept(doc, "mentee", "x", None, NOW),
                    lambda: lifecycle.agreement(doc, 14, "video", [], None, NOW),
                    lambda: lifecycle.end(doc, "completed", False, None, None, NOW)):
        with pytest.raises(LifecycleError) as closed:
            attempt()
        assert closed.value.status == 409


def test_what_an_active_mentorship_records():
    doc = active()
    agreement = lifecycle.agreement(doc, 21, "video", ["Abstract by March"], None, NOW)
    assert agreement.set["agreement"]["version"] == 1 and agreement.events[0].type == "AgreementRecorded"
    step, meeting = lifecycle.schedule(doc, "mentor", {"starts_at": NOW + timedelta(days=3), "duration_minutes": 30,
                                                      "mode": "virtual"}, NOW)
    doc = applied(doc, step)
    logged, held = lifecycle.log_meeting(doc, "mentee", {"meeting_id": meeting["meeting_id"], "held_at": NOW,
                                                         "duration_minutes": 45, "mode": "virtual",
                                                         "private_notes": "secret"}, NOW)
    assert logged.set["meetings.0.private_notes"] == "secret" and held["status"] == "held"
    assert "private_notes" not in logged.events[0].data and logged.events[0].data["meeting_id"] == meeting["meeting_id"]
    with pytest.raises(LifecycleError) as unknown:
        lifecycle.log_meeting(doc, "x", {"meeting_id": "nope", "held_at": NOW, "duration_minutes": 1, "mode": "v"}, NOW)
    assert unknown.value.status == 404
    with pytest.raises(LifecycleError, match="before the previous step"):
        lifecycle.log_meeting(doc, "x", {"held_at": T0 - timedelta(days=1), "duration_minutes": 1, "mode": "v"}, NOW)
    step, goal = lifecycle.set_goal(doc, {"text": "Publish", "category": "research", "target_date": None}, None, NOW)
    doc = applied(doc, step)
    done = lifecycle.progress(doc, goal["goal_id"], 100, "", None, NOW)
    assert done.events[0].data["achieved"] is True and done.set["goals.0.achieved"] is True
    assert lifecycle.progress(doc, goal["goal_id"], 40, "", None, NOW).events[0].data["achieved"] is False
    step, record = lifecycle.feedback(doc, "mentee", {"satisfaction": 5, "working": True, "comment": "great"}, None, NOW)
    assert "comment" not in step.events[0].data and record["comment"] == "great"


def test_the_end_frees_the_place_and_says_whether_the_mentee_wants_another_mentor():
    doc = active()
    step = lifecycle.end(doc, "no_fit", True, "mentee", None, NOW)
    data = step.events[0].data
    assert (data["reason"], data["rematch"], data["started_at"] is not None) == ("no_fit", True, True)
    assert step.expect == {"status": "active"}
    with pytest.raises(LifecycleError) as unknown:
        lifecycle.end(doc, "bored", False, None, None, NOW)
    assert unknown.value.status == 422


def test_erasure_scrubs_free_text_and_keeps_what_counts():
    doc = active()
    step, _ = lifecycle.schedule(doc, "m", {"starts_at": NOW, "duration_minutes": 30, "mode": "v", "agenda": "x"}, NOW)
    doc = applied(doc, step)
    doc["feedback"] = [{"comment": "hello"}]
    doc["agreement"] = {"goals": ["g"]}
    fields = lifecycle.scrub(doc, "mentee")
    assert fields["explanation"] == [] and fields["meetings.0.private_notes"] == "" and fields["meetings.0.agenda"] == ""
    assert fields["feedback.0.comment"] == "" and fields["agreement.goals"] == []
    assert fields["erased_parties"] == ["mentee"]
    assert not any(k.endswith("duration_minutes") or k in ("score", "status", "started_at") for k in fields)


def test_a_person_leaving_ends_what_started_and_lapses_what_did_not():
    waiting = proposed()
    with pytest.raises(LifecycleError, match="decline the proposal") as not_started:
        lifecycle.end(waiting, "completed", False, None, None, NOW)
    assert not_started.value.status == 409
    lapsed = lifecycle.close(waiting, "withdrawn", True, NOW, NOW)
    assert lapsed.set["status"] == "declined" and lapsed.expect == {"status": "proposed"}
    assert (lapsed.events[0].type, lapsed.events[0].data["side"], lapsed.events[0].data["reason"]) == (
        "MatchDeclined", "system", "withdrawn")
    ended = lifecycle.close(active(), "erased", False, NOW, NOW)
    assert ended.set["status"] == "ended" and ended.events[0].type == "MentorshipEnded"
    assert ended.events[0].data["reason"] == "erased"


def test_a_milestone_id_is_not_confusable_with_a_mentorship_id_and_old_ones_still_read():
    """Milestones were numbered `ms-...`, the mentorship ids' prefix: a milestone id pasted
    where a mentorship's was expected looked right and then 404ed."""
    doc = active()
    older = {"milestone_id": "ms-0a1b", "goal_id": None, "title": "Poster", "achieved_at": NOW}
    doc["milestones"] = [older]  # recorded before milestones had their own prefix
    step, record = lifecycle.milestone(doc, "Abstract accepted", None, None, NOW)
    assert record["milestone_id"].startswith("mil-")
    assert doc["_id"].startswith("ms-") and not record["milestone_id"].startswith("ms-")
    assert step.events[0].data["milestone_id"] == record["milestone_id"]
    doc = applied(doc, step)
    assert [m["milestone_id"] for m in doc["milestones"]] == ["ms-0a1b", record["milestone_id"]]
    old_event = MilestoneAchieved(**lifecycle.ref(doc), **older)
    assert old_event.milestone_id == "ms-0a1b"
    assert lifecycle.scrub(doc, "mentee")["milestones.0.title"] == "(erased)"
