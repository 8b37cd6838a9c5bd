"""Erasure and export (pure code): the tombstone keeps nothing personal; the export keeps
identity attributes for the person only; audit entries hold field names, never values."""

from datetime import UTC, datetime

from services.profiles.audit import _document, entry
from services.profiles.people import Identity, MenteeProfile, Profile, profile_document
from services.profiles.privacy import PERSONAL, erasure, export_document
from shared.auth import Grant, GrantRole, Principal

NOW = datetime(2026, 7, 1, tzinfo=UTC)


def _document_of_grace() -> dict:
    profile = Profile(display_name="Grace Hopper", career_stage="M2",
                      mentee=MenteeProfile(needs=("research",)),
                      identity=Identity(gender="woman", affinity_matching=True))
    return {"_id": "p1", "network_id": "n1", "institution_id": "inst-a",
            "email": "grace@example.org", "registered_at": NOW, "version": 3,
            "program_ids": ["prog-1"], "program_id": "prog-1", "role": "mentee",
            **profile_document(profile)}


def test_erasure_leaves_an_anonymous_tombstone_and_announces_it():
    document = _document_of_grace()
    fields, unset, events = erasure(document, NOW)
    kept = {k: v for k, v in document.items() if k not in unset} | fields
    assert set(kept) == {"_id", "network_id", "institution_id", "email", "version", "erased",
                         "erased_at"}
    assert kept["email"] == "erased:p1"
    assert "grace" not in str(kept).lower() and "woman" not in str(kept)
    assert set(unset) <= set(PERSONAL)
    assert [e.type for e in events] == ["PersonErased"]
    assert events[0].data == {"person_id": "p1", "network_id": "n1", "institution_id": "inst-a",
                              "erased_at": events[0].data["erased_at"]}


def test_export_has_everything_and_identity_for_the_person_only():
    document = _document_of_grace()
    own = export_document(document, own=True)
    assert own["id"] == "p1" and own["email"] == "grace@example.org"
    assert own["identity"]["gender"] == "woman" and "name_search" not in own
    assert own["enrolments"][0]["program_id"] == "prog-1"
    assert "identity" not in export_document(document, own=False)


def test_audit_entries_name_fields_not_values():
    who = Principal(subject="coord-1", network_id="n1", person_id="coord-1",
                    grants=(Grant(role=GrantRole.INSTITUTION_COORDINATOR, institution_id="inst-a"),))
    stored = _document(entry(who, "n1", "profile.updated", "person", "p1", "inst-a",
                             ["mentor", "display_name"]))
    assert stored["fields"] == ["mentor", "display_name"]
    assert stored["actor"] == "coord-1" and stored["actor_role"] == "institution_coordinator"
    assert stored["_id"].startswith("audit-") and "id" not in stored
