"""The kinds of message this service sends, and which of them a person cannot turn off.

A kind names a template (`templates/<kind>.jinja`) and the channels it goes out on by default.
Mandatory kinds bypass preferences (channel switches, quiet hours, digests): they are the
messages a person must get to keep their account safe or to know it exists, and every one of
them says so in its text.
"""

from __future__ import annotations

from dataclasses import dataclass

EMAIL, IN_APP, WEBHOOK = "email", "in_app", "webhook"
PERSON_CHANNELS = (EMAIL, IN_APP)


@dataclass(frozen=True)
class Kind:
    name: str
    description: str
    channels: tuple[str, ...] = PERSON_CHANNELS
    mandatory: bool = False
    webhook: bool = False  # also announced to the network's webhook endpoints


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("welcome", "Your account was created (tells you an account exists with your address)",
             mandatory=True, webhook=True),
        Kind("account_security", "Security notices about your account", mandatory=True),
        Kind("match_proposed", "A mentor or mentee was proposed to you", webhook=True),
        Kind("match_accepted", "The other side accepted a proposal", channels=(IN_APP,)),
        Kind("introduction", "Your mentorship started: introduction and first-meeting agenda",
             webhook=True),
        Kind("meeting_scheduled", "A meeting was scheduled (with a calendar invitation)",
             webhook=True),
        Kind("meeting_reminder", "Reminder before a meeting"),
        Kind("nudge", "No meeting for a while: a nudge to meet"),
        Kind("stalled_pair", "A pair in your program stays silent", channels=(EMAIL,),
             webhook=True),
        Kind("checkin_request", "Check-in and feedback requests at reassessment points"),
        Kind("milestone", "A milestone was achieved", webhook=True),
        Kind("mentor_recognition", "Thanks for your time as a mentor", webhook=True),
        Kind("mentorship_ended", "A mentorship ended", channels=(IN_APP,), webhook=True),
        Kind("coordinator_digest", "Daily or weekly summary for coordinators", channels=(EMAIL,)),
        Kind("personal_digest", "Your messages gathered in one email", channels=(EMAIL,)),
    )
}


def kind(name: str) -> Kind:
    return KINDS[name]
