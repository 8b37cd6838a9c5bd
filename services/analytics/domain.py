"""Analytics domain (issue 2 scope): registration counts per network and institution."""

from __future__ import annotations

from shared.events.schemas import MenteeRegistered, MentorRegistered

Scope = dict[str, str]


def scope_id(scope: Scope) -> str:
    """A stable document id for a reporting scope."""
    return ":".join(scope[k] for k in ("scope", "network_id", "institution_id") if k in scope)


def registration_increments(
    payload: MenteeRegistered | MentorRegistered,
) -> list[tuple[Scope, dict[str, int]]]:
    """The scopes one registration counts in, with what it adds to each."""
    field = "mentors_registered" if isinstance(payload, MentorRegistered) else "mentees_registered"
    network = {"scope": "network", "network_id": payload.network_id}
    institution = {**network, "scope": "institution", "institution_id": payload.institution_id}
    return [(network, {field: 1}), (institution, {field: 1})]
