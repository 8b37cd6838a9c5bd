"""Which messages an event or a point in time deserves, and to whom (pure).

A plan names the kind, the recipient and the facts the message needs (ids, dates, titles:
never names or addresses, which are looked up when the message is composed, so an erased
person's data is never copied into pending work). Delivery ids derive from the source (event
id or scheduled job key), the recipient and the channel: exactly one delivery per triple.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.notifications.kinds import KINDS, WEBHOOK


@dataclass(frozen=True)
class Planned:
    kind: str
    recipient: str  # a person id, or "email:<address>" for a coordinator
    context: dict[str, Any] = field(default_factory=dict)
    about: tuple[str, ...] = ()  # people whose details the message shows


# Urgent kinds (a sign-in link) are due since the epoch: claims take the earliest due first,
# so they go before any backlog, on every store, without an index of their own.
URGENT_DUE = datetime(1970, 1, 1, tzinfo=UTC)


def delivery_id(source: str, recipient: str, channel: str) -> str:
    return f"{source}:{recipient}:{channel}"


def preference_key(recipient: str, network_id: str) -> str:
    """Where a recipient's preferences live: a person's are theirs (person ids are global); a
    coordinator known by address has one set per network, so an unsubscribe link from one
    network's digest changes nothing in another's."""
    return f"{network_id}/{recipient}" if recipient.startswith("email:") else recipient


def coordinator(address: str) -> str:
    return f"email:{address.strip().lower()}"


def person_of(recipient: str) -> str | None:
    return None if recipient.startswith(("email:", "webhook:")) else recipient


def deliveries(
    source: str,
    network_id: str,
    plans: list[Planned],
    *,
    created_at: datetime,
    event_time: datetime,
    program_id: str | None = None,
    mentorship_id: str | None = None,
    webhooks: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> list[dict[str, Any]]:
    """Pending delivery documents for the plans on each of their kind's channels, plus one
    per subscribed webhook endpoint for each kind announced there (once per source)."""
    documents: list[dict[str, Any]] = []

    def document(plan: Planned, channel: str, recipient: str) -> dict[str, Any]:
        return {
            "_id": delivery_id(source, recipient, channel),
            "source": source,
            "network_id": network_id,
            "kind": plan.kind,
            "channel": channel,
            "recipient": recipient,
            "person_id": person_of(recipient),
            "about": list(plan.about),
            "context": plan.context,
            "program_id": program_id,
            "mentorship_id": mentorship_id,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": URGENT_DUE if KINDS[plan.kind].urgent else created_at,
            "created_at": created_at,
            "event_time": event_time,
        }

    announced: set[str] = set()
    if len({(p.recipient, c) for p in plans for c in KINDS[p.kind].channels}) < sum(
            len(KINDS[p.kind].channels) for p in plans):
        raise ValueError(f"{source}: two messages for one recipient and channel")
    for plan in plans:
        spec = KINDS[plan.kind]
        for channel in spec.channels:
            documents.append(document(plan, channel, plan.recipient))
        if spec.webhook and plan.kind not in announced:
            announced.add(plan.kind)
            for endpoint in webhooks:
                if not endpoint.get("kinds") or plan.kind in endpoint["kinds"]:
                    recipient = f"webhook:{endpoint['_id']}"
                    documents.append(document(plan, WEBHOOK, recipient) | {
                        "_id": delivery_id(f"{source}:{plan.kind}", recipient, WEBHOOK),
                        "person_id": None,
                    })
    return documents


# --- events -> plans -----------------------------------------------------------------------


def on_registered(p: Any, role: str) -> list[Planned]:
    return [Planned("welcome", p.person_id, {"role": role, "program_id": p.program_id}, (p.person_id,))]


def on_sign_in_link(p: Any) -> list[Planned]:
    """The link, the address it goes to and the name ride in the delivery until it is sent (and
    are removed then): staff who take part in no program are in no registration event, so this
    service may not know them otherwise."""
    facts = {"link_url": p.link_url, "expires_at": p.expires_at.isoformat(), "email": p.email,
             "display_name": p.display_name}
    return [Planned("sign_in_link", p.person_id, facts, (p.person_id,))]


def _pair(p: Any) -> tuple[str, ...]:
    return (p.mentor_id, p.mentee_id)


def on_match_proposed(p: Any) -> list[Planned]:
    facts = {"mentor_id": p.mentor_id, "mentee_id": p.mentee_id, "program_id": p.program_id,
             "explanation": list(p.explanation), "auto_accept": p.auto_accept, "need": p.need,
             "is_rematch": p.is_rematch}
    return [
        Planned("match_proposed", p.mentee_id, facts | {"side": "mentee"}, _pair(p)),
        Planned("match_proposed", p.mentor_id, facts | {"side": "mentor"}, _pair(p)),
    ]


def on_match_accepted(p: Any) -> list[Planned]:
    other = p.mentor_id if p.side == "mentee" else p.mentee_id
    facts = {"mentor_id": p.mentor_id, "mentee_id": p.mentee_id, "side": p.side}
    return [Planned("match_accepted", other, facts, _pair(p))]


def on_mentorship_started(p: Any) -> list[Planned]:
    facts = {"mentor_id": p.mentor_id, "mentee_id": p.mentee_id, "program_id": p.program_id,
             "cadence_days": p.cadence_days}
    return [
        Planned("introduction", p.mentee_id, facts | {"side": "mentee"}, _pair(p)),
        Planned("introduction", p.mentor_id, facts | {"side": "mentor"}, _pair(p)),
    ]


def on_meeting_scheduled(p: Any, sequence: int) -> list[Planned]:
    facts = {"mentor_id": p.mentor_id, "mentee_id": p.mentee_id, "meeting_id": p.meeting_id,
             "starts_at": p.starts_at.isoformat(), "duration_minutes": p.duration_minutes,
             "mode": p.mode, "location": p.location, "agenda": p.agenda, "sequence": sequence}
    return [Planned("meeting_scheduled", who, facts, _pair(p)) for who in _pair(p)]


def meeting_reminder(meeting: dict[str, Any], mentor_id: str, mentee_id: str) -> list[Planned]:
    facts = {"mentor_id": mentor_id, "mentee_id": mentee_id, **meeting}
    return [Planned("meeting_reminder", who, facts, (mentor_id, mentee_id)) for who in (mentor_id, mentee_id)]


def on_milestone(p: Any) -> list[Planned]:
    facts = {"mentor_id": p.mentor_id, "mentee_id": p.mentee_id, "title": p.title}
    return [Planned("milestone", who, facts | {"side": side}, _pair(p))
            for who, side in ((p.mentee_id, "mentee"), (p.mentor_id, "mentor"))]


def on_mentorship_ended(p: Any, recognise: bool) -> list[Planned]:
    """Both hear that it ended; after a completed one the mentor's message is the thanks
    (one message per event, recipient and channel: the thanks says it ended too)."""
    facts = {"mentor_id": p.mentor_id, "mentee_id": p.mentee_id, "reason": p.reason}
    mentor = (Planned("mentor_recognition", p.mentor_id, facts | {"why": "completed"}, _pair(p))
              if recognise else Planned("mentorship_ended", p.mentor_id, facts, _pair(p)))
    return [Planned("mentorship_ended", p.mentee_id, facts, _pair(p)), mentor]


def meetings_recognition(mentor_id: str, mentee_id: str, meetings: int) -> Planned:
    return Planned("mentor_recognition", mentor_id,
                   {"mentor_id": mentor_id, "mentee_id": mentee_id, "why": "meetings",
                    "meetings": meetings}, (mentor_id, mentee_id))


def silence_nudge(stage: str, mentorship: dict[str, Any], days_silent: int,
                  coordinator_emails: list[str]) -> list[Planned]:
    facts = {"mentor_id": mentorship["mentor_id"], "mentee_id": mentorship["mentee_id"],
             "stage": stage, "days_silent": days_silent, "cadence_days": mentorship["cadence_days"],
             "program_id": mentorship["program_id"]}
    pair = (mentorship["mentor_id"], mentorship["mentee_id"])
    if stage == "coordinator":
        return [Planned("stalled_pair", coordinator(a), facts, pair) for a in coordinator_emails]
    who = mentorship["mentee_id"] if stage == "mentee" else mentorship["mentor_id"]
    return [Planned("nudge", who, facts | {"side": stage}, pair)]


def checkin(mentorship: dict[str, Any], point: int) -> list[Planned]:
    facts = {"mentor_id": mentorship["mentor_id"], "mentee_id": mentorship["mentee_id"],
             "point": point, "program_id": mentorship["program_id"]}
    pair = (mentorship["mentor_id"], mentorship["mentee_id"])
    return [Planned("checkin_request", who, facts | {"side": side}, pair)
            for who, side in ((pair[1], "mentee"), (pair[0], "mentor"))]
